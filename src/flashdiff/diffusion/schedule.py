"""Noise schedules as Gaussian paths (METHOD.md §3b): the model's own ``z_t = a_t z0 + b_t ε`` on discrete steps
i = 0..T-1, seen by every solver as the VP-equivalent ``z̃_i = z_t / sqrt(a_t² + b_t²)`` with
``abar_i = a_t² / (a_t² + b_t²)``: ``q(z̃_i | z0) = N(sqrt(abar_i) z0, (1 - abar_i) I)``. VP priors (LDMs, SD) have
``a² + b² = 1`` (z̃ = z); rectified flows (SD3, Flux) have ``a = 1 - t``, ``b = t`` on the model's shifted times."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from flashdiff.devices import to_device

if TYPE_CHECKING:  # diffusers is imported where a scheduler is built: the solvers' config checks stay light
    from diffusers import DDPMScheduler

LDM_BETA_START = 0.0015
LDM_BETA_END = 0.0195
LDM_NUM_STEPS = 1000


def ldm_scheduler(num_train_timesteps: int = LDM_NUM_STEPS, beta_start: float = LDM_BETA_START,
                  beta_end: float = LDM_BETA_END) -> DDPMScheduler:
    """The diffusers scheduler of the LDMs (METHOD.md §1: "scaled_linear" 0.0015 -> 0.0195, 1000 steps)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
                         beta_schedule="scaled_linear", variance_type="fixed_small", clip_sample=False,
                         prediction_type="epsilon")


