"""Every check of a reconstruction config in one place, before any model, dataset or logger loads: numeric ranges
(finite everywhere) and the rules that say which choices go together. Errors name the key, the value and the
allowed range; all problems of a config are reported at once."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from flashdiff.errors import ConfigError

T_MAX = 1000  # every schedule here (the LDMs', the pixel DDPMs') has 1000 training steps; solvers re-check the model

Rule = tuple[str, Callable[[float], bool], str]
RANGES: list[Rule] = [
    ("adapter.c", lambda v: v >= 0, ">= 0 (noise-correction multiplier)"),
    ("adapter.t_start", lambda v: 0 <= v < T_MAX and v == int(v), f"an integer in [0, {T_MAX - 1}]"),
    ("adapter.nfe_mean", lambda v: v > 0, "> 0 (target mean reverse steps)"),
    ("solver.eta", lambda v: v >= 0, ">= 0"),
    ("solver.gamma", lambda v: v >= 0, ">= 0"),
    ("solver.omega", lambda v: v >= 0, ">= 0"),
    ("solver.delta", lambda v: 0 <= v <= 1, "in [0, 1] (0 deterministic DDIM, 1 DDPM-like), or null for DDPM"),
    ("solver.num_steps", lambda v: 1 <= v <= T_MAX and v == int(v), f"an integer in [1, {T_MAX}]"),
    ("solver.every", lambda v: v >= 1 and v == int(v), "an integer >= 1"),
    ("solver.max_iters", lambda v: v >= 0 and v == int(v), "an integer >= 0"),
    ("solver.lr", lambda v: v > 0, "> 0"),
    ("solver.lam", lambda v: v >= 0, ">= 0"),
    ("solver.inner_steps", lambda v: v >= 1 and v == int(v), "an integer >= 1"),
    ("solver.ode_steps", lambda v: v >= 1 and v == int(v), "an integer >= 1"),
    ("solver.langevin_steps", lambda v: v >= 1 and v == int(v), "an integer >= 1"),
    ("solver.r", lambda v: v > 0, "> 0 (LatentDAPS prior width, in units of the noise level)"),
    ("solver.beta_y", lambda v: v > 0, "> 0 (LatentDAPS likelihood std, [0, 1] units)"),
    ("operator.noise_std", lambda v: v >= 0, ">= 0 (measurement noise std in [0, 1] units)"),
    ("num_images", lambda v: v >= 1 and v == int(v), "an integer >= 1, or null for every test image"),
    ("batch_size", lambda v: v >= 1 and v == int(v), "an integer >= 1"),
    ("samples_per_image", lambda v: v >= 1 and v == int(v), "an integer >= 1"),
    ("engine.lookahead", lambda v: v >= 0 and v == int(v), "an integer >= 0, or null (4 x batch_size)"),
    ("seed", lambda v: v == int(v), "an integer"),
]
CHOICES = {"batching": ("continuous", "static"), "engine.order": ("longest_first", "fifo"),
           "precision": ("auto", "fp32", "bf16", "fp16"), "compile": (True, False),
           "memory.checkpoint_unet": (True, False), "memory.checkpoint_decoder": (True, False),
           "memory.channels_last": (True, False), "overwrite": (True, False)}


def _get(cfg: dict[str, Any], key: str) -> Any:
    """A dotted key's value, or ``KeyError`` where the config has no such key."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def _numeric(value: Any) -> float | None:
    """A config value as a float (bools and text are not numbers); None where it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def range_problems(cfg: dict[str, Any]) -> list[str]:
    """Keys out of range, not finite, of the wrong type, or not among their choices."""
    problems = []
    for key, ok, allowed in RANGES:
        try:
            value = _get(cfg, key)
        except KeyError:
            continue
        if value is None and key in ("num_images", "solver.delta", "engine.lookahead"):
            continue
        number = _numeric(value)
        if number is None or not math.isfinite(number) or not ok(number):
            problems.append(f"{key}={value} must be {allowed}")
    for key, options in CHOICES.items():
        try:
            value = _get(cfg, key)
        except KeyError:
            continue
        if value not in options:
            problems.append(f"{key}={value} must be one of {', '.join(options)}")
    return problems


def _target_class(node: dict[str, Any]) -> type | None:
    """The class a ``_target_`` builds (a class, or a classmethod such as ``from_pretrained``); None if unknown."""
    from hydra.utils import get_method

    target = node.get("_target_") if isinstance(node, dict) else None
    if not target:
        return None
    try:
        obj = get_method(target)
    except Exception:  # noqa: BLE001 -- an unknown target is Hydra's to report at instantiation
        return None
    return obj if isinstance(obj, type) else getattr(obj, "__self__", None)


def compatibility_problems(cfg: dict[str, Any], solver: Any, choices: dict[str, str | None]) -> list[str]:
    """Choices that cannot run together: restorer ↔ adapter, pixel ↔ latent solver and model, PSLD ↔ linear operator.

    ``solver`` is the instantiated solver (cheap: no weights), or None for a restorer, whose loading is deferred.
    """
    from flashdiff.diffusion.model import PixelDiffusion
    from flashdiff.severity.start import Baseline

    adapter, solver_name = choices.get("adapter"), choices.get("solver")
    model_cls, adapter_cls, op_cls = (_target_class(cfg.get(k, {})) for k in ("model", "adapter", "operator"))
    pixel_model = model_cls is not None and issubclass(model_cls, PixelDiffusion)
    diffuses = adapter_cls is not None and adapter_cls is not Baseline
    problems = []
    if solver is not None and hasattr(solver, "delta") and solver.delta is None and solver.num_steps != T_MAX:
        problems.append(f"solver.num_steps={solver.num_steps} needs DDIM: set solver.delta (0 deterministic, "
                        f"1 DDPM-like) or use solver=ddim; ancestral DDPM runs all {T_MAX} steps")
    if solver is None and diffuses:
        problems.append(f"solver={solver_name} is not a diffusion solver (no grid to start on): use adapter=none")
    if solver is not None and getattr(solver, "space", "latent") == "pixel" and not pixel_model:
        problems.append(f"solver={solver_name} runs in pixel space but model={choices.get('model')} is a latent model: "
                        "set model=toy_pixel_ddpm (or ddpm_celebahq256), or use solver=latent_dps")
    if solver is not None and getattr(solver, "space", "latent") == "latent" and pixel_model \
            and getattr(solver, "guidance", None) is not None:
        problems.append(f"solver={solver_name} is a latent solver but model={choices.get('model')} is a pixel DDPM: "
                        "use solver=dps")
    if pixel_model and diffuses:
        problems.append(f"adapter={adapter} starts from a severity encoder's latent, but model={choices.get('model')} "
                        "is a pixel DDPM: use adapter=none (pixel DPS runs from pure noise)")
    if solver is not None and getattr(solver, "linear_only", False) and op_cls is not None \
            and getattr(op_cls, "linear", True) is False:
        problems.append(f"solver={solver_name} needs a linear operator with a transpose, but "
                        f"operator={choices.get('operator')} is nonlinear: use latent_dps, gml_dps or resample")
    return problems


def check_config(cfg: dict[str, Any], choices: dict[str, str | None],
                 build_solver: Callable[[], Any] | None = None) -> Any:
    """Raise one ``ConfigError`` listing every problem of a resolved config (see ``RANGES`` and the rules); returns
    the solver ``build_solver`` makes once the ranges hold (None for a restorer, whose weights load later)."""
    if problems := range_problems(cfg):
        raise ConfigError("; ".join(problems))
    solver = build_solver() if build_solver is not None else None
    if problems := compatibility_problems(cfg, solver, choices):
        raise ConfigError("; ".join(problems))
    return solver
