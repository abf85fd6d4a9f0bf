"""``flashdiff.rank``: measurements ranked by σ̂² (and by the noise-only σ̂², paper Fig. 5), the CSV, the contact
sheet, the command and its one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from flashdiff.data import ToyImages, measurement_seed
from flashdiff.errors import ConfigError
from flashdiff.operators import GaussianBlur, image_noise_seed
from flashdiff.rank import COLUMNS, rank_dataset, read_ranking, severity_scores
from flashdiff.report.contact_sheet import HEADING_PX, LABEL_PX
from flashdiff.severity import SeverityEncoder
from tests.command import command
from tests.conftest import ROOT

SEED = 3  # a run seed other than 0, so that the mixing of image and run seeds is exercised


@pytest.fixture(scope="module")
def toy():
    return ToyImages("test", downscale=2)  # conf/dataset/toy.yaml: the bundled 2x world


@pytest.fixture(scope="module")
def encoder(tiny_encoder_dir):
    return SeverityEncoder.from_pretrained(tiny_encoder_dir)


def blur() -> GaussianBlur:
    return GaussianBlur(kernel_size=19, max_std=3.0, noise_std=0.05)  # conf/operator/toy_blur_varying.yaml


@pytest.fixture(scope="module")
def ranked(tmp_path_factory, encoder, toy):
    out = tmp_path_factory.mktemp("rank")
    summary = rank_dataset(out, encoder, blur(), toy, num_images=7, batch_size=3, seed=SEED, k=3, tile=48,
                           progress=False)
    return out, summary


def test_one_row_per_image_hardest_first(ranked):
    out, summary = ranked
    rows = read_ranking(out / "ranking.csv")
    assert tuple(rows[0]) == COLUMNS and len(rows) == 7 == summary["images"]
    assert sorted(int(r["index"]) for r in rows) == list(range(7))
    assert [int(r["rank"]) for r in rows] == list(range(1, 8))
    sigma2 = [float(r["sigma2_hat"]) for r in rows]
    assert sigma2 == sorted(sigma2, reverse=True)
    for r in rows:
        extra = float(r["sigma2_hat"]) - float(r["sigma2_hat_noise_only"])
        assert float(r["sigma2_hat_degradation"]) == pytest.approx(extra, rel=1e-4, abs=1e-6)
    info = json.loads((out / "ranking.json").read_text())
    assert info["shown"] == {"hardest": 3, "easiest": 3} and info["seed"] == SEED
    assert -1.0 <= info["spearman_sigma2_hat_severity"] <= 1.0


@torch.no_grad()
def test_both_measurements_share_the_noise_of_the_run(ranked, encoder, toy):
    rows = {int(r["index"]): r for r in read_ranking(ranked[0] / "ranking.csv")}
    item, op = toy[4], blur()
    seed = measurement_seed(item["seed"], SEED)
    n = torch.randn(item["x"].shape, generator=torch.Generator().manual_seed(image_noise_seed(seed)))  # (3, H, W)
    x = item["x"][None]
    params = op.draw(torch.tensor([seed]), tuple(x.shape))
    y = op.measure(x, params, torch.tensor([seed]))  # how python -m flashdiff measures image 4
    torch.testing.assert_close(y - op.A(x, params), 0.05 * n[None], atol=1e-5, rtol=0)
    assert float(rows[4]["severity"]) == pytest.approx(float(params["severity"]), abs=1e-6)
    assert float(rows[4]["sigma2_hat"]) == pytest.approx(float(encoder(y)[1]), rel=1e-4)
    assert float(rows[4]["sigma2_hat_noise_only"]) == pytest.approx(float(encoder(x + 0.05 * n[None])[1]), rel=1e-4)


def test_batch_size_does_not_change_the_values(encoder, toy):
    one = severity_scores(encoder, blur(), toy, num_images=5, batch_size=1, seed=SEED, progress=False)
    five = severity_scores(encoder, blur(), toy, num_images=5, batch_size=5, seed=SEED, progress=False)
    assert [r["index"] for r in one] == [r["index"] for r in five]
    for key in ("severity", "sigma2_hat", "sigma2_hat_noise_only"):
        torch.testing.assert_close(torch.tensor([r[key] for r in one]), torch.tensor([r[key] for r in five]),
                                   rtol=1e-5, atol=1e-7)


def test_contact_sheet_has_the_layout_size(ranked):
    with Image.open(ranked[0] / "contact_sheet.png") as sheet:
        assert sheet.size == (3 * 48, 2 * (HEADING_PX + LABEL_PX + 2 * 48))  # k columns; hardest, easiest bands


def test_bundled_encoder_ranks_by_blur(tmp_path, toy):
    # first 32 test crops: Spearman 0.47 for σ̂², 0.08 for the noise-only σ̂² (0.59 / 0.07 on all 124)
    encoder = SeverityEncoder.from_pretrained(ROOT / "models" / "toy_severity_blur")
    info = rank_dataset(tmp_path, encoder, blur(), toy, num_images=32, batch_size=16, k=2, tile=32, progress=False)
    assert info["spearman_sigma2_hat_severity"] > 0.3
    assert info["spearman_sigma2_hat_severity"] > info["spearman_noise_only_severity"] + 0.2


def run_rank(tmp_path, *args):
    return command(f"hydra.run.dir={tmp_path / 'run'}", *args, module="flashdiff.rank", cwd=tmp_path)


def test_command_writes_the_three_files(tmp_path, tiny_encoder_dir):
    proc = run_rank(tmp_path, f"severity_encoder={tiny_encoder_dir}", "num_images=3", "batch_size=2", "+rank.k=2",
                    "+rank.tile=32", "device=cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(read_ranking(tmp_path / "run" / "ranking.csv")) == 3
    info = json.loads((tmp_path / "run" / "ranking.json").read_text())
    assert info["operator"] == "toy_blur_varying" and info["rank"] == {"k": 2, "tile": 32}
    assert (tmp_path / "run" / "contact_sheet.png").exists()


def test_bad_encoder_folder_is_one_line_naming_the_key(tmp_path):
    proc = run_rank(tmp_path, "severity_encoder=/nonexistent/encoder")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("flashdiff: error: severity_encoder=/nonexistent/encoder")


@pytest.mark.parametrize(("setting", "key"), [({"num_images": 0}, "num_images"), ({"batch_size": 0}, "batch_size"),
                                              ({"k": 0}, "rank.k")])
def test_settings_out_of_range_name_their_key(tmp_path, encoder, toy, setting, key):
    kwargs = {"num_images": 2, "batch_size": 2, "k": 2} | setting
    with pytest.raises(ConfigError, match=rf"^{key}=0: must be an integer >= 1"):
        rank_dataset(tmp_path, encoder, blur(), toy, progress=False, **kwargs)
