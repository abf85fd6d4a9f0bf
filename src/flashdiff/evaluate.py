"""The reconstruction job: measure each test image, reconstruct it, and write per-image records that resume."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Subset
from torchvision.utils import save_image
from tqdm.auto import tqdm

from flashdiff.data.seeding import generators as sample_generators
from flashdiff.data.seeding import measurement_seed
from flashdiff.distributed import barrier, is_main_process, merge_rows, rank_and_world, shard_file, share
from flashdiff.metrics import ImageMetrics, MetricSettings, psnr, run_metrics, ssim
from flashdiff.records import append_samples, read_samples, write_summary
from flashdiff.tracking import log_reconstruction
from flashdiff.types import COUNTERS, Params, SolverOutput, Start

log = logging.getLogger(__name__)

SOLVER_NOISE_SALT = 0x51ED  # the solver's per-sample noise is seeded apart from the measurement's


def _grid_image(path: Path, x: torch.Tensor, y: torch.Tensor, x_hat: torch.Tensor, n: int = 8) -> None:
    """``grid.png``: rows clean | measurement | reconstruction for the first ``n`` images."""
    save_image(torch.cat([x[:n], y[:n].clamp(0, 1), x_hat[:n]]), path, nrow=min(n, x.shape[0]), padding=1)


def _rows(batch: dict, params: Params, begin: Start, result: SolverOutput, p: torch.Tensor, s: torch.Tensor,
          seconds: float) -> list[dict[str, Any]]:
    """One ``samples.csv`` row per image of a batch; the solver's per-sample costs come after the metrics."""
    sigma2 = [None] * len(p) if begin.sigma2_hat is None else begin.sigma2_hat.tolist()
    t_start = [None] * len(p) if result.images is not None else begin.t_start  # pixel methods run no diffusion
    return [{"index": int(batch["index"][b]), "image_id": batch["id"][b], "severity": float(params["severity"][b]),
             "sigma2_hat": sigma2[b], "t_start": t_start[b], "nfe": int(result.nfe[b]), "psnr": float(p[b]),
             "ssim": float(s[b]), "lpips": None, "seconds": seconds}
            | {name: int(getattr(result, name)[b]) for name in COUNTERS} for b in range(len(p))]


@torch.no_grad()
def evaluate(cfg: DictConfig, device: torch.device, run: Any = None, dataset: Any = None) -> dict[str, Any]:
    """Reconstruct the first ``num_images`` test images; writes samples.csv, summary.json, images/, grid.png."""
    out = Path(HydraConfig.get().runtime.output_dir)  # the CLI holds its lock (flashdiff.records.run_lock)
    for folder in ("images", "clean", "measurements"):  # reconstructions | FID's reference | the report's gallery
        (out / folder).mkdir(parents=True, exist_ok=True)
    dataset = instantiate(cfg.dataset) if dataset is None else dataset  # the CLI's preflight built it already
    n = len(dataset) if cfg.num_images is None else min(int(cfg.num_images), len(dataset))
    merge_rows(out)  # rows an interrupted multi-process run left in its shards count as done
    done = {int(r["index"]) for r in read_samples(out / "samples.csv")}
    todo = [k for k in range(n) if k not in done]
    if done:
        log.info("resuming in %s: %d of %d images already done", out, len(done), n)
    op = instantiate(cfg.operator).to(device)
    model = instantiate(cfg.model).to(device)
    solver, adapter = instantiate(cfg.solver), instantiate(cfg.adapter)
    for part in (*adapter.keywords.values(), *solver.keywords.values()):  # severity encoder, SwinIR network
        if isinstance(part, torch.nn.Module):
            part.to(device).eval()
    num_steps = int(cfg.solver.num_steps)
    metrics = ImageMetrics(metric_settings(cfg), device)  # LPIPS and the toy feature distance, per image
    rank, world = rank_and_world()  # several processes (accelerate launch): each takes every world-th image
    mine = share(todo, rank, world)
    loader = DataLoader(Subset(dataset, mine), batch_size=int(cfg.batch_size), shuffle=False)
    first_batch = rank == 0 and not (out / "grid.png").exists()
    bar = tqdm(total=len(mine), desc=_method_name(cfg), unit="img", dynamic_ncols=True, disable=rank != 0)
    for batch in loader:
        x = batch["x"].to(device)  # (B, 3, H, W)
        seeds = torch.tensor([measurement_seed(int(s), int(cfg.seed)) for s in batch["seed"]])
        params = op.draw(seeds, tuple(x.shape))
        y = op.measure(x, params, seeds)
        started = time.perf_counter()
        generators = sample_generators(seeds.tolist(), SOLVER_NOISE_SALT)
        begin = adapter(model, y, num_steps, generators)
        result = solver(model, op, y, params, begin.latents, begin.steps, generators=generators)
        if begin.score_forwards is not None:  # the adapter's own UNet forwards (DDIM encoding) count too
            result.score_forwards = result.score_forwards + begin.score_forwards.to(result.score_forwards)
        x_hat = (model.decode(result.latents) if result.images is None else result.images).clamp(0, 1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - started) / x.shape[0]
        bar.update(x.shape[0])
        bar.set_postfix(nfe=f"{result.nfe.float().mean():.0f}")
        for b in range(x.shape[0]):
            name = f"{int(batch['index'][b]):05d}.png"
            save_image(x_hat[b], out / "images" / name)
            save_image(x[b], out / "clean" / name)
            save_image(y[b].clamp(0, 1), out / "measurements" / name)
        rows = _rows(batch, params, begin, result, psnr(x_hat, x), ssim(x_hat, x), seconds)
        append_samples(shard_file(out, rank, world), [r | m for r, m in zip(rows, metrics.rows(x_hat, x))])
        if first_batch:
            _grid_image(out / "grid.png", x.cpu(), y.cpu(), x_hat.cpu())
            first_batch = False
    bar.close()
    merge_rows(out)  # the main process folds every process's rows into samples.csv, then summarises alone
    summary = summarise(cfg, out, run, device) if is_main_process() else None
    barrier()
    return summary if summary is not None else json.loads((out / "summary.json").read_text())


