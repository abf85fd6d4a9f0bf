"""``flashdiff.reconstruct`` (defined here): the Python entry point. Measure (or take) each image's ``y``, start it
where the adapter says, run the solver in the engine's slots, decode it as soon as it finishes; results stream out.

    from flashdiff import reconstruct
    for r in reconstruct(dataset, operator, model, solver, adapter, batch_size=16, device="cpu"):
        print(r.id, r.nfe, r.t_start, r.sigma2_hat)   # r.x_hat: (3, H, W) in [0, 1]

The command line (``python -m flashdiff``) is a thin user of it: it adds records, metrics and resume.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from flashdiff.data.seeding import generators as sample_generators
from flashdiff.data.seeding import measurement_seed
from flashdiff.devices import to_device
from flashdiff.engine import Chunk, Engine, EngineStats
from flashdiff.precision import autocast, resolve_precision, use_tf32
from flashdiff.types import COUNTERS, Adapter, DiffusionSolver, LatentModel, Operator, Params, Restorer

SOLVER_NOISE_SALT = 0x51ED  # the solver's per-sample noise is seeded apart from the measurement's
DRAW_SALT = 0x9E3779B1  # draw d of an image seeds its solver noise with seed + d * DRAW_SALT (draw 0: as before)


@dataclass
class Result:
    """One reconstructed image, yielded as soon as it leaves the engine (tensors on the CPU)."""

    index: int
    id: str
    draw: int  # which of the image's samples_per_image independent trajectories (0 with one)
    x_hat: Tensor  # (3, H, W) in [0, 1]
    y: Tensor  # (3, H, W) the measurement (unclipped)
    x: Tensor | None  # (3, H, W) the clean image, where the data had one
    params: Params  # this image's operator parameters (leading dim 1)
    severity: float | None  # the operator's ground-truth severity t in [0, 1]
    nfe: int  # reverse diffusion steps run
    costs: dict[str, int]  # flashdiff.types.COUNTERS
    sigma2_hat: float | None  # predicted severity σ̂², where an encoder gave one
    t_start: int | None  # training step of the first score evaluation; None where no diffusion ran
    seconds: float  # this image's share of the wall time (adapter, engine steps, decoding)
    finite: bool = True  # False where the reconstruction holds NaN/inf (a diverged sample: x_hat keeps the NaN)


def key(item: dict[str, Any]) -> tuple[int, int]:
    """An item's key through the engine: (dataset index, draw)."""
    return int(item["index"]), int(item.get("draw", 0))


def with_draws(items: Iterable[dict[str, Any]], samples_per_image: int) -> Iterator[dict[str, Any]]:
    """Each item ``samples_per_image`` times, as draws 0..K-1 (items that already name a draw pass as they are)."""
    for item in items:
        if "draw" in item:
            yield item
        else:
            yield from (item | {"draw": d} for d in range(samples_per_image))


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of ``size`` items (the last one shorter)."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class Measurement:
    """A chunk's data on the run's device (``x`` where the items had clean images, ``y``, the operator's ``params``)
    with the host copies its results keep; parameters are drawn on the CPU from each image's seed, then sent."""

    x: Tensor | None  # (B, 3, H, W)
    y: Tensor  # (B, 3, H, W)
    params: Params  # (B, ...) on the device
    seeds: Tensor  # (B,) int64 measurement seeds
    x_host: Tensor | None  # (B, 3, H, W) on the CPU
    params_host: Params  # (B, ...) on the CPU


def measure_chunk(items: list[dict[str, Any]], op: Operator, seed: int, device: torch.device) -> Measurement:
    """A list of dataset items (``y`` measured here) or measurements (``y`` given) as a ``Measurement``."""
    seeds = torch.tensor([measurement_seed(int(item["seed"]), seed) for item in items])
    data = torch.stack([item["x" if "x" in items[0] else "y"] for item in items])  # (B, 3, H, W) on the CPU
    if "params" in items[0]:
        host = {k: torch.cat([item["params"][k] for item in items]).cpu() for k in items[0]["params"]}
    else:
        host = {k: v.cpu() for k, v in op.draw(seeds, tuple(data.shape)).items()}
    params = {k: to_device(v, device) for k, v in host.items()}
    if "x" not in items[0]:
        return Measurement(None, to_device(data, device), params, seeds, None, host)
    x = to_device(data, device)
    return Measurement(x, op.measure(x, params, seeds), params, seeds, data, host)


