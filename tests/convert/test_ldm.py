"""latent-diffusion model.ckpt + config.yaml -> diffusers folder whose models compute the originals' outputs."""

import json

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import InstantiationException
from hydra.utils import instantiate

import flashdiff.paths  # noqa: F401  (registers the ${flashdiff_root:} resolver)
from flashdiff.convert import ConversionError, convert_ldm
from flashdiff.convert.__main__ import main
from flashdiff.convert.checkpoint import load_checkpoint, tensors_of
from flashdiff.diffusion import LatentDiffusion, ModelNotFoundError, Schedule
from flashdiff.errors import InputError
from tests.conftest import ROOT
from tests.convert.common import write_ldm


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    src, out = tmp_path_factory.mktemp("ldm_src"), tmp_path_factory.mktemp("models") / "ldm_lsun_bedrooms256"
    modules = write_ldm(src)
    convert_ldm(src / "model.ckpt", out)
    return modules, out


@pytest.mark.parametrize("attention_resolutions", [(2,), (1, 2)], ids=["attn-ds2", "attn-ds1-ds2"])
def test_converted_ldm_reproduces_the_original(attention_resolutions, tmp_path):
    ref = write_ldm(tmp_path / "src", attention_resolutions=attention_resolutions)
    convert_ldm(tmp_path / "src" / "model.ckpt", tmp_path / "out")
    model = LatentDiffusion.from_pretrained(tmp_path / "out", autoencoder_subfolder="vqvae", unet_subfolder="unet")
    assert model.scale_factor == 1.0 and model.latent_shape == (3, 16, 16)
    torch.manual_seed(1)
    x = torch.rand(2, 3, 32, 32)  # [0, 1]
    with torch.no_grad():
        z = model.encode(x)
        torch.testing.assert_close(z, ref["first_stage"].encode(2 * x - 1), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model.decode(z), (ref["first_stage"].decode(z) + 1) / 2, rtol=1e-4, atol=1e-5)
        i = torch.tensor([0, 999])
        torch.testing.assert_close(model.eps(z, i), ref["ema_unet"](z, i), rtol=1e-4, atol=1e-5)  # EMA weights
        assert not torch.allclose(model.eps(z, i), ref["unet"](z, i), atol=1e-3)


def test_raw_weights_without_ema_or_on_request(tmp_path):
    ref = write_ldm(tmp_path / "ema", seed=3)
    convert_ldm(tmp_path / "ema" / "model.ckpt", tmp_path / "raw", use_ema=False)
    write_ldm(tmp_path / "plain", ema=False, seed=3)
    convert_ldm(tmp_path / "plain" / "model.ckpt", tmp_path / "plain_out")
    z, i = torch.randn(1, 3, 16, 16), torch.tensor([500])
    for out in ("raw", "plain_out"):
        model = LatentDiffusion.from_pretrained(tmp_path / out, autoencoder_subfolder="vqvae")
        with torch.no_grad():
            torch.testing.assert_close(model.eps(z, i), ref["unet"](z, i), rtol=1e-4, atol=1e-5)
        assert json.loads((tmp_path / out / "conversion.json").read_text())["ema"] is False


def test_folder_layout_and_schedule(converted):
    _, out = converted
    assert {p.name for p in out.iterdir()} >= {"vqvae", "unet", "scheduler", "conversion.json"}
    vq_config = json.loads((out / "vqvae" / "config.json").read_text())
    assert vq_config["scaling_factor"] == 1.0 and vq_config["_class_name"] == "VQModel"
    assert not list(out.rglob("*.bin")) and list(out.rglob("*.safetensors"))
    from diffusers import DDPMScheduler

    betas = DDPMScheduler.from_pretrained(out / "scheduler").betas.double()
    torch.testing.assert_close(betas, Schedule.ldm().betas, rtol=1e-6, atol=1e-9)


def test_model_config_loads_the_converted_folder_and_explains_a_missing_one(converted, tmp_path):
    _, out = converted
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", [f"paths.models_dir={out.parent}", "model=ldm_lsun_bedrooms256"])
        missing = compose("config", [f"paths.models_dir={tmp_path}", "model=ldm_lsun_bedrooms256"])
    model = instantiate(cfg.model)
    assert isinstance(model, LatentDiffusion) and model.scale_factor == 1.0
    with pytest.raises(InstantiationException, match=r"model.path=.*ldm_lsun_bedrooms256.*python -m flashdiff.convert"):
        instantiate(missing.model)
    from flashdiff.diffusion.hub import resolve_model_path

    with pytest.raises(ModelNotFoundError, match=r"--out .*ldm_lsun_bedrooms256.*lsun_bedrooms.zip"):
        resolve_model_path(str(tmp_path / "ldm_lsun_bedrooms256"), ["vqvae", "unet"])


