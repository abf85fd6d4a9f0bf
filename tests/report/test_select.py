"""``python -m flashdiff.select``: the best point of a sweep folder, the LPIPS -> PSNR fallback, failed images,
presets (and that the config reads them back), one-line errors. The finished-point check: test_folders.py."""

import json
import subprocess
import sys

import pytest
import yaml
from omegaconf import OmegaConf

from flashdiff.errors import ConfigError, InputError
from flashdiff.report.select import main, objective
from tests.conftest import ROOT

UNAVAILABLE = {"lpips": "LPIPS-VGG backbone weights unavailable"}


def _point(root, overrides, **summary):
    """A run folder as Hydra and flashdiff leave it: .hydra/overrides.yaml and summary.json."""
    folder = root / ",".join(overrides)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["+sweep=toy_flash_eta_c", *overrides]))
    (folder / "summary.json").write_text(json.dumps({"n_images": 4, "lpips": None, "unavailable": UNAVAILABLE}
                                                    | summary))
    return folder


def _sweep(root, lpips=False):
    """A 2 x 2 eta x c sweep: PSNR best at eta 2, c 1.2; LPIPS (when given) best at eta 1, c 0.8."""
    for eta, c, psnr, lp in [(1.0, 0.8, 24.0, 0.20), (1.0, 1.2, 24.5, 0.25), (2.0, 0.8, 25.0, 0.30),
                             (2.0, 1.2, 25.5, 0.35)]:
        extra = {"lpips": lp, "unavailable": {}} if lpips else {}
        _point(root, [f"solver.eta={eta}", f"adapter.c={c}", "num_images=4"], psnr=psnr, ssim=0.5, nfe_mean=40.0,
               config={"solver": {"eta": eta, "num_steps": 1000}, "adapter": {"c": c}}, **extra)
    return root


def test_without_lpips_the_choice_falls_back_to_psnr_and_says_why(tmp_path, capsys):
    main([str(_sweep(tmp_path))])
    out = capsys.readouterr().out
    assert "lpips unavailable in 4 of 4 points (LPIPS-VGG backbone weights unavailable); chose by psnr" in out
    assert "best by psnr: solver.eta=2.0 adapter.c=1.2 (psnr 25.5, 4 images)" in out
    assert "num_images" not in out.split("best by")[1].split(" in ")[0]  # not a swept key


def test_lpips_when_available_lower_is_better(tmp_path, capsys):
    main([str(_sweep(tmp_path, lpips=True)), "--metric", "lpips"])
    out = capsys.readouterr().out
    assert "best by lpips: solver.eta=1.0 adapter.c=0.8 (lpips 0.2," in out and "note:" not in out


def test_value_prints_only_the_best_value_for_the_next_stage(tmp_path, capsys):
    main([str(_sweep(tmp_path)), "--metric", "psnr", "--value", "solver.eta"])
    assert capsys.readouterr().out == "2.0\n"
    main([str(tmp_path), "--metric", "psnr", "--value", "solver.num_steps"])  # not swept: from the config
    assert capsys.readouterr().out == "1000\n"


def test_write_gives_a_preset_with_the_swept_keys(tmp_path, capsys):
    preset = tmp_path / "presets" / "best.yaml"
    main([str(_sweep(tmp_path / "sweep")), "--write", str(preset)])
    text = preset.read_text()
    assert text.startswith("# @package _global_\n")
    assert OmegaConf.to_container(OmegaConf.load(preset)) == {"solver": {"eta": 2.0}, "adapter": {"c": 1.2}}


def test_by_gives_the_best_point_of_each_group(tmp_path, capsys):
    main([str(_sweep(tmp_path)), "--metric", "psnr", "--by", "adapter.c"])
    out = capsys.readouterr().out
    assert "at adapter.c=1.2: solver.eta=2.0 adapter.c=1.2 (psnr 25.5" in out
    assert "at adapter.c=0.8: solver.eta=2.0 adapter.c=0.8 (psnr 25" in out


def test_a_point_with_fewer_images_is_not_compared(tmp_path, capsys):
    _sweep(tmp_path)
    _point(tmp_path, ["solver.eta=3.0", "adapter.c=1.0"], n_images=2, psnr=40.0)
    main([str(tmp_path), "--metric", "psnr"])
    out = capsys.readouterr().out
    assert "not compared (only 2 images)" in out and "best by psnr: solver.eta=2.0" in out


def test_training_sweep_points_are_read_from_their_training_json(tmp_path, capsys):
    for lam, oa in [(0.1, 0.7), (1.0, 0.9), (10.0, 0.8)]:
        folder = tmp_path / f"train.lambda_sigma={lam}"
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"train.lambda_sigma={lam}"]))
        (folder / "model").mkdir()
        (folder / "model" / "training.json").write_text(json.dumps({"steps": 300, "val_ordering_accuracy": oa}))
    main([str(tmp_path), "--metric", "val_ordering_accuracy"])
    assert "best by val_ordering_accuracy: train.lambda_sigma=1.0 (val_ordering_accuracy 0.9, 300 steps)" in \
        capsys.readouterr().out


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="no summary.json"):
        main([str(tmp_path)])
    with pytest.raises(InputError, match="nowhere: no such file or folder"):
        main([str(tmp_path / "nowhere")])
    _sweep(tmp_path)
    with pytest.raises(ConfigError, match="--metric"):
        main([str(tmp_path), "--metric", "beauty"])
    with pytest.raises(ConfigError, match="no config key solver.zeta"):
        main([str(tmp_path), "--metric", "psnr", "--value", "solver.zeta"])
    with pytest.raises(ConfigError, match="objective=lpips is unavailable.*objective=psnr"):
        objective({"lpips": None, "unavailable": UNAVAILABLE}, "lpips")
    assert objective({"psnr": 25.0}, "psnr") == 25.0


