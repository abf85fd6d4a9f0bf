"""The paper's experiment presets: every experiment x solver x adapter composes, Table 2's tuned values arrive
automatically, a missing dataset fails fast and clearly, and a stand-in FFHQ run writes the output contract."""

from __future__ import annotations

import json
import subprocess
import time

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from flashdiff.data import split_ids
from tests.command import command
from tests.test_config import CONF, _compose

PAPER = [f"{d}_{t}" for d in ("ffhq", "lsun") for t in ("varblur", "fixblur", "nlblur", "inpaint")]
DIFFUSION = ["dps", "latent_dps", "gml_dps", "psld", "resample"]
CASES = [(e, s, a) for e in PAPER for s in DIFFUSION for a in ("none", "flash")]
CASES += [(e, "latent_dps", "ae") for e in PAPER] + [(e, "swinir", "none") for e in PAPER]

# Paper Table 2 (METHOD.md §6), typed in here from the paper, independently of conf/tuned/:
# columns DPS η | LDPS η | Flash(LDPS) η, c | GML η, γ | Flash(GML) η, γ, c | PSLD η, γ | Flash(PSLD) η, γ, c |
# ReSample ω | Flash(ReSample) ω, c; None = "–".
TABLE2 = {
    "ffhq_varblur": (5.0, 0.1, (1.0, 1.2), (0.2, 0.05), (3.0, 0.05, 1.2), (0.2, 0.05), (2.0, 0.2, 1.0),
                     400, (400, 1.2)),
    "ffhq_fixblur": (3.0, 0.1, (3.0, 1.2), (0.2, 0.05), (2.0, 0.05, 1.0), (0.2, 0.1), (2.0, 0.1, 1.0),
                     4000, (2000, 1.2)),
    "ffhq_nlblur": (0.5, 0.1, (1.0, 1.0), (0.2, 0.1), (3.0, 0.05, 1.2), None, None,
                    400, (200, 1.0)),
    "ffhq_inpaint": (3.0, 0.3, (7.0, 1.2), (0.5, 0.1), (10.0, 0.05, 1.2), (0.5, 0.05), (10.0, 0.5, 1.0),
                     200, (200, 1.2)),
    "lsun_varblur": (None, 0.1, (2.0, 1.2), (0.2, 0.1), (2.0, 0.05, 1.2), (0.2, 0.2), (2.0, 0.2, 1.0),
                     2000, (1000, 1.2)),
    "lsun_fixblur": (None, 0.1, (2.0, 1.0), (0.2, 0.1), (2.0, 0.05, 1.0), (0.2, 0.1), (2.0, 0.1, 1.0),
                     2000, (200, 1.2)),
    "lsun_nlblur": (None, 0.1, (2.0, 1.0), (0.2, 0.1), (2.0, 0.05, 1.0), None, None,
                    1000, (1000, 1.0)),
    "lsun_inpaint": (None, 0.2, (10.0, 1.2), (0.4, 0.1), (10.0, 0.05, 1.0), (0.4, 0.05), (10.0, 0.05, 1.2),
                     1000, (400, 1.2)),
}


def table2(experiment: str, solver: str, adapter: str) -> dict[str, float] | None:
    """Table 2's values for a method as ``{"solver.eta": ..., "adapter.c": ...}``; None where the paper has none."""
    dps, ldps, fldps, gml, fgml, psld, fpsld, rs, frs = TABLE2[experiment]
    cell = {("dps", "none"): dps, ("latent_dps", "none"): ldps, ("latent_dps", "flash"): fldps,
            ("gml_dps", "none"): gml, ("gml_dps", "flash"): fgml, ("psld", "none"): psld,
            ("psld", "flash"): fpsld, ("resample", "none"): rs, ("resample", "flash"): frs}.get((solver, adapter))
    if cell is None:
        return None
    values = cell if isinstance(cell, tuple) else (cell,)
    keys = {"dps": ["solver.eta"], "latent_dps": ["solver.eta"], "gml_dps": ["solver.eta", "solver.gamma"],
            "psld": ["solver.eta", "solver.gamma"], "resample": ["solver.omega"]}[solver]
    keys = keys + (["adapter.c"] if adapter == "flash" else [])
    assert len(keys) == len(values)
    return dict(zip(keys, values))


