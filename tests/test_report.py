import json

import pytest

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
    with pytest.raises(FileNotFoundError, match="no summary.json"):
        collect_runs([tmp_path / "empty"])
