"""bench/batch_shape.py: image lists parse, and a run writes one row per image with its PSNR under every shape."""

import sys

import torch

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import batch_shape  # noqa: E402


def test_index_lists_take_single_indices_and_ranges():
    assert batch_shape.indices(["3", "5-7", "10"]) == [3, 5, 6, 7, 10]


def test_a_run_appends_a_row_per_image_and_its_spread(tmp_path, monkeypatch):
    out = tmp_path / "batch_shape.md"
    monkeypatch.setattr(sys, "argv", ["batch_shape.py", "--indices", "0-2", "--shapes", "alone", "2:static",
                                      "2:continuous", "--overrides", "+experiment=toy_varblur", "adapter=ae",
                                      "--out", str(out)])
    threads = torch.get_num_threads()
    try:
        batch_shape.main()  # the script's own entry, in this process
    finally:
        torch.set_num_threads(threads)
    text = out.read_text()
    assert "| test index | alone | 2:static | 2:continuous | spread (dB) |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [r.split(" | ")[0] for r in rows] == ["| 0", "| 1", "| 2"]
    psnrs = [float(v) for r in rows for v in r.strip("| ").split(" | ")[1:4]]
    assert all(15 < v < 45 for v in psnrs)
    assert "3 of 3 images within 0.001 dB" in text  # the autoencoder alone: nothing to diffuse, nothing to amplify
