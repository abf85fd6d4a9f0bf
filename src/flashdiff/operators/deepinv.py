"""Any deepinv linear physics with its parameter generator as a flashdiff operator (``operator=deepinv_<name>``).

deepinv (BSD-3) draws per-batch parameters (a blur filter, a mask, a downsampling filter) with a
``PhysicsGenerator`` and takes them as keyword arguments of ``physics.A`` / ``physics.A_adjoint``. Here every sample
draws its own: ``generator.step(1, seed=s_b)`` with ``s_b`` drawn from the image's own generator after its
severity, so a sample's parameters and ``y`` never depend on its batch. The noise stays flashdiff's, seeded per
image (``measure`` never calls ``physics(x)``, so deepinv's noise model is never applied). A physics whose output
is smaller than the image (super-resolution) is lifted back to the image size by nearest-neighbour replication
(``lift="nearest"``), so adapters, severity encoders and the galleries see a (B, 3, H, W) measurement.
"""

from __future__ import annotations

import inspect
import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from flashdiff.operators.base import NoisyOperator, measurement_noise, params_device
from flashdiff.types import Params

log = logging.getLogger(__name__)

LIFTS = ("nearest", "none")
SEED_HIGH = 2**62  # deepinv seeds its generator's torch.Generator with an int below 2^64


def nearest_index(n: int, m: int, device: torch.device) -> Tensor:
    """Source rows (n,) of nearest-neighbour resizing m -> n, as ``F.interpolate(mode="nearest")``: floor(i m / n)."""
    return torch.arange(n, device=device) * m // n