@pytest.mark.parametrize(("experiment", "solver", "adapter"), CASES, ids=["-".join(c) for c in CASES])
def test_experiment_picks_table2_values(experiment, solver, adapter, tmp_path):
    cfg = _compose("config", [f"+experiment={experiment}", f"solver={solver}", f"adapter={adapter}",
                              f"hydra.run.dir={tmp_path}"])
    assert (cfg.hydra.runtime.choices.solver, cfg.hydra.runtime.choices.adapter) == (solver, adapter)
    expected = table2(experiment, solver, adapter)
    tuned = CONF / "tuned" / experiment / f"{solver}_{adapter}.yaml"
    if expected is not None:
        for key, value in expected.items():
            assert OmegaConf.select(cfg, key) == pytest.approx(value), key
        if solver == "dps":  # pixel DPS runs on the experiment's pixel model, with no model= on the command line
            assert cfg.model._target_.endswith("PixelDiffusion.from_pretrained")
            assert cfg.model.path == "google/ddpm-ema-celebahq-256"
    elif solver == "swinir":
        family = "blur" if "blur" in experiment and "nl" not in experiment else experiment.split("_")[1]
        data = "celebahq256" if experiment.startswith("ffhq") else "lsun_bedrooms256"
        assert cfg.solver.folder.endswith(f"/swinir_{data}_{family}")
    else:  # no Table 2 entry (DPS on LSUN, PSLD on nonlinear blur, DPS+Flash, AE): the solver's own defaults
        assert not tuned.exists()
        defaults = OmegaConf.load(CONF / "solver" / f"{solver}.yaml")
        assert all(cfg.solver[k] == defaults[k] for k in ("eta", "gamma", "omega") if k in defaults)


def test_every_tuned_file_belongs_to_an_experiment_and_holds_only_tuned_keys():
    allowed = {"solver.eta", "solver.gamma", "solver.omega", "adapter.c", "solver.folder"}
    files = sorted((CONF / "tuned").glob("*/*.yaml"))
    assert len(files) == sum(table2(*c) is not None for c in CASES) + len(PAPER)  # + one SwinIR file each
    for f in files:
        assert f.parent.name in PAPER, f
        solver, adapter = f.stem.rsplit("_", 1)
        assert (CONF / "solver" / f"{solver}.yaml").exists() and (CONF / "adapter" / f"{adapter}.yaml").exists()
        text = f.read_text()
        assert text.startswith("# @package _global_")
        leaves = {k for k in _leaves(OmegaConf.to_container(OmegaConf.create(text)))}
        if f.stem == "dps_none":  # and the switch to the experiment's pixel model
            assert OmegaConf.create(text)._get_node("model")._value() == "${pixel_model}"
            leaves -= {"model"}
        assert leaves <= allowed, (f.name, leaves - allowed)


