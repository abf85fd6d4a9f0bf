import json

import pytest

from flashdiff.errors import InputError
from flashdiff.report import collect_runs, markdown_table


def test_table_from_run_folders(tmp_path):
    for k, (psnr, nfe) in enumerate([(24.5, 1000.0), (25.9, 74.2)]):
        run = tmp_path / "multi" / str(k)
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(f"- adapter={'none' if k == 0 else 'flash'}\n")
        (run / "summary.json").write_text(json.dumps({"method": f"m{k}", "n_images": 4, "psnr": psnr, "ssim": 0.7,
                                                      "lpips": None, "nfe_mean": nfe, "seconds_per_image": 0.5}))
    runs = collect_runs([tmp_path / "multi"])
    assert [r["overrides"] for r in runs] == ["adapter=none", "adapter=flash"]
    table = markdown_table(runs)
    assert "| m1 | adapter=flash | 4 | 25.90 | 0.700 | – | 74.2 | 0.500 |" in table
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: no readable summary.json"):
        collect_runs([tmp_path / "empty"])
    with pytest.raises(InputError, match="missing: no such file or folder"):
        collect_runs([tmp_path / "missing"])


def test_table1_groups_by_task_marks_the_best_and_tells_runs_apart(tmp_path):
    import csv
    import io

    from flashdiff.report import collect, table1
    from tests.report.fake_runs import make_run

    make_run(tmp_path / "a", adapter="flash", psnr=25.0, fd=0.3, images=False, overrides=["study.encoder=blur"])
    make_run(tmp_path / "b", adapter="flash", psnr=24.0, fd=0.2, images=False, overrides=["study.encoder=inpaint"],
             encoder="toy_severity_inpaint")
    make_run(tmp_path / "c", adapter="none", psnr=20.0, fd=0.9, images=False)
    make_run(tmp_path / "d", adapter="none", operator="toy_inpaint", images=False)
    markdown, text = table1(collect([tmp_path])[0])
    assert "| **toy_blur_varying, 6 images** |" in markdown and "| **toy_inpaint, 6 images** |" in markdown
    for label in ("Flash(Latent-DPS) [encoder toy_severity_blur]", "Flash(Latent-DPS) [encoder toy_severity_inpaint]"):
        assert label in markdown
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(text))}
    assert rows["Flash(Latent-DPS) [encoder toy_severity_blur]"]["best"] == "psnr;ssim;nfe_mean"  # NFE: a tie
    assert rows["Flash(Latent-DPS) [encoder toy_severity_inpaint]"]["best"] == "ssim;fd_toy;nfe_mean"
    assert rows["Latent-DPS"]["task"] == "toy_inpaint, 6 images" and rows["Latent-DPS"]["best"] == ""


def test_repeats_of_one_experiment_count_once(tmp_path):
    from flashdiff.report import collect
    from flashdiff.report.runs import unique
    from tests.report.fake_runs import make_run

    make_run(tmp_path / "study1" / "flash", adapter="flash", images=False)
    make_run(tmp_path / "study2" / "flash", adapter="flash", images=False)  # the same config, another study
    make_run(tmp_path / "study2" / "noisy", adapter="flash", noise=0.1, images=False)
    runs = unique(collect([tmp_path])[0])
    assert [r.folder.parent.name + "/" + r.folder.name for r in runs] == ["study1/flash", "study2/noisy"]
