"""Guidance losses of the DPS family (App. A): the measurement-residual norm plus the GML-DPS / PSLD autoencoder
term, as ``flashdiff.diffusion.sampling.Guidance`` callables over a step's batch."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from flashdiff.errors import ConfigError
from flashdiff.types import Operator, Params, StepBatch


@dataclass(frozen=True)
class ResidualGuidance:
    """``η ||y - A(D0(ẑ0))|| + γ ||ẑ0 - E0(x̃)||`` per sample (METHOD.md §4); unsquared norms, (A, C, h, w) -> (A,).

    The residual is measured in the models' [-1, 1] units (twice the [0, 1] norm) so Table 2's η carry over.
    ``x̃ = D0(ẑ0)`` (GML-DPS) or, with ``gluing``, PSLD's ``Aᵀy + (I - AᵀA) D0(ẑ0)`` (y in place of the noiseless
    measurement); ``γ = 0`` is Latent-DPS (E0 is then never called). D0(ẑ0) and A(D0(ẑ0)) are computed once.
    """

    eta: float
    gamma: float = 0.0
    gluing: bool = False

    @property
    def calls(self) -> dict[str, int]:
        """Network calls per evaluation (``flashdiff.types.COUNTERS``): D0 once, E0 once where γ > 0."""
        return {"decoder_calls": 1, "encoder_calls": int(self.gamma != 0.0)}

    def __call__(self, batch: StepBatch, z0_hat: Tensor) -> Tensor:
        model, op, y, p = batch.model, batch.op, batch.y, batch.params
        x = model.decode(z0_hat)  # (A, 3, H, W)
        batch.counts["decoder_calls"] += 1
        ax = op.A(x, p)
        value = self.eta * (2.0 * (y - ax)).flatten(1).norm(dim=1)
        if self.gamma == 0.0:
            return value
        target = self._glued(op, y, x, ax, p) if self.gluing else x  # (A, 3, H, W)
        batch.counts["encoder_calls"] += 1
        return value + self.gamma * (z0_hat - model.encode(target)).flatten(1).norm(dim=1)

    @staticmethod
    def _glued(op: Operator, y: Tensor, x: Tensor, ax: Tensor, params: Params) -> Tensor:
        """PSLD's ``Aᵀy + (I - AᵀA) x``; a ``ConfigError`` naming the operator where A has no transpose."""
        try:
            return op.A_adjoint(y, params) + x - op.A_adjoint(ax, params)
        except NotImplementedError as err:
            raise ConfigError(f"solver=psld needs a linear operator with a transpose (A_adjoint); {type(op).__name__} "
                              "has none: pick a linear operator (blur, inpainting) or another solver") from err
