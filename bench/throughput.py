"""Benchmark: continuous vs static batching of the engine on the toy world (issue: reconstruction engine).

For each solver preset and batch size, every toy test crop is reconstructed twice through ``flashdiff.reconstruct``
(one process, the same objects): ``batching=static`` (a batch runs until its slowest sample is done) and
``batching=continuous`` (a finished sample's slot is refilled at once, longest predicted trajectory first).
Reported per mode: images/s and wall s/image, CPU s/image (the process's CPU time: with one thread, what the work
cost whatever else ran on the machine), occupancy (busy slot-steps / (slots × batched steps)), batched steps, mean
PSNR and NFE; the largest per-image PSNR difference between the modes (results must not depend on batching); and
the engine's own share of a step's wall time: everything in ``Engine._step`` outside the networks' forward and
backward calls (UNet, decoder, encoder; timed by module hooks), i.e. gathering and scattering slots, drawing noise,
host bookkeeping, and the solver's own arithmetic (Tweedie, the step rule, the operator in the guidance loss).
``--json`` keeps the per-image results; ``--baseline`` compares with such a file (another commit's run).
Appended, with date, commit and machine, to bench/results/throughput.md.

Usage: .venv/bin/python bench/throughput.py [--num-images 124] [--batch-sizes 8 16 32] [--solvers latent_dps resample]
       [--modes static continuous] [--json out.json] [--baseline before.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SOLVER_OVERRIDES = {"latent_dps": [], "resample": ["solver=resample"]}


def build(solver: str) -> dict:
    """Dataset, operator, model, solver and adapter of the default config (Flash on toy varying blur)."""
    return compose_parts(SOLVER_OVERRIDES[solver] + ["+experiment=toy_varblur"])


def compose_parts(overrides: list[str]) -> dict:
    """Dataset, operator, model, solver and adapter of the project config with these Hydra overrides."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    import flashdiff.paths  # noqa: F401  (registers ${flashdiff_root:})

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return {"dataset": instantiate(cfg.dataset), "operator": instantiate(cfg.operator),
            "model": instantiate(cfg.model), "solver": instantiate(cfg.solver),
            "adapter": instantiate(cfg.adapter).eval()}