def _leaves(node: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in node.items():
        out += _leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return out


@pytest.mark.parametrize("experiment", PAPER)
def test_experiment_models_data_and_default_method(experiment, tmp_path):
    cfg = _compose("config", [f"+experiment={experiment}", f"hydra.run.dir={tmp_path}"])
    choices = cfg.hydra.runtime.choices
    ffhq = experiment.startswith("ffhq")
    assert choices.dataset == ("ffhq256" if ffhq else "lsun_bedrooms256")
    assert choices.model == ("ldm_celebahq256" if ffhq else "ldm_lsun_bedrooms256")  # FFHQ: the CelebA-HQ LDM
    assert cfg.severity_encoder.endswith("celeba256" if ffhq else "lsun_bedroom")
    assert (choices.solver, choices.adapter) == ("latent_dps", "flash") and cfg.num_images == 200
    task = experiment.split("_")[1]
    assert choices.operator == {"varblur": "blur_varying", "fixblur": "blur_fixed", "nlblur": "nonlinear_blur",
                                "inpaint": "inpaint"}[task]
    assert cfg.solver.eta == TABLE2[experiment][2][0] and cfg.adapter.c == TABLE2[experiment][2][1]


SEVERITY = [(d, t) for d in ("celebahq", "lsun") for t in ("blur", "nlblur", "inpaint")]


@pytest.mark.parametrize(("data", "task"), SEVERITY, ids=[f"{d}_{t}" for d, t in SEVERITY])
def test_severity_presets_follow_the_paper_recipe(data, task, tmp_path):
    cfg = _compose("training", [f"+experiment=train_severity_{data}_{task}", f"hydra.run.dir={tmp_path}"])
    choices, train = cfg.hydra.runtime.choices, cfg.train
    assert choices.dataset == {"celebahq": "celebahq256", "lsun": "lsun_bedrooms256"}[data]
    assert choices.model == {"celebahq": "ldm_celebahq256", "lsun": "ldm_lsun_bedrooms256"}[data]
    assert cfg.dataset.split == "train" and train._target_.endswith("train_severity_encoder")
    assert (train.loop.lr, train.loop.batch_size, train.loss.lambda_sigma, train.loss.lambda_im) == (1e-4, 28, 10, 1.0)
    assert train.loop.steps == 200_000 and not train.loss.detach_target and train.model.unet_subfolder is None
    assert train.head == {"_target_": "flashdiff.severity.encoder.ConvHead", "_partial_": True, "lr_mult": 1}
    assert train.output_dir.endswith(f"severity_{choices.dataset}_{task}")
    target = {"blur": "GaussianBlur", "nlblur": "NonlinearBlur", "inpaint": "Inpainting"}[task]
    assert train.operator._target_.endswith(target) and list(train.operator.train_severity_range) == [0.0, 1.0]


@pytest.mark.parametrize("experiment", PAPER)
def test_every_swinir_folder_an_experiment_reads_has_a_training_preset(experiment, tmp_path):
    folder = _compose("config", [f"+experiment={experiment}", "solver=swinir", "adapter=none",
                                 f"hydra.run.dir={tmp_path}"]).solver.folder
    data = "celebahq" if "celebahq256" in folder else "lsun"
    task = folder.rsplit("_", 1)[-1]
    cfg = _compose("training", [f"+experiment=train_swinir_{data}_{task}", f"hydra.run.dir={tmp_path}"])
    train = cfg.train
    assert train._target_.endswith("train_swinir") and train.output_dir == folder  # writes what the experiment reads
    assert cfg.dataset.split == "train" and train.arch.img_size == 256 and list(train.arch.depths) == [6] * 4
    assert (train.loop.lr, train.loop.batch_size) == (2e-4, 28)  # the paper's SwinIR recipe (App. A)
    target = {"blur": "GaussianBlur", "nlblur": "NonlinearBlur", "inpaint": "Inpainting"}[task]
    assert train.operator._target_.endswith(target)


def _cli(*args: str, cwd) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    proc = command(*args, cwd=cwd, env={"WANDB_MODE": "offline"})  # a run that got as far as the logger would log
    return proc, time.perf_counter() - started


def test_missing_inputs_fail_fast_naming_keys_and_model_id(tmp_path):
    proc, seconds = _cli("+experiment=ffhq_varblur", f"paths.data_dir={tmp_path / 'data'}",
                         f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "paths.ffhq_dir=" in err and "found 0 of the 200 FFHQ 256 test images" in err
    assert "img<id as 8 digits>.png" in err  # the layout, and how to provide it
    assert "model.path=CompVis/ldm-celebahq-256" in err and "hf download" in err  # both missing inputs at once
    assert "wandb" not in err.lower() and not (tmp_path / "run" / "wandb").exists()  # preflight: before the logger
    assert seconds < 30  # the bar is 20 s on an idle machine with the interpreter's start (not timed here: in-process)
    proc, _ = _cli("+experiment=ffhq_varblur", "solver=dps", "adapter=none", f"paths.data_dir={tmp_path / 'data'}",
                   f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "paths.ffhq_dir=" in err  # pixel DPS names its own model and key
    assert "pixel_model=ddpm_celebahq256" in err and "pixel_model.path=google/ddpm-ema-celebahq-256" in err
    assert "CompVis" not in err  # the LDM is not needed for pixel DPS


def _stand_in_ldm(folder) -> None:
    """A tiny random VQ-f4 LDM for 256x256 images (vqvae/ + unet/), the layout of model=ldm_celebahq256."""
    import torch
    from diffusers import UNet2DModel, VQModel

    from flashdiff.diffusion import LatentDiffusion

    torch.manual_seed(0)
    vq = VQModel(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 3,
                 up_block_types=["UpDecoderBlock2D"] * 3, block_out_channels=[8, 8, 8], layers_per_block=1,
                 latent_channels=3, num_vq_embeddings=16, norm_num_groups=4, sample_size=256)
    unet = UNet2DModel(sample_size=64, in_channels=3, out_channels=3, block_out_channels=[8, 16],
                       layers_per_block=1, down_block_types=["DownBlock2D"] * 2, up_block_types=["UpBlock2D"] * 2,
                       norm_num_groups=4)
    LatentDiffusion(vq, unet, scale_factor=1.0).save_pretrained(folder, autoencoder_subfolder="vqvae")


def _stand_in_pixel_ddpm(folder) -> None:
    """A tiny random pixel DDPM for 256x256 images (unet/ + scheduler/), the layout of model=ddpm_celebahq256."""
    import torch
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    UNet2DModel(sample_size=256, block_out_channels=[8, 16], layers_per_block=1, down_block_types=["DownBlock2D"] * 2,
                up_block_types=["UpBlock2D"] * 2, norm_num_groups=4).save_pretrained(folder / "unet")
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(folder / "scheduler")


def test_stand_in_ffhq_run_writes_the_output_contract(tmp_path):  # ~60 s: three CLI runs
    from flashdiff.diffusion import LatentDiffusion
    from flashdiff.severity import SeverityEncoder

    ffhq = tmp_path / "ffhq"
    rng = np.random.default_rng(0)
    for i in split_ids("ffhq", "test")[:2]:
        path = ffhq / f"{int(i) // 1000:05d}" / f"img{int(i):08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        smooth = np.kron(rng.integers(0, 256, (16, 16, 3)), np.ones((16, 16, 1))).astype(np.uint8)
        Image.fromarray(smooth).save(path)
    _stand_in_ldm(tmp_path / "ldm")
    ldm = LatentDiffusion.from_pretrained(tmp_path / "ldm", autoencoder_subfolder="vqvae", scale_factor=1.0,
                                          autoencoder_class="VQModel")
    SeverityEncoder.from_latent_diffusion(ldm).save_pretrained(tmp_path / "encoder")
    out = tmp_path / "run"
    proc, _ = _cli("+experiment=ffhq_varblur", "num_images=2", "batch_size=2", f"paths.ffhq_dir={ffhq}",
                   f"model.path={tmp_path / 'ldm'}", f"severity_encoder={tmp_path / 'encoder'}",
                   "solver.num_steps=4", "solver.delta=1.0", f"hydra.run.dir={out}", "logger=disabled", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 2 and summary["dataset"] == "ffhq256" and summary["method"] == "flash(latent_dps)"
    assert summary["config"]["solver"]["eta"] == 1.0 and summary["config"]["adapter"]["c"] == 1.2  # Table 2
    rows = (out / "samples.csv").read_text().splitlines()
    assert len(rows) == 3 and "/00064/img00064290" in rows[1]
    assert len(list((out / "images").glob("*.png"))) == 2 and (out / "grid.png").exists()
    _stand_in_pixel_ddpm(tmp_path / "ddpm")  # pixel DPS: solver and adapter switched, model from the experiment
    proc, _ = _cli("+experiment=ffhq_varblur", "solver=dps", "adapter=none", "num_images=1", f"paths.ffhq_dir={ffhq}",
                   f"pixel_model.path={tmp_path / 'ddpm'}", "solver.num_steps=3", "solver.delta=1.0",
                   f"hydra.run.dir={tmp_path / 'dps'}", "logger=disabled", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "dps" / "summary.json").read_text())
    assert summary["method"] == "none(dps)" and summary["nfe_mean"] == 3 and summary["config"]["solver"]["eta"] == 5.0
    assert summary["config"]["model"]["path"] == str(tmp_path / "ddpm")
    job, _ = _cli("+experiment=ffhq_varblur", "solver=psld", "adapter=none", "--cfg", "job", cwd=tmp_path)
    solver = OmegaConf.create(job.stdout).solver  # the command line switches solver and Table 2 values follow
    assert solver._target_.endswith("psld") and (solver.eta, solver.gamma) == (0.2, 0.05)