class _Run:
    """One call of ``reconstruct``: what is fixed for the whole stream."""

    def __init__(self, op: Operator, model: LatentModel, solver: DiffusionSolver | Restorer, adapter: Adapter | None,
                 seed: int, device: torch.device, precision: str) -> None:
        self.op, self.model, self.solver, self.adapter = op, model, solver, adapter
        self.seed, self.device, self.precision = seed, device, precision
        self.meta: dict[int, dict[str, Any]] = {}

    def remember(self, items: list[dict[str, Any]], m: Measurement, sigma2: Tensor | None,
                 t_start: list[int | None]) -> list[tuple[int, int]]:
        """Keep each item's data until it finishes (one read-back of y and σ̂² per chunk); returns the keys."""
        y = m.y.float().cpu()
        sigma2 = None if sigma2 is None else sigma2.float().cpu().tolist()
        keys = []
        for b, item in enumerate(items):
            row = {k: v[b:b + 1] for k, v in m.params_host.items()}
            self.meta[key(item)] = {
                "id": str(item["id"]), "x": None if m.x_host is None else m.x_host[b], "y": y[b], "params": row,
                "severity": float(row["severity"]) if "severity" in row else None,
                "sigma2_hat": None if sigma2 is None else sigma2[b], "t_start": t_start[b]}
            keys.append(key(item))
        return keys

    def prepare(self, items: list[dict[str, Any]]) -> Chunk:
        """Measure a chunk, run the adapter on it (timed), and hand it to the engine (data on the device)."""
        m = measure_chunk(items, self.op, self.seed, self.device)
        started = time.perf_counter()
        draws = [int(item.get("draw", 0)) for item in items]
        gens = sample_generators([s + d * DRAW_SALT for s, d in zip(m.seeds.tolist(), draws)], SOLVER_NOISE_SALT)
        grid = self.solver.grid(self.model.schedule)
        with autocast(self.device, self.precision):
            begin = self.adapter(self.model, m.y, grid, gens)
        keys = self.remember(items, m, begin.sigma2_hat, begin.t_start)
        counts = {} if begin.score_forwards is None else {"score_forwards": begin.score_forwards.cpu()}
        seconds = torch.full((len(items),), (time.perf_counter() - started) / len(items))
        return Chunk(begin.latents.float(), begin.nfe.cpu(), m.y, m.params, gens, keys, counts, seconds)

    def result(self, k: tuple[int, int], raw: Tensor, nfe: int, costs: dict[str, int], seconds: float) -> Result:
        """The finished draw ``k`` (``raw``: decoded, unclipped) with everything remembered about it."""
        m = self.meta.pop(k)
        finite = bool(torch.isfinite(raw).all())
        x_hat = raw.clamp(0, 1) if finite else torch.where(torch.isfinite(raw), raw.clamp(0, 1), float("nan"))
        return Result(index=k[0], id=m["id"], draw=k[1], x_hat=x_hat, y=m["y"], x=m["x"], params=m["params"],
                      severity=m["severity"], nfe=nfe, costs=costs, sigma2_hat=m["sigma2_hat"],
                      t_start=m["t_start"] if nfe > 0 else None, seconds=seconds, finite=finite)


def reconstruct_batches(data: Iterable[dict[str, Any]], operator: Operator, model: LatentModel,
                        solver: DiffusionSolver | Restorer, adapter: Adapter | None = None, *, batch_size: int = 16,
                        device: str | torch.device = "cpu", batching: str = "continuous",
                        order: str = "longest_first", lookahead: int | None = None, seed: int = 0,
                        precision: str = "fp32", stats: EngineStats | None = None,
                        plan_data: Iterable[dict[str, Any]] | None = None,
                        samples_per_image: int = 1) -> Iterator[list[Result]]:
    """``reconstruct``, grouped: the images that finished together (decoded and returned as one chunk).

    Streams: ``data`` is read as slots free up (``lookahead`` ahead), never held whole. The caller's grad mode is
    left as it was between results: inference runs under ``torch.no_grad`` only inside each step.
    """
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    use_tf32(device)
    if isinstance(solver, Restorer):
        data = with_draws(data, samples_per_image) if samples_per_image > 1 else data
        yield from _restore(data, operator, solver, batch_size, device, seed, precision)
        return
    if adapter is None:
        raise ValueError("a diffusion solver needs an adapter (flashdiff.severity.start.Baseline for pure noise)")
    solver.check(model, operator)
    if hasattr(adapter, "plan") and not getattr(adapter, "planned", None):  # allocates over the run: encode it first
        if plan_data is None and iter(data) is data:
            raise ValueError("an adapter that plans over the run (flash_budget) reads the images twice: pass data as "
                             "a sequence or dataset, or the run's items as plan_data=...")
        plan(adapter, model, operator, solver, data if plan_data is None else plan_data, batch_size=batch_size,
             device=device, seed=seed, precision=precision)
    data = with_draws(data, samples_per_image) if samples_per_image > 1 else data
    run = _Run(operator, model, solver, adapter, seed, device, precision)
    engine = Engine(model, operator, solver, batch_size=batch_size, batching=batching, order=order,
                    lookahead=lookahead, precision=precision, stats=stats)
    steps = engine.run(run.prepare(items) for items in _chunks(data, batch_size))
    while True:
        with torch.no_grad():  # only around the work: the caller's loop keeps its own grad mode
            finished = next(steps, None)
            if finished is None:
                return
            if not finished:
                continue
            started = time.perf_counter()
            with autocast(device, precision):
                raw = model.decode(torch.stack([f.latents for f in finished])).float().cpu()
            share = (time.perf_counter() - started) / len(finished)
        yield [run.result(f.key, raw[b], f.nfe, f.counts, f.seconds + share) for b, f in enumerate(finished)]


