"""adapter=flash_budget: one common rescaling of Flash's severities meets a target mean NFE over the run, keeps
Flash's ordering, treats ties and the grid's ends by the documented rule, and does not depend on batching."""

import pytest
import torch

import flashdiff
from flashdiff.data.seeding import generators
from flashdiff.diffusion.steps import sampling_grid
from flashdiff.operators import GaussianBlur
from flashdiff.severity.budget import FlashBudget, mean_nfe, solve_alpha
from flashdiff.solvers.latent_dps import latent_dps
from tests.conftest import AnalyticLDM


class MeanSeverity(torch.nn.Module):
    """ẑ = E0(y); σ̂² a fixed function of y's mean (so an image's σ̂² never depends on its batch)."""

    def forward(self, y):
        return 2.0 * y - 1.0, (y.flatten(1).mean(1) - 0.25).clamp_min(0) * 0.4


def _ys(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 8, 8, generator=g) * torch.linspace(0.3, 0.9, n).view(-1, 1, 1, 1)


@pytest.mark.parametrize(("num_steps", "target"), [(1000, 10), (1000, 40), (1000, 80), (100, 7.5), (20, 3)])
def test_the_planned_mean_nfe_meets_the_target_and_keeps_flashs_order(num_steps, target):
    model, grid, ys = AnalyticLDM(), sampling_grid(1000, num_steps), _ys(64)
    adapter = FlashBudget(MeanSeverity(), nfe_mean=target)
    adapter.plan(model, [ys[:20], ys[20:]], grid)  # the run's measurements, in chunks
    start = adapter(model, ys, grid, generators(range(64)))
    assert abs(start.nfe.float().mean() - target) <= 1.0 and start.nfe.float().mean() == adapter.planned[
        "nfe_mean_planned"]
    sigma2 = MeanSeverity()(ys)[1]
    order = sigma2.argsort()
    assert start.nfe[order].tolist() == sorted(start.nfe.tolist())  # harder images start earlier
    flash_order = flashdiff.severity.Flash(MeanSeverity())(model, ys, grid, generators(range(64))).nfe[order]
    assert flash_order.tolist() == sorted(flash_order.tolist())


def test_ties_and_the_grid_ends():
    model, grid = AnalyticLDM(), sampling_grid(1000, 1000)
    sigma2 = torch.tensor([0.0, 0.01, 0.01, 0.2])
    alpha = solve_alpha(model.schedule, grid, sigma2, 30.0)
    k = flashdiff.diffusion.steps.snr_match(model.schedule, grid, alpha * sigma2)
    assert int(k[1]) == int(k[2])  # equal severities, equal starts
    assert mean_nfe(model.schedule, grid, sigma2, 1e12) == pytest.approx(750.0)  # the top: N steps (σ̂² = 0: none)
    assert mean_nfe(model.schedule, grid, sigma2, 1e-12) == pytest.approx(0.75)  # the bottom: one step each


def test_an_unreachable_target_is_clipped_and_said(caplog):
    model, grid = AnalyticLDM(), sampling_grid(1000, 20)
    adapter = FlashBudget(MeanSeverity(), nfe_mean=500)
    adapter.plan(model, [_ys(8)], grid)
    assert adapter.planned["nfe_mean_planned"] <= 20 and "allow a mean NFE" in caplog.text


def test_it_must_see_the_run_first():
    with pytest.raises(RuntimeError, match="plan"):
        FlashBudget(MeanSeverity(), nfe_mean=5)(AnalyticLDM(), _ys(2), sampling_grid(1000, 20), generators([0, 1]))


def test_through_reconstruct_the_run_meets_the_budget_in_any_batching():
    model, op = AnalyticLDM(), GaussianBlur(kernel_size=3)
    items = [{"x": x, "index": k, "id": f"i{k}", "seed": k} for k, x in enumerate(_ys(12))]
    runs = []
    for batch_size, batching in ((12, "static"), (5, "continuous")):
        adapter = FlashBudget(MeanSeverity(), nfe_mean=6)
        out = list(flashdiff.reconstruct(items, op, model, latent_dps(num_steps=50, delta=1.0, eta=0.1), adapter,
                                         batch_size=batch_size, batching=batching))
        runs.append({r.index: r.nfe for r in out})
        assert sum(runs[-1].values()) / 12 == adapter.planned["nfe_mean_planned"]
        assert abs(adapter.planned["nfe_mean_planned"] - 6) <= 1
    assert runs[0] == runs[1]


@pytest.mark.parametrize(("num_steps", "target"), [(1000, 10), (100, 7.5), (20, 3)])
def test_alpha_sits_inside_a_flat_interval_so_an_ulp_of_sigma2_moves_no_start(num_steps, target):
    model, grid = AnalyticLDM(), sampling_grid(1000, num_steps)
    sigma2 = MeanSeverity()(_ys(64))[1]
    alpha = solve_alpha(model.schedule, grid, sigma2, target)
    starts = lambda s: flashdiff.diffusion.steps.snr_match(model.schedule, grid, alpha * s.double())  # noqa: E731
    for direction in (-torch.inf, torch.inf):  # one ulp on every σ̂² > 0 (σ̂² = 0 diffuses nothing whatever α is)
        moved = torch.where(sigma2 > 0, torch.nextafter(sigma2, torch.full_like(sigma2, direction)), sigma2)
        assert torch.equal(starts(moved), starts(sigma2))
    for factor in (1 - 1e-5, 1 + 1e-5):  # and α itself is not on an edge (100× an ulp of float32 away)
        assert mean_nfe(model.schedule, grid, sigma2, alpha * factor) == mean_nfe(model.schedule, grid, sigma2, alpha)


@pytest.mark.parametrize(("num_steps", "target"), [(100, 1), (1000, 1000), (1000, 1)])
def test_any_reachable_target_is_met_whatever_the_scale_of_sigma2(num_steps, target):
    model, grid = AnalyticLDM(), sampling_grid(1000, num_steps)
    sigma2 = torch.tensor([1e-12, 1e-6, 0.3, 1e6, 1e12])
    alpha = solve_alpha(model.schedule, grid, sigma2, target)
    assert mean_nfe(model.schedule, grid, sigma2, alpha) == target


def test_a_stored_plan_is_restored_without_encoding_and_a_one_shot_stream_is_refused():
    model, op = AnalyticLDM(), GaussianBlur(kernel_size=3)
    items = [{"x": x, "index": k, "id": f"i{k}", "seed": k} for k, x in enumerate(_ys(6))]
    solver = latent_dps(num_steps=50, delta=1.0, eta=0.1)
    first = FlashBudget(MeanSeverity(), nfe_mean=6)
    reference = {r.index: r.nfe for r in flashdiff.reconstruct(items, op, model, solver, first, batch_size=6)}
    with pytest.raises(ValueError, match="plan_data"):
        next(flashdiff.reconstruct(iter(items), op, model, solver, FlashBudget(MeanSeverity(), nfe_mean=6)))

    class Counting(MeanSeverity):
        calls = 0

        def forward(self, y):
            Counting.calls += y.shape[0]
            return super().forward(y)

    resumed = FlashBudget(Counting(), nfe_mean=6)
    resumed.restore(first.planned)
    out = {r.index: r.nfe for r in flashdiff.reconstruct(iter(items[3:]), op, model, solver, resumed, batch_size=2)}
    assert out == {k: reference[k] for k in range(3, 6)} and Counting.calls == 3  # admission only: no plan pass
