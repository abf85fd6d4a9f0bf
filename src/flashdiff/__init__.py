"""flashdiff: sample-adaptive reconstruction with latent diffusion (Flash-Diffusion, ICML 2024).

``flashdiff.reconstruct(data, operator, model, solver, adapter, batch_size=..., device=...)`` is the Python entry
point (defined in ``flashdiff.reconstruction``); ``python -m flashdiff`` is the command line built on it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Result", "reconstruct"]


def __getattr__(name: str) -> Any:
    """Import the public API on first use, so ``import flashdiff`` (and the light CLIs) stay cheap."""
    if name in __all__:
        import importlib

        return getattr(importlib.import_module("flashdiff.reconstruction"), name)
    raise AttributeError(f"module 'flashdiff' has no attribute {name!r}")