def lift(y: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour replication (B, C, h, w) -> (B, C, H, W): each low-resolution pixel fills its block."""
    ih = nearest_index(size[0], y.shape[-2], y.device)
    iw = nearest_index(size[1], y.shape[-1], y.device)
    return y.index_select(-2, ih).index_select(-1, iw)


def lift_adjoint(y: Tensor, size: tuple[int, int]) -> Tensor:
    """Exact adjoint of ``lift``, sum over each block: (B, C, H, W) -> (B, C, h, w)."""
    ih = nearest_index(y.shape[-2], size[0], y.device)
    iw = nearest_index(y.shape[-1], size[1], y.device)
    rows = y.new_zeros(*y.shape[:-2], size[0], y.shape[-1]).index_add_(-2, ih, y)
    return y.new_zeros(*y.shape[:-2], *size).index_add_(-1, iw, rows)


def _accepts(fn: Any, name: str) -> bool:
    """Whether ``fn`` takes a keyword argument ``name`` explicitly."""
    return name in inspect.signature(fn).parameters


class DeepInvOperator(NoisyOperator):
    """``y = lift(A_dinv(x; θ_b)) + noise_std · n`` with θ_b ~ the deepinv generator, drawn from image b's seed.

    ``severity_param``: the generator's scalar parameter the severity t drives, ``value = lo + t (hi - lo)`` with
    ``param_range = [lo, hi]`` (passed to ``generator.step`` as a keyword, or set as the generator's attribute for
    the duration of the draw, e.g. ``split_ratio``); the mapped value is kept in ``params`` under its name. Without
    one the severity is a constant label: ``severity_range`` and ``train_severity_range`` must then be ``[c, c]``.
    deepinv computes in float32 (its stored parameters' dtype); outputs have the input's dtype.
    """

    linear = True

    def __init__(self, physics: nn.Module, generator: nn.Module | None = None, *,
                 severity_param: str | None = None, param_range: Sequence[float] | None = None,
                 lift: str = "nearest", severity_range: Sequence[float] = (1.0, 1.0),
                 train_severity_range: Sequence[float] = (1.0, 1.0), noise_std: float = 0.05) -> None:
        super().__init__(severity_range, train_severity_range, noise_std)
        if lift not in LIFTS:
            raise ValueError(f"operator.lift must be one of {LIFTS}, got {lift!r}")
        self.physics, self.generator, self.lift = physics, generator, lift
        self._low_sizes: dict[tuple, tuple[int, int] | None] = {}  # image shape, parameter shapes -> deepinv's (h, w)
        self.severity_param = severity_param
        self.param_range = self._check_param(severity_param, param_range, generator)
        if generator is not None and isinstance(getattr(generator, "img_size", None), list):
            generator.img_size = tuple(generator.img_size)  # deepinv concatenates it with a tuple

    def _check_param(self, name: str | None, value_range: Sequence[float] | None,
                     generator: nn.Module | None) -> tuple[float, float] | None:
        """Validate the severity mapping; a user error names its config key."""
        if name is None:
            if self.severity_range[0] != self.severity_range[1] or \
                    self.train_severity_range[0] != self.train_severity_range[1]:
                raise ValueError("operator.severity_param is null, so the severity is a constant label: set "
                                 "operator.severity_range and operator.train_severity_range to [c, c], or name the "
                                 "generator parameter the severity drives (operator.severity_param)")
            return None
        if generator is None:
            raise ValueError(f"operator.severity_param={name} needs a generator (operator.generator is null)")
        if not (_accepts(generator.step, name) or hasattr(generator, name)):
            raise ValueError(f"operator.severity_param={name}: {type(generator).__name__}.step takes no keyword "
                             f"{name!r} and the generator has no such attribute")
        values = [float(v) for v in (value_range or ())]
        if len(values) != 2 or not all(math.isfinite(v) for v in values):
            raise ValueError(f"operator.param_range must be [value at t=0, value at t=1], got {value_range!r}")
        return values[0], values[1]

    # -- parameters -----------------------------------------------------------------------------------------------
    def draw(self, seeds: Tensor | None, shape: tuple[int, ...], *, train: bool = False,
             generator: torch.Generator | None = None) -> Params:
        """Params for a (B, C, H, W) batch: ``severity`` (B,), the mapped parameter (B,), the generator's (B, ...)."""
        t, gens = self._draw_severity(seeds, shape[0], train, generator)
        device = params_device(seeds, generator)
        params: Params = {"severity": t.to(device)}
        if self.generator is None:
            return params
        values = None
        if self.param_range is not None:
            lo, hi = self.param_range
            values = [lo + float(tb) * (hi - lo) for tb in t.tolist()]
            params[self.severity_param] = torch.tensor(values, dtype=torch.float32, device=device)
        # the generator's draws follow the severity in each image's own stream
        rows = [self._step(int(torch.randint(SEED_HIGH, (), generator=g)), shape,
                           None if values is None else values[b]) for b, g in enumerate(gens)]
        for key in rows[0] if rows else ():
            params[key] = torch.cat([r[key] for r in rows]).to(device)
        return params

    def _step(self, seed: int, shape: tuple[int, ...], value: float | None) -> dict[str, Tensor]:
        """One sample's deepinv parameters ``{name: (1, ...)}`` from ``seed``, with the severity's ``value``."""
        gen, kwargs = self.generator, {}
        if _accepts(gen.step, "img_size"):
            kwargs["img_size"] = tuple(shape[-2:])
        restore = None
        if value is not None and _accepts(gen.step, self.severity_param):
            kwargs[self.severity_param] = value
        elif value is not None:
            restore = getattr(gen, self.severity_param)
            setattr(gen, self.severity_param, value)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "To copy construct from a tensor")  # DownsamplingGenerator
                out = gen.step(1, seed=seed, **kwargs)
        finally:
            if restore is not None:
                setattr(gen, self.severity_param, restore)
        return {k: torch.as_tensor(v) for k, v in out.items()}  # (1, ...) each

    def _physics_kwargs(self, params: Params, device: torch.device) -> dict[str, Tensor]:
        """The deepinv keyword arguments of ``params`` (all but the severity and its mapped value), on ``device``."""
        own = {"severity", self.severity_param}
        return {k: v.to(device) for k, v in params.items() if k not in own}

    # -- the operator ---------------------------------------------------------------------------------------------
    def A_low(self, x: Tensor, params: Params) -> Tensor:
        """deepinv's ``A(x; θ)`` as is: (B, C, H, W) -> its measurement shape (e.g. (B, C, H/f, W/f))."""
        return self.physics.A(x.float(), **self._physics_kwargs(params, x.device)).to(x.dtype)

    def A(self, x: Tensor, params: Params) -> Tensor:
        """``lift(A_dinv(x))``: (B, C, H, W), or deepinv's own shape with ``lift="none"``."""
        return self._lift(self.A_low(x, params), x.shape[-2:])

    def A_adjoint(self, y: Tensor, params: Params) -> Tensor:
        """``A_dinvᵀ(liftᵀ(y))``: (B, C, H, W) -> (B, C, H, W)."""
        kwargs = self._physics_kwargs(params, y.device)
        if self.lift == "nearest" and y.dim() == 4:
            low = self._low_size(y, kwargs)
            y = y if low is None or low == tuple(y.shape[-2:]) else lift_adjoint(y, low)
        return self.physics.A_adjoint(y.float(), **kwargs).to(y.dtype)

    def measure(self, x: Tensor, params: Params, seeds: Tensor | None = None) -> Tensor:
        """``lift(A_dinv(x) + noise_std · n)``: noise on deepinv's measurement, seeded per image, unclipped."""
        y = self.A_low(x, params)
        if self.noise_std > 0.0:
            y = y + self.noise_std * measurement_noise(y, seeds)
        return self._lift(y, x.shape[-2:])

    # -- lifting ----------------------------------------------------------------------------------------------------
    def _lift(self, y: Tensor, size: Sequence[int]) -> Tensor:
        """Nearest-neighbour lift of a smaller 4-D image measurement to ``size``; anything else unchanged."""
        if self.lift == "none" or y.dim() != 4 or tuple(y.shape[-2:]) == tuple(size):
            return y
        return lift(y, (int(size[0]), int(size[1])))

    @torch.no_grad()
    def _low_size(self, y: Tensor, kwargs: dict[str, Tensor]) -> tuple[int, int] | None:
        """deepinv's measurement size (h, w) for images of ``y``'s size (None: not an image); probed once, cached."""
        key = (tuple(y.shape[1:]), *((k, tuple(v.shape[1:]), None if v.is_floating_point() else
                                      tuple(v.unique().tolist())) for k, v in sorted(kwargs.items())))
        if key not in self._low_sizes:
            probe = self.physics.A(y.new_zeros(1, *y.shape[1:], dtype=torch.float32),
                                   **{k: v[:1] for k, v in kwargs.items()})
            self._low_sizes[key] = (int(probe.shape[-2]), int(probe.shape[-1])) if probe.dim() == 4 else None
        return self._low_sizes[key]

    def extra_repr(self) -> str:
        """Constructor values for ``print(module)``."""
        return (f"severity_param={self.severity_param}, param_range={self.param_range}, lift={self.lift!r}, "
                f"severity_range={self.severity_range}, train_severity_range={self.train_severity_range}, "
                f"noise_std={self.noise_std}")
