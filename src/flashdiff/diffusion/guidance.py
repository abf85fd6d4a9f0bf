"""Guidance losses of the DPS family (App. A): the measurement-residual norm plus the GML-DPS / PSLD autoencoder
term."""

from __future__ import annotations

from torch import Tensor

from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.diffusion.sampling import Counts, Guidance
from flashdiff.types import Operator, Params


def take(params: Params, rows: Tensor) -> Params:
    """The per-sample parameters of some batch rows."""
    return {k: v[rows.to(v.device)] for k, v in params.items()}


def adjoint_of_measurement(op: Operator, y: Tensor, params: Params) -> Tensor:
    """``Aᵀy`` (B, 3, H, W) for PSLD's gluing term; a ValueError naming the operator where A is not linear."""
    name = type(op).__name__
    hint = (f"PSLD needs a linear operator with a transpose (A_adjoint); {name} has none: pick a linear `operator` "
            "(blur, inpainting) or another solver (latent_dps, gml_dps, resample)")
    if getattr(op, "linear", True) is False or not callable(getattr(op, "A_adjoint", None)):
        raise ValueError(hint)
    try:
        return op.A_adjoint(y, params)
    except NotImplementedError as err:
        raise ValueError(hint) from err


def latent_guidance(model: LatentDiffusion, op: Operator, y: Tensor, params: Params, eta: float,
                    gamma: float = 0.0, aty: Tensor | None = None) -> Guidance:
    """``η ||y - A(D0(ẑ0))|| + γ ||ẑ0 - E0(x̃)||`` per sample (METHOD.md §4); unsquared norms, (A, C, h, w) -> (A,).

    The residual is measured in the models' [-1, 1] units (twice the [0, 1] norm) so Table 2's η carry over.
    ``x̃ = D0(ẑ0)`` (GML-DPS) or, given ``aty = Aᵀy`` (B, 3, H, W), PSLD's gluing ``Aᵀy + (I - AᵀA) D0(ẑ0)``;
    ``γ = 0`` is Latent-DPS (E0 is then never called). D0(ẑ0) and A(D0(ẑ0)) are computed once and shared.
    """

    def loss(z0_hat: Tensor, rows: Tensor, counts: Counts) -> Tensor:
        p = take(params, rows)
        x = model.decode(z0_hat)  # (A, 3, H, W)
        counts["decoder_calls"][rows] += 1
        ax = op.A(x, p)
        value = eta * (2.0 * (y[rows] - ax)).flatten(1).norm(dim=1)
        if gamma == 0.0:
            return value
        target = x if aty is None else aty[rows] + x - op.A_adjoint(ax, p)  # (A, 3, H, W)
        counts["encoder_calls"][rows] += 1
        return value + gamma * (z0_hat - model.encode(target)).flatten(1).norm(dim=1)

    return loss
