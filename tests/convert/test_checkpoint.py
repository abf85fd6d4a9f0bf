"""Safe checkpoint reading: torch.load(weights_only=True) with inert stand-ins; nothing named by a file runs."""

import os

import pytest
import torch

from flashdiff.convert import UnsafeCheckpointError, load_checkpoint
from flashdiff.convert.checkpoint import Stripped, plain, tensors_of
from flashdiff.convert.mapping import ConversionError, Renamer
from tests.convert.common import lightning_extras


class Shell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_lightning_objects_become_inert_stand_ins(tmp_path, zip_format):
    torch.save({"state_dict": {"w": torch.ones(2)}} | lightning_extras(), tmp_path / "a.ckpt",
               _use_new_zipfile_serialization=zip_format)
    ckpt = load_checkpoint(tmp_path / "a.ckpt")  # never_called would raise if it ran
    assert isinstance(ckpt["trap"], Stripped) and isinstance(ckpt["namespace"], Stripped)
    assert ckpt["global_step"] == 1234 and torch.equal(tensors_of(ckpt)["w"], torch.ones(2))
    (key,) = ckpt["callbacks"]
    assert issubclass(key, Stripped) and "LightningCallback" in key.name
    assert plain({"a": ckpt["namespace"], "b": [1, "x"]}) == {"a": None, "b": [1, "x"]}


def test_blocked_modules_fail_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    for zip_format in (True, False):
        torch.save({"state_dict": {}, "x": Shell(f"touch {marker}")}, tmp_path / "evil.ckpt",
                   _use_new_zipfile_serialization=zip_format)
        with pytest.raises(UnsafeCheckpointError, match=r"weights_only=True.*(system|blocked)"):
            load_checkpoint(tmp_path / "evil.ckpt")
    assert not marker.exists()
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_renamer_reports_leftovers_and_splits_legacy_qkv():
    c, d = 4, 2
    qkv = torch.arange(3 * c * c, dtype=torch.float32).reshape(3 * c, c, 1)
    r = Renamer({"att.qkv.weight": qkv, "att.qkv.bias": torch.arange(3 * c, dtype=torch.float32),
                 "att.norm.weight": torch.ones(c), "extra.weight": torch.ones(1)})
    r.legacy_attention("att", "a", head_channels=d)
    # head h owns rows [h*3d, h*3d+d) for q, the next d for k, then v
    torch.testing.assert_close(r.out["a.to_q.bias"], torch.tensor([0.0, 1, 6, 7]))
    torch.testing.assert_close(r.out["a.to_k.bias"], torch.tensor([2.0, 3, 8, 9]))
    torch.testing.assert_close(r.out["a.to_v.weight"][2], qkv[10, :, 0])
    with pytest.raises(ConversionError, match=r"1 checkpoint weights have no place.*extra.weight"):
        r.done("test")