def _method_name(cfg: DictConfig) -> str:
    """``adapter(solver)``, e.g. ``flash(latent_dps)``."""
    name = lambda key: cfg[key]._target_.rsplit(".", 1)[-1]  # noqa: E731
    return f"{name('adapter')}({name('solver')})"


def metric_settings(cfg: DictConfig) -> MetricSettings:
    """The ``metrics`` config section (defaults where a config has none)."""
    return MetricSettings(**OmegaConf.to_container(cfg.metrics, resolve=True)) if "metrics" in cfg else MetricSettings()


def summarise(cfg: DictConfig, out: Path, run: Any = None, device: torch.device | str = "cpu") -> dict[str, Any]:
    """``summary.json`` from ``samples.csv`` and the run's image folders (never from memory); sent to the logger."""
    rows = read_samples(out / "samples.csv")
    perceptual = run_metrics(metric_settings(cfg), rows, out / "images", out / "clean", device)
    mean = lambda key: sum(float(r[key]) for r in rows) / len(rows) if rows else float("nan")  # noqa: E731
    choices = HydraConfig.get().runtime.choices
    summary = {
        "method": _method_name(cfg), "solver": choices.get("solver"), "adapter": choices.get("adapter"),
        "operator": choices.get("operator"), "dataset": choices.get("dataset"), "n_images": len(rows),
        "psnr": mean("psnr"), "ssim": mean("ssim"), **perceptual, "nfe_mean": mean("nfe"),
        "seconds_per_image": mean("seconds"), **{f"{name}_mean": mean(name) for name in COUNTERS},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    write_summary(out / "summary.json", summary)
    log.info("%s on %d images: PSNR %.2f dB, SSIM %.3f, mean NFE %.1f, %.3f s/image -> %s", summary["method"],
             len(rows), summary["psnr"], summary["ssim"], summary["nfe_mean"], summary["seconds_per_image"], out)
    log.info("LPIPS %s, FID %s, fd_toy (toy features, not FID) %s",
             *(_fmt(summary[k]) for k in ("lpips", "fid", "fd_toy")))
    if run is not None:
        log_reconstruction(run, summary, rows, out)
    return summary


def _fmt(value: float | None) -> str:
    """A metric for the console: 4 significant digits, or 'unavailable' (the reason is in summary.json)."""
    return "unavailable" if value is None else f"{value:.4g}"
