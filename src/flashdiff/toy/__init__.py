"""The bundled toy world: ``model_dir(name)`` is a bundled toy model's folder (``toy_ldm``, ``toy_severity_blur``, ...),
in a checkout or an installed wheel alike; ``python -m flashdiff.toy.evaluate_world`` (measure the world and its LDM)
and ``python -m flashdiff.toy.evaluate_severity`` (score a severity encoder on its val and test splits)."""

from __future__ import annotations

from pathlib import Path


def model_dir(name: str) -> Path:
    """The folder of the bundled toy model ``name`` (e.g. ``LatentDiffusion.from_pretrained(model_dir("toy_ldm"))``),
    from any working directory; a name that is not bundled raises naming the ones that are."""
    from flashdiff.errors import InputError
    from flashdiff.paths import MODELS_DIR

    folder = MODELS_DIR / name
    if not folder.is_dir():
        bundled = sorted(p.name for p in MODELS_DIR.iterdir() if p.is_dir()) if MODELS_DIR.is_dir() else []
        raise InputError(f"no bundled toy model {name!r} in {MODELS_DIR}; bundled: {', '.join(bundled) or 'none'}")
    return folder