def plan(adapter: Adapter, model: LatentModel, operator: Operator, solver: DiffusionSolver,
         data: Iterable[dict[str, Any]], *, batch_size: int = 16, device: str | torch.device = "cpu", seed: int = 0,
         precision: str = "fp32") -> dict[str, Any]:
    """Run an adapter's plan over the run's items (``flash_budget``: measure and encode each once, keeping only
    σ̂²); returns what it planned (``adapter.planned``), which ``adapter.restore`` takes back on a resumed run."""
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    measured = (measure_chunk(items, operator, seed, device).y for items in _chunks(data, batch_size))
    with torch.no_grad(), autocast(device, precision):
        adapter.plan(model, measured, solver.grid(model.schedule))
    return adapter.planned


def _restore(data: Iterable[dict[str, Any]], op: Operator, restorer: Restorer, batch_size: int, device: torch.device,
             seed: int, precision: str) -> Iterator[list[Result]]:
    """A non-diffusion method in chunks of ``batch_size``: ``x̂ = f(y)``; NFE and every cost 0."""
    zero = dict.fromkeys(COUNTERS, 0)
    for items in _chunks(data, batch_size):
        m = measure_chunk(items, op, seed, device)
        started = time.perf_counter()
        with torch.no_grad(), autocast(device, precision):
            raw = restorer.restore(m.y).float().cpu()
        seconds = (time.perf_counter() - started) / len(items)
        run = _Run(op, None, restorer, None, seed, device, precision)
        keys = run.remember(items, m, None, [None] * len(items))
        yield [run.result(k, raw[b], 0, dict(zero), seconds) for b, k in enumerate(keys)]


def reconstruct(data: Iterable[dict[str, Any]], operator: Operator, model: LatentModel,
                solver: DiffusionSolver | Restorer, adapter: Adapter | None = None,
                **settings: Any) -> Iterator[Result]:
    """Reconstruct every item of ``data`` and yield each image's ``Result`` as soon as it finishes.

    ``data``: dataset items ``{x, index, id, seed}`` (``flashdiff.types.Sample``: y is measured here, seeded per
    image) or measurements ``{y, index, id, seed[, params]}`` (``flashdiff.types.Measured``). ``operator``,
    ``model``, ``solver`` and ``adapter`` are the objects ``conf/`` builds (``hydra.utils.instantiate``) or your
    own; move them to ``device`` first. Settings: ``batch_size`` (slots, 16), ``device``, ``batching``
    (``continuous`` | ``static``), ``order`` (``longest_first`` | ``fifo``), ``lookahead`` (samples prepared
    ahead of admission, default 4 × batch_size), ``plan_data`` (the items an adapter with a ``plan`` step, such as
    ``flash_budget``, allocates over; default: ``data``), ``seed`` (the run seed mixed into every image's),
    ``precision`` (``fp32`` | ``bf16`` | ``fp16`` | ``auto``; on CUDA, fp32 matmuls use TF32), ``stats`` (an
    ``EngineStats`` to read occupancy from), ``samples_per_image`` (K independent trajectories per image, each
    seeded by its image and draw: ``Result.draw``; the measurement is the same for every draw).
    """
    for chunk in reconstruct_batches(data, operator, model, solver, adapter, **settings):
        yield from chunk