def pixel_scheduler(num_train_timesteps: int = 1000) -> DDPMScheduler:
    """The pixel DDPM schedule of Ho et al. (linear β 1e-4 → 0.02), as google/ddpm-* models use."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_start=1e-4, beta_end=0.02,
                         beta_schedule="linear")


PATHS = ("vp", "flow")
SPACINGS = ("ldm", "leading", "trailing", "linspace")
FLOW_T_MAX = 1.0 - 1e-3
"""The noisiest time of a flow table: at t = 1 the signal coefficient is 0 and Tweedie's ẑ0 = (z̃ - b̃ ε̂)/ã is 0/0, so
the top step sits at ã² ≈ 1e-6 instead (z_start = pure noise is then exact to 1e-6; ẑ0 at the first step carries
float32 rounding times 1e3)."""


@dataclass(frozen=True)
class Schedule:
    """Per-step tables of a Gaussian path, indexed by the training step i = 0..T-1 (METHOD.md §3b).

    ``alphas_cumprod`` is the VP-equivalent ``abar_i`` every solver uses; ``path`` says what the model's own space is
    (``vp``: z̃ = z; ``flow``: rectified flow, ``z_t = (1 - t) z0 + t ε``); ``times`` is what the network is
    conditioned on at step i (None: the step index, as DDPM UNets; flows: ``1000 t``); ``spacing`` /
    ``steps_offset`` pick an N-step grid as the model's scheduler config does (``ldm``: the paper's uniform grid).
    """

    betas: Tensor  # (T,) float64, 1 - abar_i / abar_{i-1}: defined for every path, an ancestral step's only on VP
    alphas_cumprod: Tensor  # (T,) float64, abar_i
    path: str = "vp"
    times: Tensor | None = None  # (T,) float64, the network's time input per step; None = the step index i
    spacing: str = "ldm"
    steps_offset: int = 1
    _tables: dict[Any, Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.path not in PATHS:
            raise ValueError(f"Schedule.path must be one of {PATHS}, got {self.path!r}")
        if self.spacing not in SPACINGS:
            raise ValueError(f"timestep spacing must be one of {SPACINGS}, got {self.spacing!r}")

    @classmethod
    def from_abar(cls, alphas_cumprod: Tensor, **kwargs: Any) -> Schedule:
        """A schedule from its VP-equivalent ``abar`` (T,) (decreasing); betas follow as ``1 - abar_i/abar_{i-1}``."""
        abar = alphas_cumprod.to(torch.float64)
        prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        return cls(betas=1.0 - abar / prev, alphas_cumprod=abar, **kwargs)

    @classmethod
    def from_scheduler(cls, scheduler: Any, *, own_grid: bool = False) -> Schedule:
        """Read a diffusers scheduler's tables (its ``step()`` is not used): a DDPM/DDIM-family one (``betas``) or a
        ``FlowMatchEulerDiscreteScheduler`` (rectified flow with its ``shift``; ``Schedule.flow``). ``own_grid``
        takes the N-step grid rule from its config too (``timestep_spacing``, ``steps_offset``; diffusers'
        defaults ``leading`` + 0 where absent); without, the paper's uniform grid."""
        config = scheduler.config
        if hasattr(scheduler, "betas"):
            betas = scheduler.betas.to(torch.float64)
            grid = {}
            if own_grid:
                grid = {"spacing": config.get("timestep_spacing", "leading"),
                        "steps_offset": config.get("steps_offset", 0)}
            return cls(betas=betas, alphas_cumprod=torch.cumprod(1.0 - betas, dim=0), **grid)
        if config.get("use_dynamic_shifting", False):
            raise ValueError("a flow scheduler with use_dynamic_shifting (Flux dev) takes its shift from the image "
                             "size: build it with Schedule.flow(shift=...) for the run's resolution")
        return cls.flow(config.get("num_train_timesteps", 1000), shift=config.get("shift", 1.0))

    @classmethod
    def flow(cls, num_train_timesteps: int = 1000, *, shift: float = 1.0) -> Schedule:
        """Rectified flow on diffusers' training times: ``t_i = s σ / (1 + (s - 1) σ)`` with ``σ = (i + 1)/T`` and
        shift s (SD3: 3, Flux schnell: 1), the top clipped to ``FLOW_T_MAX``; the network sees ``1000 t``. Its grid
        is ``linspace`` (diffusers' flow sampler: σ evenly spaced from 1 to 1/T)."""
        sigma = torch.arange(1, num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps
        return cls.flow_times(shift * sigma / (1.0 + (shift - 1.0) * sigma), spacing="linspace", steps_offset=0)

    @classmethod
    def flow_times(cls, t: Tensor, **kwargs: Any) -> Schedule:
        """Rectified flow ``z_t = (1 - t) z0 + t ε`` on given increasing times ``t`` (T,) in (0, 1]: ``abar =
        (1 - t)² / ((1 - t)² + t²)``; times clipped to ``FLOW_T_MAX``."""
        t = t.to(torch.float64).clamp(max=FLOW_T_MAX)
        return cls.from_abar((1.0 - t) ** 2 / ((1.0 - t) ** 2 + t**2), path="flow", times=1000.0 * t, **kwargs)

    @classmethod
    def ldm(cls) -> Schedule:
        """The 1000-step LDM schedule."""
        return cls.from_scheduler(ldm_scheduler())

    @property
    def num_steps(self) -> int:
        return self.betas.numel()

    def snr(self) -> Tensor:
        """Signal-to-noise ratio per step, ``a_i^2 / b_i^2 = abar_i / (1 - abar_i)``; shape (T,)."""
        return self.alphas_cumprod / (1.0 - self.alphas_cumprod)

    def table(self, device: torch.device) -> Tensor:
        """``[1, abar_0, ..., abar_{T-1}]`` (T + 1,) float64 on ``device``: step -1 (clean) at 0; cached per device,
        so a step's coefficient look-ups copy nothing to the device."""
        if device not in self._tables:
            one = torch.ones(1, dtype=self.alphas_cumprod.dtype)
            self._tables[device] = to_device(torch.cat([one, self.alphas_cumprod]), device)
        return self._tables[device]

    def grid(self, num_steps: int) -> Tensor:
        """Descending training steps (num_steps,) int64 of an N-step sampler, by the schedule's ``spacing``: ``ldm``
        the paper's uniform grid (``sampling_grid``), else diffusers' ``leading`` / ``trailing`` / ``linspace``
        rules with ``steps_offset``; N = T is every step."""
        T = self.num_steps
        if self.spacing == "ldm" or num_steps == T:
            return sampling_grid(T, num_steps)
        if not 1 <= num_steps <= T:
            raise ValueError(f"num_steps must be in [1, {T}], got {num_steps}")
        if self.spacing == "leading":
            steps = torch.arange(num_steps, dtype=torch.int64) * (T // num_steps) + self.steps_offset
        elif self.spacing == "trailing":
            steps = (torch.arange(T, 0, -T / num_steps, dtype=torch.float64).round() - 1).to(torch.int64).flip(0)
        else:  # linspace
            steps = torch.linspace(0, T - 1, num_steps, dtype=torch.float64).round().to(torch.int64)
        return steps.clamp(0, T - 1).flip(0)

    def model_time(self, i: Tensor) -> Tensor:
        """What the network is conditioned on at per-sample steps ``i`` (B,) in [0, T): the step itself, or the
        path's time table (flows: ``1000 t``) in float64, on i's device."""
        if self.times is None:
            return i
        key = ("times", i.device)
        if key not in self._tables:
            self._tables[key] = to_device(self.times, i.device)
        return self._tables[key][i]

    def coefficients(self, i: Tensor) -> tuple[Tensor, Tensor]:
        """The model's own ``(a_t, b_t)`` at steps ``i`` (B,), float64: ``(sqrt(abar), sqrt(1 - abar))`` on VP paths,
        ``(1 - t, t)`` on flows."""
        abar = self.abar(i)
        if self.path == "vp":
            return abar.sqrt(), (1.0 - abar).sqrt()
        t = self.model_time(i).double() / 1000.0
        return 1.0 - t, t

    def abar(self, i: Tensor) -> Tensor:
        """``abar_i`` for per-sample steps ``i`` (B,) in [-1, T), as float64 (B,); ``abar_{-1} := 1`` (clean data)."""
        return self.table(i.device)[i + 1]

    def a(self, i: Tensor) -> Tensor:
        """``sqrt(abar_i)`` for per-sample steps ``i`` (B,), as float32 (B,)."""
        return self.abar(i).sqrt().float()

    def b(self, i: Tensor) -> Tensor:
        """``sqrt(1 - abar_i)`` for per-sample steps ``i`` (B,), as float32 (B,)."""
        return (1.0 - self.abar(i)).sqrt().float()

    def q_sample(self, z0: Tensor, i: Tensor, noise: Tensor) -> Tensor:
        """Forward diffusion ``z_i = a_i z0 + b_i eps`` for per-sample steps ``i`` (B,); z0, noise (B, C, h, w)."""
        return _bc(self.a(i), z0) * z0 + _bc(self.b(i), z0) * noise


def load_schedule(folder: Path) -> tuple[Schedule, str]:
    """The schedule and prediction type a diffusers ``scheduler_config.json`` states (any DDPM-family scheduler:
    DDPM, DDIM, PNDM, Euler, ... read for their betas; ``FlowMatchEulerDiscreteScheduler``: rectified flow)."""
    import json

    from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

    config = json.loads((folder / "scheduler_config.json").read_text())
    if config.get("_class_name", "").startswith("FlowMatch"):
        return Schedule.from_scheduler(FlowMatchEulerDiscreteScheduler.from_config(config)), "flow"
    import inspect

    keys = inspect.signature(DDPMScheduler.__init__).parameters  # the beta keys; other schedulers' keys are not ours
    known = DDPMScheduler.from_config({k: v for k, v in config.items() if k in keys})
    return Schedule.from_scheduler(known, own_grid=True), config.get("prediction_type", "epsilon")


def sampling_grid(num_train_steps: int, num_steps: int) -> Tensor:
    """Descending training steps a sampler visits (METHOD.md §4, App. D): (num_steps,) int64.

    ``num_steps == num_train_steps`` gives ``[T-1, ..., 0]`` (DDPM); otherwise ldm's "uniform" DDIM grid
    ``k·(T // N) + 1`` for k < N, descending (T=1000: N=500 -> 999, 997, ..., 1; N=20 -> 951, 901, ..., 1),
    which equals diffusers' "leading" spacing with ``steps_offset=1``.
    """
    if not 1 <= num_steps <= num_train_steps:
        raise ValueError(f"num_steps must be in [1, {num_train_steps}], got {num_steps}")
    if num_steps == num_train_steps:
        return torch.arange(num_train_steps - 1, -1, -1, dtype=torch.int64)
    return (torch.arange(num_steps, dtype=torch.int64) * (num_train_steps // num_steps) + 1).flip(0)


def _bc(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-sample vector (B,) to broadcast against ``like`` (B, ...)."""
    return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))
