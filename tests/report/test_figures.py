"""The report from synthetic run folders: every figure is drawn when its inputs exist, skipped with a reason if not."""


from flashdiff.metrics.severity_study import write_study
from flashdiff.report import build_report, collect
from tests.command import command
from tests.report.fake_runs import make_run


def _study(folder):
    folder.mkdir(parents=True)
    rows = [{"index": i, "image_id": f"toy/x/{i}", "noise_std": s, "noise_seed": k, "severity": t,
             "sigma2_hat": t + (0.3 * ((i + k) % 3) * s if s > 0.05 else 0.0)}
            for i in range(4) for s in (0.0, 0.05, 0.2) for k in range(2) for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    write_study(folder / "severity_study.csv", rows)


def _all_inputs(root, gain=0.0):
    """Every figure's inputs; ``gain`` dB added to every Flash PSNR (nothing else changes)."""
    make_run(root / "flash", adapter="flash", psnr=25.0 + gain)
    make_run(root / "base", adapter="none", psnr=20.0)
    make_run(root / "ae", adapter="ae")
    make_run(root / "noise_only", adapter="ae", operator="identity")
    for k, start in enumerate((25, 100, 300)):
        make_run(root / "fixed" / str(k), adapter="fixed", start=start, psnr=24.0 + k * 0.3,
                 overrides=[f"adapter.t_start={start}"])
    for noise in (0.0, 0.1, 0.2):
        make_run(root / "noise" / f"f{noise}", adapter="flash", noise=noise, psnr=25 - 10 * noise + gain,
                 overrides=[f"operator.noise_std={noise}", "adapter=flash"])
        make_run(root / "noise" / f"b{noise}", adapter="none", noise=noise, psnr=20 - 10 * noise,
                 overrides=[f"operator.noise_std={noise}", "adapter=none"])
    _study(root / "study")


def test_every_figure_from_files(tmp_path):
    _all_inputs(tmp_path / "runs")
    out = build_report([tmp_path / "runs"], tmp_path / "report")
    names = {p.name for p in out.glob("*.png")}
    for prefix in ("fig4_", "fig5_", "fig6_", "fig7_quality", "fig7_start", "fig8_", "fig10_"):
        assert any(n.startswith(prefix) for n in names), (prefix, names)
    report = (out / "report.md").read_text()
    assert "Not drawn" not in report and "## Table 1" in report and "p50" in report
    table = (out / "table1.md").read_text()
    assert "Flash(Latent-DPS)" in table and "Fixed i'=100 (Latent-DPS)" in table and "fd_toy" in table
    assert "σ_y=0.2" in table and "LPIPS-VGG backbone weights unavailable" in table


def _figures(folder):
    """``{figure name: PNG bytes}`` of a report folder."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_figures_are_drawn_from_the_data(tmp_path):
    """Each figure is a real picture; the same runs give the same bytes, and more Flash PSNR changes exactly the
    figures that show PSNR (Fig. 6 labels, Fig. 7 top, Fig. 8), not those of σ̂, starts or ordering."""
    import io

    import numpy as np
    from PIL import Image

    for name, gain in (("a", 0.0), ("b", 0.0), ("c", 3.0)):  # same-length names: make_run seeds by path length
        _all_inputs(tmp_path / name / "runs", gain)
        build_report([tmp_path / name / "runs"], tmp_path / name / "report")
    a, b, c = (_figures(tmp_path / n / "report") for n in "abc")
    assert a.keys() == b.keys() == c.keys() and len(a) >= 7
    for name, data in a.items():
        image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert image.shape[0] >= 300 and image.shape[1] >= 400, name
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10, name  # not a blank canvas
    assert a == b  # drawn from the files only: the same records, the same pictures
    changed = {n for n in a if a[n] != c[n]}
    psnr_figures = ("fig6_", "fig7_quality", "fig8_")  # the gallery labels each image with its PSNR
    assert {n.startswith(psnr_figures) for n in a} == {True, False}  # both kinds are drawn
    assert changed == {n for n in a if n.startswith(psnr_figures)}


def test_missing_inputs_are_skipped_with_reasons(tmp_path):
    make_run(tmp_path / "runs" / "base", adapter="none", images=False)
    out = build_report([tmp_path / "runs"], tmp_path / "report")
    report = (out / "report.md").read_text()
    assert not list(out.glob("*.png"))
    for reason in ("needs a Flash run", "severity_study.csv", ">= 2 fixed-start runs", ">= 2 test noise levels"):
        assert reason in report


def test_collect_finds_runs_and_studies_and_the_cli_prints_the_folder(tmp_path):
    make_run(tmp_path / "m" / "0", adapter="flash")
    _study(tmp_path / "s")
    runs, studies = collect([tmp_path / "m", tmp_path / "s"])
    assert len(runs) == 1 and len(studies) == 1
    proc = command(tmp_path / "m", tmp_path / "s", "--out", tmp_path / "r", module="flashdiff.report")
    assert proc.returncode == 0, proc.stderr
    assert f"report written to {tmp_path / 'r'}" in proc.stdout and (tmp_path / "r" / "table1.csv").exists()
