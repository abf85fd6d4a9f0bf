"""PSLD: the gluing term is built with the operator's true transpose; nonlinear operators are refused clearly."""

import pytest
import torch

from flashdiff.data.seeding import generators
from flashdiff.diffusion.guidance import ResidualGuidance
from flashdiff.operators import GaussianBlur, Inpainting
from flashdiff.solvers.ddim import ddim
from flashdiff.solvers.latent_dps import latent_dps
from flashdiff.solvers.psld import psld
from flashdiff.types import COUNTERS, StepBatch
from tests.conftest import run
from tests.solvers.common import CountingLDM, problem, rows_of

OPERATORS = {"blur": lambda: GaussianBlur(kernel_size=5), "inpaint": lambda: Inpainting(severity_range=[0.5, 0.5])}


def dense(op, params, shape=(3, 8, 8)):
    """The matrix of A for one sample's parameters, built column by column from op.A on basis images."""
    n = torch.Size(shape).numel()
    basis = torch.eye(n, dtype=torch.float64).view(n, *shape)
    many = {k: v.expand(n, *v.shape[1:]) for k, v in params.items()}
    return op.A(basis, many).reshape(n, n).T  # (out, in)


@pytest.mark.parametrize("name", OPERATORS)
def test_adjoint_is_the_transpose_of_the_dense_operator(name):
    op = OPERATORS[name]()
    _, params, y = problem(op, 2)
    for b in range(2):
        matrix = dense(op, rows_of(params, b))
        want = (matrix.T @ y[b].double().flatten()).view(1, 3, 8, 8)
        torch.testing.assert_close(op.A_adjoint(y[b:b + 1].double(), rows_of(params, b)), want)


@pytest.mark.parametrize("name", OPERATORS)
def test_gluing_term_uses_the_transpose(name):
    # Identity autoencoder: ẑ0 - E0(Aᵀy + (I - AᵀA) D0(ẑ0)) = 2 Aᵀ(A D0(ẑ0) - y), written here with the dense matrix.
    op, model = OPERATORS[name](), CountingLDM()
    _, params, y = problem(op, 2)
    z0 = torch.randn(2, 3, 8, 8)
    counts = {k: torch.zeros(2, dtype=torch.int64) for k in COUNTERS}
    eta, gamma = 0.7, 0.3
    batch = StepBatch(model=model, op=op, z=z0, i=torch.zeros(2, dtype=torch.int64), i_prev=torch.zeros(2),
                      noise=z0, y=y, params=params, generators=[], counts=counts)
    loss = ResidualGuidance(eta, gamma, gluing=True)(batch, z0)
    for b in range(2):
        matrix = dense(op, rows_of(params, b)).float()
        r = y[b].flatten() - matrix @ model.decode(z0[b]).flatten()
        want = eta * (2 * r).norm() + gamma * (2 * matrix.T @ r).norm()
        assert loss[b].item() == pytest.approx(want.item(), rel=1e-5)
    assert counts["decoder_calls"].tolist() == counts["encoder_calls"].tolist() == [1, 1]


def test_gluing_alone_pulls_toward_the_measurement():
    model, op = CountingLDM(), Inpainting(severity_range=[0.5, 0.5])
    _, params, y = problem(op)
    z, start = torch.randn(4, 3, 8, 8), torch.full((4,), 30)
    gens = lambda: generators(range(4))  # noqa: E731
    kw = {"num_steps": 30, "delta": 1.0}
    prior = run(ddim(**kw), model, op, y, params, z, start, gens())
    glued = run(psld(eta=0.0, gamma=2.0, **kw), model, op, y, params, z, start, gens())
    plain = run(latent_dps(eta=0.5, **kw), model, op, y, params, z, start, gens())
    same = run(psld(eta=0.5, gamma=0.0, **kw), model, op, y, params, z, start, gens())
    fit = lambda lat: (op.A(model.decode(lat), params) - y).flatten(1).norm(dim=1)  # noqa: E731
    assert (fit(glued.latents) < 0.5 * fit(prior.latents)).all()
    torch.testing.assert_close(same.latents, plain.latents)  # γ = 0 is Latent-DPS


class Nonlinear(GaussianBlur):
    linear = False


class NoTranspose(GaussianBlur):
    def A_adjoint(self, y, params):
        raise NotImplementedError


@pytest.mark.parametrize("cls", [Nonlinear, NoTranspose])
def test_operator_without_a_transpose_is_a_clear_error(cls):
    model, op = CountingLDM(), cls(kernel_size=5)
    _, params, y = problem(op, 1)
    with pytest.raises(ValueError, match=f"{cls.__name__}.*operator"):
        run(psld(), model, op, y, params, torch.zeros(1, 3, 8, 8), torch.ones(1, dtype=torch.int64), generators([0]))