def test_lightning_objects_are_stripped_never_run(tmp_path):
    from flashdiff.convert.checkpoint import Stripped

    write_ldm(tmp_path)  # the checkpoint pickles a class key, a Namespace and a callable (never_called raises)
    ckpt = load_checkpoint(tmp_path / "model.ckpt")
    assert isinstance(ckpt["trap"], Stripped) and isinstance(ckpt["namespace"], Stripped)  # built inert, not run
    (callback,) = ckpt["callbacks"]  # the pickled class key is a stand-in class, its value kept as plain data
    assert issubclass(callback, Stripped) and callback.name == "tests.convert.common.LightningCallback"
    assert ckpt["callbacks"][callback]["dirpath"] == "/logs" and ckpt["epoch"] == 3
    assert all(isinstance(v, torch.Tensor) for v in ckpt["state_dict"].values())
    out = convert_ldm(tmp_path / "model.ckpt", tmp_path / "out", config=tmp_path / "config.yaml")
    assert LatentDiffusion.from_pretrained(out, autoencoder_subfolder="vqvae").latent_shape == (3, 16, 16)


def test_incomplete_ema_wrong_schedule_and_mismatched_config_fail_clearly(tmp_path):
    write_ldm(tmp_path)
    sd = tensors_of(load_checkpoint(tmp_path / "model.ckpt"))
    del sd[next(k for k in sd if k.startswith("model_ema.diffusion_model"))]
    torch.save({"state_dict": sd}, tmp_path / "partial.ckpt")
    with pytest.raises(ConversionError, match="EMA copy lacks 1 of .*--no-ema"):
        convert_ldm(tmp_path / "partial.ckpt", tmp_path / "out", config=tmp_path / "config.yaml")
    convert_ldm(tmp_path / "partial.ckpt", tmp_path / "out", config=tmp_path / "config.yaml", use_ema=False)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["model"]["params"]["linear_end"] = 0.02
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConversionError, match="linear_end"):
        convert_ldm(tmp_path / "model.ckpt", tmp_path / "out", config=tmp_path / "other.yaml")
    config["model"]["params"]["linear_end"] = 0.0195
    config["model"]["params"]["unet_config"]["params"]["num_res_blocks"] = 2
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConversionError, match="does not match its config"):
        convert_ldm(tmp_path / "model.ckpt", tmp_path / "out", config=tmp_path / "other.yaml")


def test_command_line(tmp_path, capsys):
    write_ldm(tmp_path / "src")
    assert main(["ldm", "--ckpt", str(tmp_path / "src" / "model.ckpt"), "--out", str(tmp_path / "out")]) == 0
    assert f"model.path={tmp_path / 'out'}" in capsys.readouterr().out
    with pytest.raises(InputError, match="nope.ckpt: no such checkpoint"):
        main(["ldm", "--ckpt", str(tmp_path / "nope.ckpt"), "--out", str(tmp_path / "x")])
    with pytest.raises(InputError, match="no.yaml: no such config file.*--config"):
        main(["ldm", "--ckpt", str(tmp_path / "src" / "model.ckpt"), "--config", str(tmp_path / "no.yaml"),
              "--out", str(tmp_path / "x")])
    (tmp_path / "src" / "config.yaml").unlink()  # falls back on the paper's LDM-VQ-4 config: not this tiny model
    with pytest.raises(ConversionError, match="does not fit the architecture"):
        convert_ldm(tmp_path / "src" / "model.ckpt", tmp_path / "x")


@pytest.mark.parametrize("content, reason", [(b"", "ends early"), (b"not a checkpoint", "Unsupported operand"),
                                             (None, "no such checkpoint file")], ids=["empty", "garbage", "folder"])
def test_a_file_it_cannot_read_ends_in_one_line_naming_it(tmp_path, content, reason):
    import subprocess
    import sys

    ckpt = tmp_path / "model.ckpt"
    if content is None:
        ckpt.mkdir()
    else:
        ckpt.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "flashdiff.convert", "ldm", "--ckpt", str(ckpt), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if "error" in x]
    assert line.startswith(f"flashdiff.convert: error: {ckpt}") and reason in line
    (config := tmp_path / "config.yaml").write_text("model: [\n")
    proc = subprocess.run([sys.executable, "-m", "flashdiff.convert", "ldm", "--ckpt", str(ckpt), "--config",
                           str(config), "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and f"error: {config}: not a YAML config" in proc.stderr


def test_a_file_it_cannot_read_is_refused_before_the_heavy_imports(tmp_path):
    """A missing checkpoint or a broken config: neither torch nor diffusers loaded; an unreadable one: no diffusers."""
    import subprocess
    import sys

    (missing := tmp_path / "folder.ckpt").mkdir()
    (empty := tmp_path / "empty.ckpt").write_bytes(b"")
    (config := tmp_path / "cfg" / "config.yaml").parent.mkdir()  # not beside the checkpoints: they use the default
    config.write_text("model: [\n")
    code = ("import sys\nfrom flashdiff.convert.__main__ import main\nfrom flashdiff.errors import InputError\n"
            "for args in sys.argv[1:]:\n    try:\n        main(['ldm', *args.split(), '--out', 'out'])\n"
            "    except InputError:\n        print(sorted({'torch', 'diffusers'} & set(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", code, f"--ckpt {missing}", f"--ckpt {empty} --config {config}",
                           f"--ckpt {empty}"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.stdout.splitlines() == ["[]", "[]", "['torch']"], proc.stdout + proc.stderr