class NetworkClock:
    """Wall time inside the networks' forward calls (module hooks on UNet, decoder and encoder) and inside every
    backward pass (``torch.autograd.grad`` / ``backward``: the guidance gradient runs through UNet and decoder; the
    few non-network ops in it, Tweedie and the operator, are counted with the networks)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.seconds, self._started = 0.0, {}
        nets = [model.unet] + ([model.autoencoder.decoder, model.autoencoder.encoder] if model.autoencoder else [])
        self.handles = []
        for net in (n for n in nets if n is not None):
            self.handles += [net.register_forward_pre_hook(lambda m, *_: self._start(m)),
                             net.register_forward_hook(lambda m, *_: self._stop(m))]
        self._originals = (torch.autograd.grad, torch.autograd.backward)
        torch.autograd.grad, torch.autograd.backward = self._timed(torch.autograd.grad), self._timed(
            torch.autograd.backward)

    def _timed(self, fn):  # noqa: ANN001, ANN202
        def timed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
        return timed

    def _start(self, module: torch.nn.Module) -> None:
        self._started[id(module)] = time.perf_counter()

    def _stop(self, module: torch.nn.Module) -> None:
        self.seconds += time.perf_counter() - self._started.pop(id(module))

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        torch.autograd.grad, torch.autograd.backward = self._originals


@contextlib.contextmanager
def step_clock(model: torch.nn.Module) -> Iterator[dict]:
    """Times every ``Engine._step`` and the network time inside it: ``{"step": s, "networks": s, "steps": n}``."""
    from flashdiff.engine import Engine

    clock, totals, original = NetworkClock(model), {"step": 0.0, "networks": 0.0, "steps": 0}, Engine._step

    def timed(engine: Engine) -> list:
        net, started = clock.seconds, time.perf_counter()
        out = original(engine)
        totals["step"] += time.perf_counter() - started
        totals["networks"] += clock.seconds - net
        totals["steps"] += 1
        return out

    Engine._step = timed
    try:
        yield totals
    finally:
        Engine._step = original
        clock.close()


def run(parts: dict, indices: Sequence[int], batch_size: int, batching: str) -> dict:
    """Reconstruct these test crops together; wall time, engine counters, the engine's share of a step, and
    per-image PSNR / NFE."""
    from flashdiff.engine import EngineStats
    from flashdiff.metrics import psnr
    from flashdiff.reconstruction import reconstruct

    stats = EngineStats(batch_size)
    n = len(indices)
    items = (parts["dataset"][k] for k in indices)
    with step_clock(parts["model"]) as steps:
        started, cpu = time.perf_counter(), time.process_time()
        results = list(reconstruct(items, parts["operator"], parts["model"], parts["solver"], parts["adapter"],
                                   batch_size=batch_size, batching=batching, stats=stats))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    by_index = {r.index: r for r in results}
    scores = {k: float(psnr(r.x_hat[None], r.x[None])) for k, r in by_index.items()}
    return {"batching": batching, "batch": batch_size, "seconds": seconds, "images_per_s": n / seconds,
            "cpu_s_per_image": cpu / n,
            "occupancy": stats.occupancy, "batched_steps": stats.batched_steps, "psnr": scores,
            "nfe": {k: r.nfe for k, r in by_index.items()},
            "engine_share": 1.0 - steps["networks"] / steps["step"] if steps["steps"] else float("nan"),
            "step_ms": 1e3 * steps["step"] / steps["steps"] if steps["steps"] else float("nan")}


def table(rows: list[dict], baseline: list[dict] | None = None) -> str:
    """Markdown rows: one per (solver, batch, mode), with the per-image agreement of the modes (and the baseline)."""
    extra = " max per-image ΔPSNR vs baseline (dB) |" if baseline else ""
    lines = ["| solver | batch | batching | images/s | s/image | CPU s/image | occupancy | batched steps | PSNR | "
             "mean NFE | max per-image ΔPSNR vs static (dB) | ms/step | engine share of a step |" + extra,
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * bool(baseline)]
    for r in rows:
        static = next((s for s in rows if s["solver"] == r["solver"] and s["batch"] == r["batch"]
                       and s["batching"] == "static"), r)
        delta = max(abs(r["psnr"][k] - static["psnr"][k]) for k in r["psnr"])
        line = (f"| {r['solver']} | {r['batch']} | {r['batching']} | {r['images_per_s']:.2f} | "
                f"{1 / r['images_per_s']:.3f} | {r['cpu_s_per_image']:.3f} | {r['occupancy']:.3f} | "
                f"{r['batched_steps']} | "
                f"{sum(r['psnr'].values()) / len(r['psnr']):.2f} | {sum(r['nfe'].values()) / len(r['nfe']):.1f} | "
                f"{delta:.4f} | {r['step_ms']:.1f} | {100 * r['engine_share']:.2f} % |")
        if baseline:
            same = next((b for b in baseline if all(b[k] == r[k] for k in ("solver", "batch", "batching"))), None)
            line += f" {max(abs(r['psnr'][k] - same['psnr'][k]) for k in r['psnr']):.4f} |" if same else " – |"
        lines.append(line)
    return "\n".join(lines)


def _load_rows(path: str) -> list[dict]:
    """Rows written by ``--json`` (JSON turns the per-image keys into strings: back to dataset indices)."""
    rows = json.loads(Path(path).read_text())
    return [r | {"psnr": {int(k): v for k, v in r["psnr"].items()}, "nfe": {int(k): v for k, v in r["nfe"].items()}}
            for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=124, help="toy test crops (124 = all)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--solvers", nargs="+", default=list(SOLVER_OVERRIDES), choices=list(SOLVER_OVERRIDES))
    parser.add_argument("--modes", nargs="+", default=["static", "continuous"], choices=["static", "continuous"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the rows (per-image PSNR and NFE included) to this file")
    parser.add_argument("--baseline", help="rows of another run (--json) to compare per-image PSNR with")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "throughput.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, started = [], time.perf_counter()
    for solver in args.solvers:
        parts = build(solver)
        run(parts, range(min(4, args.num_images)), 4, "continuous")  # warm-up: lazy initialisation, allocator
        for batch in args.batch_sizes:
            for batching in args.modes:
                row = run(parts, range(args.num_images), batch, batching) | {"solver": f"flash({solver})"}
                print(f"{row['solver']} batch {batch} {batching}: {row['images_per_s']:.2f} img/s, occupancy "
                      f"{row['occupancy']:.3f}, {row['batched_steps']} steps", flush=True)
                rows.append(row)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], capture_output=True, text=True, cwd=ROOT)
    head = (f"\n## {time.strftime('%Y-%m-%d %H:%M')} · commit {commit.stdout.strip()}"
            f"{' + uncommitted src changes' if dirty.stdout.strip() else ''} · {platform.machine()}, "
            f"{os.cpu_count()} CPUs, {args.threads} torch threads, torch {torch.__version__} · "
            f"{args.num_images} toy test crops · {time.perf_counter() - started:.0f} s in all\n\n"
            f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n\n")
    baseline = _load_rows(args.baseline) if args.baseline else None
    if args.json:
        Path(args.json).write_text(json.dumps(rows))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        f.write(head + table(rows, baseline) + "\n")
    print(table(rows, baseline))
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()
