"""``python -m flashdiff.select``: the best point of a sweep folder, the LPIPS -> PSNR fallback, presets, and the
finished-point check a restarted sweep relies on."""

import json

import pytest
import yaml
from omegaconf import OmegaConf

from flashdiff.select import finished_point, main, objective

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
    with pytest.raises(FileNotFoundError, match="no summary.json"):
        main([str(tmp_path)])
    _sweep(tmp_path)
    with pytest.raises(ValueError, match="--metric"):
        main([str(tmp_path), "--metric", "beauty"])
    with pytest.raises(ValueError, match="objective=lpips is unavailable.*objective=psnr"):
        objective({"lpips": None, "unavailable": UNAVAILABLE}, "lpips")
    assert objective({"psnr": 25.0}, "psnr") == 25.0


def test_finished_point_needs_every_image_and_the_same_config(tmp_path):
    from flashdiff.records import fingerprint

    config = {"solver": {"eta": 1.0}, "seed": 0}  # the result-relevant part (the CLI drops num_images, batch_size)
    path = tmp_path / "summary.json"
    assert finished_point(path, 4, fingerprint(config)) is None  # nothing yet
    path.write_text(json.dumps({"n_images": 4, "psnr": 25.0, "fingerprint": fingerprint(config)}))
    assert finished_point(path, 4, fingerprint(config))["psnr"] == 25.0
    assert finished_point(path, 6, fingerprint(config)) is None  # more images asked: resume
    assert finished_point(path, 4, fingerprint(config | {"solver": {"eta": 2.0}})) is None  # another point's config
    path.write_text("{not json")
    assert finished_point(path, 4, fingerprint(config)) is None  # unreadable: recomputed, not a crash


def test_report_select_is_the_same_command(tmp_path, capsys, monkeypatch):
    import sys

    from flashdiff.report.__main__ import main as report

    monkeypatch.setattr(sys, "argv", ["report", "select", str(_sweep(tmp_path)), "--metric", "psnr", "--value",
                                      "adapter.c"])
    report()
    assert capsys.readouterr().out == "1.2\n"
