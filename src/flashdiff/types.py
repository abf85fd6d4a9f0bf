"""Small shared types and the contracts between the engine and its parts: operators, latent models, solvers,
adapters and restorers (typed Protocols), the sample items and the outputs. No logic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypedDict, runtime_checkable

import torch
from torch import Tensor

from flashdiff.counters import COUNTERS as COUNTERS  # re-exported: the engine's contract names them

if TYPE_CHECKING:
    from flashdiff.diffusion.schedule import Schedule

Params = dict[str, Tensor]
"""Per-sample degradation parameters; always holds ``"severity"`` of shape ``(B,)`` in [0, 1]."""

Counts = dict[str, Tensor]
"""Per-sample work tallies (A,) int64 on the CPU keyed by ``COUNTERS``; whoever does the work adds at its rows. Host
bookkeeping: a count is a fact the host knows (one forward per row), never read back from the device."""



class Sample(TypedDict):
    """One dataset item: a clean image and what seeds its randomness (every dataset yields these)."""

    x: Tensor  # (3, H, W) in [0, 1]
    index: int  # position in the dataset: the row key of samples.csv
    id: str  # stable image id (relative path, crop name); its bytes seed the image's draws
    seed: int  # flashdiff.data.seeding.image_seed(id)


class Measured(TypedDict, total=False):
    """A measurement to reconstruct when no clean image exists (items of ``flashdiff.reconstruct``'s data)."""

    y: Tensor  # (3, H, W), required
    index: int  # required
    id: str  # required
    seed: int  # required: seeds the solver's noise
    params: Params  # the operator's parameters of this y, per sample (leading dim 1); drawn from seed if absent


class Operator(Protocol):
    """``y = A(x) + n`` on images in [0, 1], batched with per-sample parameters."""

    noise_std: float

    def draw(self, seeds: Tensor | None, shape: tuple[int, ...], *, train: bool = False,
             generator: torch.Generator | None = None) -> Params: ...

    def A(self, x: Tensor, params: Params) -> Tensor: ...

    def A_adjoint(self, y: Tensor, params: Params) -> Tensor: ...

    def measure(self, x: Tensor, params: Params, seeds: Tensor | None = None) -> Tensor: ...


class LatentModel(Protocol):
    """``E0``, ``D0`` on [0, 1] images, ``ε_θ(z_i, i)`` with per-sample steps and the training schedule."""

    schedule: Schedule

    @property
    def latent_shape(self) -> tuple[int, int, int]: ...

    def encode(self, x: Tensor) -> Tensor: ...

    def decode(self, z: Tensor) -> Tensor: ...

    def eps(self, z_i: Tensor, i: Tensor) -> Tensor: ...


@dataclass
class StepBatch:
    """What one engine step hands a diffusion solver: the occupied slots, each at its own grid position."""

    model: LatentModel
    op: Operator | None
    z: Tensor  # (A, C, h, w) z_i
    i: Tensor  # (A,) int64 training step of z_i
    i_prev: Tensor  # (A,) int64 next training step on the grid; -1 at the clean end
    noise: Tensor  # (A, C, h, w) N(0, I), drawn from each sample's own generator
    y: Tensor | None  # (A, 3, H, W) measurements
    params: Params  # per-sample operator parameters (A, ...)
    generators: Sequence[torch.Generator]  # the samples' own generators (for draws beyond ``noise``)
    counts: Counts  # (A,) host tallies to add to
    state: dict[str, Tensor] = field(default_factory=dict)  # per-sample solver state (A, ...): zeros at admission
    i_host: Tensor | None = None  # (A,) int64 on the CPU, ``i`` as a host fact: decide on it without a device sync


@runtime_checkable
class DiffusionSolver(Protocol):
    """A reverse-diffusion solver, as the engine needs it: a descending grid and one batched step rule.

    The engine owns the loop (``flashdiff.engine``): it gathers the occupied slots, draws their noise, calls
    ``step`` and scatters the result back; a sample runs its last ``nfe`` grid steps. Every tensor of the batch is
    on the model's device except ``counts`` and ``i_host`` (host facts); a step reads nothing back from the device
    unless its algorithm is data-dependent, and then says so in its docstring (ReSample's per-sample stop).
    ``check`` refuses a model or operator the solver cannot run (before any work), naming the config key to change.
    """

    num_steps: int

    def grid(self, schedule: Schedule) -> Tensor:
        """Descending training steps the solver visits (num_steps,) int64."""
        ...

    def check(self, model: LatentModel, op: Operator | None) -> None: ...

    def step(self, batch: StepBatch) -> Tensor:
        """``z_{i_prev}`` (A, C, h, w) from ``batch.z`` at ``batch.i``; counts its own costs in ``batch.counts``."""
        ...


@runtime_checkable
class Restorer(Protocol):
    """A non-diffusion method (SwinIR): ``x̂ = f(y)`` in one pass; no adapter, no grid, NFE 0."""

    def restore(self, y: Tensor) -> Tensor:
        """(B, 3, H, W) measurements -> (B, 3, H, W) images in [0, 1] (unclipped)."""
        ...


@dataclass
class Start:
    """Where each sample's reverse process starts: an adapter's output."""

    latents: Tensor  # (B, C, h, w), z_start
    nfe: Tensor  # (B,) int64 reverse steps to run: the last nfe entries of the grid (0 = none: latents are the result)
    t_start: list[int | None]  # training step of the first score evaluation (grid[N - nfe]); None where nfe = 0
    sigma2_hat: Tensor | None = None  # (B,) predicted severity, where an encoder gave one
    score_forwards: Tensor | None = None  # (B,) int64, eps_theta forwards the adapter spent (DDIM encoding)


class Adapter(Protocol):
    """A start-time policy (``conf/adapter``): where on the solver's grid, and from what latent, each sample starts.

    Called at admission on a chunk of measurements; ``grid`` is the solver's descending grid (N,).
    """

    def __call__(self, model: LatentModel, y: Tensor, grid: Tensor,
                 generators: Sequence[torch.Generator]) -> Start: ...


@dataclass
class SolverOutput:
    """Latents a run of trajectories ends at, the reverse steps each sample ran (NFE) and what they cost."""

    latents: Tensor  # (B, C, h, w)
    nfe: Tensor  # (B,) int64, reverse diffusion steps run
    score_forwards: Tensor  # (B,) int64, rows through eps_theta
    backward_passes: Tensor  # (B,) int64, gradients taken (guidance steps, ReSample optimiser steps)
    decoder_calls: Tensor  # (B,) int64, rows through D0
    encoder_calls: Tensor  # (B,) int64, rows through E0 (GML-DPS, PSLD)
    inner_iterations: Tensor  # (B,) int64, ReSample's hard-data-consistency optimiser steps (0 for others)