@pytest.mark.parametrize("module", ["flashdiff.select", "flashdiff.report"])
def test_the_commands_end_a_bad_folder_or_argument_in_one_line(tmp_path, module):
    """Exit code 2 and one line naming the folder or argument, no traceback; the report writes no folder."""
    (tmp_path / "empty").mkdir()
    out = tmp_path / "report"
    cases = [([str(tmp_path / "empty")], "empty: no "), ([str(tmp_path / "missing")], "missing: no such file"),
             ([str(tmp_path / "empty"), "--bogus"], "unrecognized arguments: --bogus")]
    for args, message in cases:
        args += ["--out", str(out)] if module == "flashdiff.report" else []
        proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith(f"{module}: error: ") and message in proc.stderr, proc.stderr
    assert not out.exists()


def test_the_report_refuses_a_bad_folder_or_argument_before_loading_matplotlib(tmp_path):
    code = ("import sys\nfrom flashdiff.report.__main__ import main\nfrom flashdiff.errors import UserError\n"
            "for args in sys.argv[1:]:\n    try:\n        main(args.split())\n    except UserError:\n"
            "        print(sorted({'matplotlib', 'diffusers'} & set(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "missing"), f"{tmp_path} --bogus"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.stdout.splitlines() == ["[]", "[]"], proc.stdout + proc.stderr


def _failing_sweep(root):
    """Three eta points by PSNR: the best (eta 3) lost 2 of its 4 images (its mean is over the other 2)."""
    for eta, psnr, failed in [(1.0, 24.0, 0), (2.0, 25.0, 0), (3.0, 26.0, 2)]:
        ids = [f"toy/x/{k}" for k in range(failed)]
        _point(root, [f"solver.eta={eta}"], psnr=psnr, ssim=0.5, nfe_mean=40.0, n_failed=failed, failed_ids=ids)
    return root


def test_a_point_with_failed_images_is_marked_and_not_chosen_over_a_clean_one(tmp_path, capsys):
    main([str(_failing_sweep(tmp_path)), "--metric", "psnr"])
    out = capsys.readouterr().out
    assert "| solver.eta | n | failed | psnr |" in out and "| 3.0 | 4 | **2** | 26 |" in out
    assert "1 point(s) with a better psnr have failed images" in out and "2 of 4 images failed" in out
    assert "best by psnr: solver.eta=2.0 (psnr 25, 4 images) in" in out
    main([str(tmp_path), "--metric", "psnr", "--value", "solver.eta"])
    captured = capsys.readouterr()
    assert captured.out == "2.0\n" and "failed images" in captured.err  # the note goes to stderr with --value


def test_when_every_point_has_failed_images_the_best_is_chosen_and_says_so(tmp_path, capsys):
    root = tmp_path / "sweep"
    for eta, psnr in [(1.0, 24.0), (2.0, 26.0)]:
        _point(root, [f"solver.eta={eta}"], psnr=psnr, n_failed=1, failed_ids=["toy/x/3"])
    preset = tmp_path / "best.yaml"
    main([str(root), "--metric", "psnr", "--write", str(preset)])
    out = capsys.readouterr().out
    assert "every point has failed images" in out
    assert "best by psnr: solver.eta=2.0 (psnr 26, 4 images, 1 of 4 images failed: toy/x/3) in" in out
    assert "1 of 4 images failed" in preset.read_text().splitlines()[1]


def test_write_keeps_the_tuned_keys_an_earlier_stage_set_on_every_point(tmp_path, capsys):
    """Stage 2 of a greedy search: gamma swept at the eta stage 1 chose (on every point's command line)."""
    for gamma, psnr in [(0.05, 24.0), (0.1, 25.0)]:
        _point(tmp_path / "sweep", ["solver=gml_dps", "solver.eta=0.4", f"solver.gamma={gamma}", "num_images=4"],
               psnr=psnr, config={"solver": {"eta": 0.4, "gamma": gamma}})
    preset = tmp_path / "best.yaml"
    main([str(tmp_path / "sweep"), "--metric", "psnr", "--write", str(preset)])
    # eta kept; num_images and the solver choice were set on every point too, but are not tuned keys
    assert OmegaConf.to_container(OmegaConf.load(preset)) == {"solver": {"gamma": 0.1, "eta": 0.4}}


def test_a_file_written_to_the_documented_tuned_path_is_read_by_the_config(tmp_path, capsys):
    """docs/sweeps.md: --write conf/tuned/<experiment>/<solver>_<adapter>.yaml; the experiment then uses it."""
    import shutil

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)  # a copy: the real conf/tuned stays untouched
    assert not (conf / "tuned" / "toy_varblur").exists()
    main([str(_sweep(tmp_path / "sweep")), "--metric", "psnr", "--write",
          str(conf / "tuned" / "toy_varblur" / "latent_dps_flash.yaml")])
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("config", ["+experiment=toy_varblur", "solver=latent_dps", "adapter=flash"])
        other = compose("config", ["+experiment=toy_varblur", "solver=latent_dps", "adapter=none"])
    assert cfg.solver.eta == 2.0 and cfg.adapter.c == 1.2  # the best point by PSNR
    assert other.solver.eta != 2.0  # another cell of the experiment keeps its own values


def test_report_select_is_the_same_command(tmp_path, capsys):
    from flashdiff.report.__main__ import main as report

    report(["select", str(_sweep(tmp_path)), "--metric", "psnr", "--value", "adapter.c"])
    assert capsys.readouterr().out == "1.2\n"
