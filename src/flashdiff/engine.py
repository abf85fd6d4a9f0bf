"""The engine: one loop drives every diffusion solver over a stream of samples, each at its own grid position.

``batch_size`` slots. A sample is admitted into a free slot with its start latent and its number of reverse steps
(``nfe``: it runs the last ``nfe`` entries of the solver's grid); each engine step runs one batched reverse step
over the occupied slots (per-sample ``i``, ``i_prev``, measurement, parameters, noise from the sample's own
generator, solver state); a sample that reaches the clean end leaves at once and its slot is refilled
(``batching="continuous"``). ``batching="static"`` admits a new batch only when every slot is empty: today's
DataLoader behaviour, kept as the comparison. Admission takes the waiting samples with the most steps first
(``order="longest_first"``; the adapter runs ahead of admission, so the predicted starts are known) or in arrival
order (``"fifo"``). Results never depend on any of this: every random draw belongs to its sample.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from flashdiff.devices import index, to_device
from flashdiff.diffusion.sampling import randn_rows
from flashdiff.precision import autocast
from flashdiff.types import COUNTERS, DiffusionSolver, LatentModel, Operator, Params, SolverOutput, StepBatch

BATCHING = ("continuous", "static")
ORDERS = ("longest_first", "fifo")


@dataclass
class Chunk:
    """Prepared samples waiting for slots: start latents and steps (an adapter's ``Start``) with their data."""

    z: Tensor  # (B, C, h, w) z_start, on the run's device (it sets the engine's device)
    nfe: Tensor  # (B,) int64 on the CPU: reverse steps to run (0: z is the result, no slot needed)
    y: Tensor | None  # (B, 3, H, W) measurements (None for unguided solvers); moved to the device on arrival
    params: Params  # per-sample operator parameters (B, ...); moved to the device on arrival
    generators: Sequence[torch.Generator]  # one per sample
    keys: list[Any]  # the caller's handle per sample, given back with its result
    counts: dict[str, Tensor] = field(default_factory=dict)  # (B,) CPU: work already spent (the adapter's forwards)
    seconds: Tensor | None = None  # (B,) CPU: wall time already spent per sample


@dataclass
class Finished:
    """A sample that reached the clean end: its final latent, steps run, costs and wall-time share."""

    key: Any
    latents: Tensor  # (C, h, w), on the run's device
    nfe: int
    counts: dict[str, int]
    seconds: float


@dataclass
class EngineStats:
    """Live counters of one engine: steps run, slot-steps that did work, and the slot count."""

    slots: int
    batched_steps: int = 0
    busy_slot_steps: int = 0
    busy: int = 0  # slots occupied now

    @property
    def occupancy(self) -> float:
        """Busy slot-steps / (slots × batched steps): the share of the batch that did work (1 = none idle)."""
        return self.busy_slot_steps / (self.slots * self.batched_steps) if self.batched_steps else float("nan")


class Engine:
    """Slots over one model, operator and solver; ``run`` turns chunks of prepared samples into finished ones."""

    def __init__(self, model: LatentModel, op: Operator | None, solver: DiffusionSolver, *, batch_size: int,
                 batching: str = "continuous", order: str = "longest_first", lookahead: int | None = None,
                 precision: str = "fp32", stats: EngineStats | None = None) -> None:
        if batching not in BATCHING or order not in ORDERS:
            raise ValueError(f"batching must be one of {BATCHING} and order one of {ORDERS}, got {batching}, {order}")
        self.model, self.op, self.solver, self.slots = model, op, solver, int(batch_size)
        self.batching, self.order, self.precision = batching, order, precision
        self.lookahead = 4 * self.slots if lookahead is None else int(lookahead)
        self.grid = solver.grid(model.schedule)  # (N,) descending, on the host
        self._grid_next = torch.cat([self.grid[1:], self.grid.new_full((1,), -1)])  # i_prev of each grid position
        self.stats = stats if stats is not None else EngineStats(self.slots)
        self._pool: list[tuple[Chunk, int]] = []  # prepared samples waiting for a slot
        self._allocated = False

    # -- slot storage -------------------------------------------------------------------------------------------
    def _allocate(self, chunk: Chunk) -> None:
        """Slot tensors shaped like one sample of ``chunk`` on its latents' device (the run's); the control state
        (busy slots, grid positions, NFE, counters) is host bookkeeping, known without asking the device."""
        s, dev = self.slots, chunk.z.device
        self.device = dev
        self.z = torch.zeros((s, *chunk.z.shape[1:]), dtype=chunk.z.dtype, device=dev)
        self.y = None if chunk.y is None else torch.zeros((s, *chunk.y.shape[1:]), dtype=chunk.y.dtype, device=dev)
        self.params = {k: torch.zeros((s, *v.shape[1:]), dtype=v.dtype, device=dev) for k, v in chunk.params.items()}
        self.state: dict[str, Tensor] = {}
        self.pos = [0] * s  # grid position of each slot's z
        self.active = [False] * s
        self.counts = {name: torch.zeros(s, dtype=torch.int64) for name in COUNTERS}  # host tallies
        self.gens: list[torch.Generator | None] = [None] * s
        self.keys: list[Any] = [None] * s
        self.nfe = [0] * s
        self.seconds = [0.0] * s
        self._allocated = True

    def _on_device(self, chunk: Chunk) -> Chunk:
        """``chunk`` with its latents, measurements and parameters on the run's device (moved once, on arrival)."""
        def move(v: Tensor) -> Tensor:
            return v if v.device == self.device else to_device(v, self.device)

        return replace(chunk, z=move(chunk.z), y=None if chunk.y is None else move(chunk.y),
                       params={k: move(v) for k, v in chunk.params.items()})

    def _admit(self, chunk: Chunk, rows: list[int], slots: list[int]) -> None:
        """Put samples ``rows`` of ``chunk`` into ``slots``: latents, data and parameters copied on the device (one
        index upload), solver state zeroed; positions, counters and costs set on the host."""
        slots_d, rows_d = index([slots, rows], self.device)
        self.z.index_copy_(0, slots_d, chunk.z.index_select(0, rows_d).to(self.z.dtype))
        if self.y is not None:
            self.y.index_copy_(0, slots_d, chunk.y.index_select(0, rows_d))
        for k, v in chunk.params.items():
            self.params[k].index_copy_(0, slots_d, v.index_select(0, rows_d))
        for v in self.state.values():
            v.index_fill_(0, slots_d, 0)
        for slot, row in zip(slots, rows):
            nfe = int(chunk.nfe[row])
            self.pos[slot], self.active[slot], self.nfe[slot] = self.grid.numel() - nfe, True, nfe
            for name in COUNTERS:
                self.counts[name][slot] = int(chunk.counts[name][row]) if name in chunk.counts else 0
            self.gens[slot], self.keys[slot] = chunk.generators[row], chunk.keys[row]
            self.seconds[slot] = float(chunk.seconds[row]) if chunk.seconds is not None else 0.0

    @staticmethod
    def _finished_at_once(chunk: Chunk, row: int) -> Finished:
        """A sample with nothing to diffuse: its start latent is the result."""
        counts = {name: int(chunk.counts[name][row]) if name in chunk.counts else 0 for name in COUNTERS}
        seconds = float(chunk.seconds[row]) if chunk.seconds is not None else 0.0
        return Finished(chunk.keys[row], chunk.z[row].clone(), 0, counts, seconds)

    # -- the loop -----------------------------------------------------------------------------------------------
    def run(self, chunks: Iterable[Chunk]) -> Iterator[list[Finished]]:
        """Finished samples, a list per engine step (and per chunk for those with nothing to diffuse)."""
        source, exhausted = iter(chunks), False
        while True:
            free = self.slots - self.stats.busy
            want = self.slots if self.batching == "static" else free + self.lookahead
            while not exhausted and len(self._pool) < want:
                chunk = next(source, None)
                if chunk is None:
                    exhausted = True
                    break
                nfes = chunk.nfe.tolist()  # host facts (an adapter's Start)
                if any(not 0 <= k <= self.grid.numel() for k in nfes):
                    raise ValueError(f"nfe must lie in [0, {self.grid.numel()}] (the solver's num_steps), got {nfes}")
                if not self._allocated:
                    self._allocate(chunk)
                chunk = self._on_device(chunk)
                done = [self._finished_at_once(chunk, r) for r, k in enumerate(nfes) if k == 0]
                self._pool += [(chunk, r, k) for r, k in enumerate(nfes) if k > 0]
                if done:
                    yield done
            if self.batching == "continuous" or self.stats.busy == 0:
                self._fill()
            if self.stats.busy == 0:
                if exhausted and not self._pool:
                    return
                continue
            yield self._step()

    def _fill(self) -> None:
        """Admit waiting samples into the free slots (longest first, or in arrival order), a chunk at a time."""
        if not self._pool:
            return
        free = [slot for slot, busy in enumerate(self.active) if not busy]
        if self.order == "longest_first":
            self._pool.sort(key=lambda entry: -entry[2])  # stable: ties keep arrival order
        take, self._pool = self._pool[: len(free)], self._pool[len(free):]
        groups: dict[int, tuple[Chunk, list[int], list[int]]] = {}
        for slot, (chunk, row, _) in zip(free, take):
            group = groups.setdefault(id(chunk), (chunk, [], []))
            group[1].append(row)
            group[2].append(slot)
        for chunk, rows, slots in groups.values():
            self._admit(chunk, rows, slots)
        self.stats.busy += len(take)

    def _step(self) -> list[Finished]:
        """One batched reverse step of every occupied slot; the samples that reach the clean end leave.

        Host work: the busy slots, their ``i`` and ``i_prev`` (one upload), their noise (one upload), counters and
        leaving samples. Nothing is read back from the device: the leaving latents stay there, for decoding.
        """
        started = time.perf_counter()
        slots = [slot for slot, busy in enumerate(self.active) if busy]  # (A,)
        p = torch.tensor([self.pos[slot] for slot in slots])
        host = torch.stack([torch.tensor(slots), self.grid[p], self._grid_next[p]])  # (3, A): slot, i, i_prev
        rows, i, i_prev = index(host, self.device)
        gens = [self.gens[slot] for slot in slots]
        z = self.z.index_select(0, rows)
        counts = {name: torch.zeros(len(slots), dtype=torch.int64) for name in COUNTERS}
        batch = StepBatch(model=self.model, op=self.op, z=z, i=i, i_prev=i_prev,
                          noise=randn_rows(gens, z.shape[1:], z),
                          y=None if self.y is None else self.y.index_select(0, rows),
                          params={k: v.index_select(0, rows) for k, v in self.params.items()}, generators=gens,
                          counts=counts, state={k: v.index_select(0, rows) for k, v in self.state.items()},
                          i_host=host[1])
        with autocast(self.device, self.precision):
            z_prev = self.solver.step(batch).to(self.z.dtype)
        self.z.index_copy_(0, rows, z_prev)
        for k, v in batch.state.items():
            if k not in self.state:
                self.state[k] = torch.zeros((self.slots, *v.shape[1:]), dtype=v.dtype, device=self.device)
            self.state[k].index_copy_(0, rows, v.to(self.state[k].dtype))
        for name in COUNTERS:
            self.counts[name].index_add_(0, host[0], counts[name])
        self.stats.batched_steps += 1
        self.stats.busy_slot_steps += len(slots)
        share = (time.perf_counter() - started) / len(slots)
        leaving = []
        for j, slot in enumerate(slots):
            self.pos[slot] += 1
            self.seconds[slot] += share
            if self.pos[slot] == self.grid.numel():
                leaving.append((j, slot))
        out = [Finished(self.keys[slot], z_prev[j], self.nfe[slot],
                        {name: int(self.counts[name][slot]) for name in COUNTERS}, self.seconds[slot])
               for j, slot in leaving]
        for _, slot in leaving:
            self.active[slot] = False
            self.gens[slot] = self.keys[slot] = None
        self.stats.busy -= len(leaving)
        return out


def sample(model: LatentModel, solver: DiffusionSolver, z_start: Tensor, nfe: Tensor,
           generators: Sequence[torch.Generator], *, op: Operator | None = None, y: Tensor | None = None,
           params: Params | None = None, batch_size: int | None = None, **engine: Any) -> SolverOutput:
    """Run sample b's last ``nfe[b]`` grid steps from ``z_start[b]`` (B, C, h, w) through the engine; in input order.

    ``nfe[b] = 0`` returns ``z_start[b]`` untouched; ``nfe[b] = num_steps`` is a full run from the top of the grid.
    ``batch_size`` slots (all samples at once by default); costs are counted per sample.
    """
    b = z_start.shape[0]
    chunk = Chunk(z_start, nfe.to(torch.int64).cpu(), y, params or {}, generators, list(range(b)))
    done: dict[int, Finished] = {}
    eng = Engine(model, op, solver, batch_size=batch_size or max(b, 1), **engine)
    for finished in eng.run([chunk]):
        done |= {f.key: f for f in finished}
    latents = torch.stack([done[k].latents for k in range(b)]) if b else z_start.clone()
    tally = lambda name: torch.tensor([done[k].counts[name] for k in range(b)], dtype=torch.int64)  # noqa: E731
    return SolverOutput(latents=latents, nfe=torch.tensor([done[k].nfe for k in range(b)], dtype=torch.int64),
                        **{name: tally(name) for name in COUNTERS})
