"""Where the project lives: the repository root, its config folder, and the resolvers the configs use.

``ROOT`` is the checkout (``conf/``, ``models/``, ``data/`` at the top) when flashdiff runs from one (``make setup``'s
editable install), else the copy of ``conf/`` and ``models/`` that a wheel carries (``flashdiff/_bundled``, made by
setup.py's build hook): one lookup, the same layout under either.

Importing this module registers ``${flashdiff_root:}`` (``conf/paths/default.yaml``: every path is found from the
installed package, so commands work from any directory) and ``${flashdiff_options:GROUP[,TEXT|!TEXT]}`` (the options of
a config group holding, or not holding, TEXT: for help texts).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = PACKAGE.parents[1]  # src/flashdiff -> the repository
ROOT = _CHECKOUT if (_CHECKOUT / "conf" / "config.yaml").is_file() and (_CHECKOUT / "src" / "flashdiff").is_dir() \
    else PACKAGE / "_bundled"
CONFIG_DIR = str(ROOT / "conf")
MODELS_DIR = ROOT / "models"  # the bundled toy models (``paths.models_dir`` in the configs may point elsewhere)


def config_options(group: str, contains: str = "") -> str:
    """The options of ``conf/<group>`` (file stems, sorted, comma-separated); only files holding ``contains``, or
    with ``contains = "!TEXT"`` only files without TEXT."""
    files = sorted((Path(CONFIG_DIR) / group).glob("*.yaml"))
    lacks = contains.startswith("!")
    return ", ".join(f.stem for f in files if (contains.lstrip("!") in f.read_text()) != lacks)


OmegaConf.register_new_resolver("flashdiff_root", lambda: str(ROOT), replace=True)
OmegaConf.register_new_resolver("flashdiff_options", config_options, replace=True)
