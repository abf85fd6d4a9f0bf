"""``flashdiff.reconstruct``, the Python API: per-image results stream out; batching mode, slot count and admission
order never change an image's result; measurements without clean images reconstruct too."""

import pytest
import torch

import flashdiff
from flashdiff.engine import EngineStats
from flashdiff.operators import GaussianBlur
from flashdiff.severity import Baseline, Flash
from flashdiff.solvers.latent_dps import latent_dps
from flashdiff.solvers.resample import resample
from tests.conftest import build_tiny_ldm


class ImageSeverity(torch.nn.Module):
    """A stand-in severity encoder: ẑ = E0(y), σ̂² a function of y alone (so each image gets its own start)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, y):
        return self.model.encode(y), 0.002 + 2.0 * y.flatten(1).mean(1).sub(0.3).clamp_min(0) ** 2


@pytest.fixture(scope="module")
def parts():
    model = build_tiny_ldm().requires_grad_(False).eval()
    op = GaussianBlur(kernel_size=5)
    items = [{"x": torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(k)) * (0.4 + 0.1 * k), "index": k,
              "id": f"img,{k}", "seed": 100 + k} for k in range(7)]
    return model, ImageSeverity(model), op, items


def _by_index(results):
    return {r.index: r for r in results}


@pytest.mark.parametrize("solver", [latent_dps(num_steps=20, delta=1.0, eta=0.5),
                                    resample(num_steps=20, every=5, max_iters=3)], ids=["latent_dps", "resample"])
def test_batching_slots_and_order_do_not_change_any_image(parts, solver):
    model, encoder, op, items = parts
    adapter = Flash(encoder, c=1.0)
    ref = _by_index(flashdiff.reconstruct(items, op, model, solver, adapter, batch_size=7, batching="static"))
    assert sorted(ref) == list(range(7)) and len({r.nfe for r in ref.values()}) > 1  # mixed starts
    for settings in ({"batch_size": 3}, {"batch_size": 2, "order": "fifo"}, {"batch_size": 3, "batching": "static"},
                     {"batch_size": 1, "lookahead": 0}):
        out = _by_index(flashdiff.reconstruct(items, op, model, solver, adapter, **settings))
        for k, r in out.items():
            torch.testing.assert_close(r.x_hat, ref[k].x_hat, rtol=1e-4, atol=1e-5)
            assert (r.nfe, r.t_start, r.costs) == (ref[k].nfe, ref[k].t_start, ref[k].costs)
            assert r.id == f"img,{k}" and torch.equal(r.y, ref[k].y)


def test_results_stream_as_samples_finish_and_the_engine_counts_occupancy(parts):
    model, encoder, op, items = parts
    stats = EngineStats(3)
    out = list(flashdiff.reconstruct(items, op, model, latent_dps(num_steps=20, delta=1.0), Flash(encoder),
                                     batch_size=3, stats=stats))
    nfe = [r.nfe for r in out]
    assert stats.busy_slot_steps == sum(nfe) and stats.busy == 0
    assert 0 < stats.occupancy <= 1 and stats.batched_steps >= max(nfe)
    assert all(r.seconds > 0 and r.x_hat.shape == (3, 32, 32) and r.x_hat.min() >= 0 for r in out)


def test_measurements_without_clean_images(parts):
    model, _, op, items = parts
    params = op.draw(torch.tensor([5]), (1, 3, 32, 32))
    y = op.measure(items[0]["x"][None], params, torch.tensor([5]))[0]
    data = [{"y": y, "index": 0, "id": "mine", "seed": 5, "params": params}]
    (r,) = flashdiff.reconstruct(data, op, model, latent_dps(num_steps=5, delta=1.0), Baseline())
    assert r.x is None and torch.equal(r.y, y) and r.nfe == 5 and r.t_start == 801
    assert torch.equal(r.params["std"], params["std"])


def test_a_diffusion_solver_needs_an_adapter(parts):
    model, _, op, items = parts
    with pytest.raises(ValueError, match="adapter"):
        list(flashdiff.reconstruct(items, op, model, latent_dps(num_steps=5, delta=1.0), None))


def test_results_stream_in_bounded_memory_and_the_callers_grad_mode_is_kept():
    """10k tiny items: the first result arrives long before the stream ends, items in flight stay bounded, and the
    caller's loop runs with its own grad mode."""
    from flashdiff.operators import Identity
    from flashdiff.severity import Baseline
    from flashdiff.solvers.ddim import ddim
    from tests.conftest import AnalyticLDM

    read = 0

    def stream(n=10_000):
        nonlocal read
        for k in range(n):
            read += 1
            yield {"x": torch.full((3, 2, 2), 0.5), "index": k, "id": f"i{k}", "seed": k}

    model, done, in_flight, first_at = AnalyticLDM(shape=(3, 2, 2)), 0, 0, None
    op, solver = Identity(noise_std=0.0), ddim(num_steps=2)
    for result in flashdiff.reconstruct(stream(), op, model, solver, Baseline(), batch_size=8):
        assert torch.is_grad_enabled()  # reconstruct does not switch the caller's autograd off
        done += 1
        first_at = read if first_at is None else first_at
        in_flight = max(in_flight, read - done)
        assert result.x_hat.shape == (3, 2, 2)
    assert done == 10_000 and first_at <= 8 + 4 * 8 + 8  # slots + lookahead + one chunk
    assert in_flight <= 8 + 4 * 8 + 8
