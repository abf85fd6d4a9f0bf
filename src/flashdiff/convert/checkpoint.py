"""Reading pickled PyTorch / Lightning checkpoints safely: ``torch.load(weights_only=True)`` and nothing else.

A Lightning checkpoint holds more than tensors (callback states, hyper-parameters, sometimes classes such as
``pytorch_lightning.callbacks.ModelCheckpoint`` used as dict keys). Each class or function it names beyond
torch's own allow-list is bound to an inert stand-in (``Stripped``) for the duration of the load: the
unpickler then builds stand-ins instead of calling anything, so no code named by the checkpoint runs, and only
tensors and plain containers survive. Modules torch blocks outright (os, sys, ...) make the load fail.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

log = logging.getLogger(__name__)


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint that cannot be read with ``torch.load(weights_only=True)``, even with stand-ins."""


class Stripped:
    """Inert stand-in for a class or function a checkpoint names: accepts any construction, keeps nothing."""

    name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Stripped:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<stripped {self.name}>"


UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def named_globals(path: Path) -> list[str]:
    """Classes/functions the checkpoint's pickle names beyond torch's allow-list (static scan, zip format only)."""
    if not zipfile.is_zipfile(path):
        return []  # legacy format: found one by one from torch.load's errors
    import torch

    return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))


def _load(path: Path, names: list[str]) -> Any:
    """``torch.load(weights_only=True)`` with each of ``names`` bound to its own inert stand-in."""
    import torch

    stand_ins = [(type(f"Stripped{i}", (Stripped,), {"name": name}), name) for i, name in enumerate(names)]
    with torch.serialization.safe_globals(stand_ins):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))


def load_checkpoint(path: str | Path, max_stand_ins: int = 200) -> dict[str, Any]:
    """The checkpoint at ``path`` as plain containers and tensors; everything else replaced by ``Stripped``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    names = named_globals(path)
    while True:
        try:
            ckpt = _load(path, names)
            break
        except EOFError:
            raise UnsafeCheckpointError(f"{path}: the file ends early (empty or cut short); fetch it again") from None
        except (pickle.UnpicklingError, RuntimeError) as err:
            found = UNSUPPORTED.search(str(err))  # a global the static scan could not see (legacy format)
            if found and found.group(1) not in names and len(names) < max_stand_ins:
                names.append(found.group(1))
                continue
            lines = [line for line in str(err).splitlines() if line.strip()]
            reason = next((line for line in lines if "GLOBAL" in line or line.startswith("Unsupported")),
                          lines[-1] if lines else type(err).__name__)  # e.g. "Unsupported operand": not a checkpoint
            reason = reason.rstrip(".")
            raise UnsafeCheckpointError(f"{path}: cannot be read with torch.load(weights_only=True): {reason}. "
                                        "flashdiff never unpickles arbitrary objects; re-save its state_dict (tensors "
                                        "only) with torch.save or safetensors in an environment you trust.") from err
    if names:
        log.info("%s: %d non-tensor classes/functions replaced by inert stand-ins: %s", path.name, len(names),
                 ", ".join(sorted(names)))
    if not isinstance(ckpt, dict):
        raise UnsafeCheckpointError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    return ckpt


def tensors_of(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> dict[str, Tensor]:
    """The ``state_dict`` of a Lightning checkpoint (or the checkpoint itself if it is one): name -> tensor."""
    from torch import Tensor

    sd = ckpt.get("state_dict", ckpt)
    if not isinstance(sd, dict):
        raise UnsafeCheckpointError(f"{path}: its state_dict is {sd!r}, not a dict of tensors")
    bad = [k for k, v in sd.items() if not isinstance(v, Tensor)]
    if bad:
        raise UnsafeCheckpointError(f"{path}: state_dict entries that are not tensors: {bad[:5]}")
    return dict(sd)


def plain(value: Any) -> Any:
    """``value`` with only json types kept (dict/list/str/number/bool/None); stand-ins and tensors become None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items() if isinstance(k, (str, int, float, bool))}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return None
