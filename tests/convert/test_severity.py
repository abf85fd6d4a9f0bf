"""The authors' severity-encoder checkpoints -> flashdiff SeverityEncoder folders computing the same (ẑ, σ̂²)."""

import json

import pytest
import torch
import yaml

from flashdiff.convert import ConversionError, convert_severity_encoder
from flashdiff.convert.__main__ import main
from flashdiff.severity import SeverityEncoder
from tests.convert.common import ldm_config, write_severity


def _check_same(ref, folder):
    enc = SeverityEncoder.from_pretrained(folder)
    torch.manual_seed(2)
    y = torch.rand(3, 3, 32, 32)  # [0, 1]; the authors' encoder sees [-1, 1]
    with torch.no_grad():
        z_hat, sigma2 = enc(y)
        z_ref, var_ref = ref(2 * y - 1)
    torch.testing.assert_close(z_hat, z_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sigma2, var_ref, rtol=1e-4, atol=1e-7)
    return enc


def test_full_lightning_checkpoint(tmp_path):
    ref = write_severity(tmp_path / "sevenc_gblur_celeba256.ckpt", light=False)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(ldm_config()))  # the LDM it was trained from
    convert_severity_encoder(tmp_path / "sevenc_gblur_celeba256.ckpt", tmp_path / "out",
                             ldm_config=tmp_path / "config.yaml")
    enc = _check_same(ref, tmp_path / "out")
    assert enc.scale_factor == 1.0 and enc.autoencoder_class == "VQModel"
    meta = json.loads((tmp_path / "out" / "config.json").read_text())["metadata"]
    assert meta["operator_config"]["max_std"] == 3.0 and meta["noise_config"]["sigma_max"] == 0.05


def test_light_checkpoint_carries_its_architecture(tmp_path):
    ref = write_severity(tmp_path / "light.ckpt", light=True, seed=5)
    assert main(["severity", "--ckpt", str(tmp_path / "light.ckpt"), "--out", str(tmp_path / "out")]) == 0
    _check_same(ref, tmp_path / "out")


def test_wrong_architecture_or_not_an_encoder_fails_clearly(tmp_path):
    write_severity(tmp_path / "full.ckpt", light=False)
    with pytest.raises(ConversionError, match="does not fit the architecture"):  # default VQ-f4 vs tiny weights
        convert_severity_encoder(tmp_path / "full.ckpt", tmp_path / "out")
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "other.ckpt")
    with pytest.raises(ConversionError, match="no σ head"):
        convert_severity_encoder(tmp_path / "other.ckpt", tmp_path / "out")
