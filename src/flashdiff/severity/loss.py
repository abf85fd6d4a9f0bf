"""The severity encoder's training loss (paper §3.1, METHOD.md §2) and its weights."""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import Tensor


def error_variance(z_hat: Tensor, z0: Tensor) -> Tensor:
    """``σ̄²``: unbiased sample variance over the d entries of ``e = ẑ - z0`` (METHOD.md §2); (B, ...) -> (B,)."""
    return (z_hat - z0).flatten(1).var(dim=1, correction=1)


def severity_loss(z_hat: Tensor, sigma2_hat: Tensor, z0: Tensor, x_rec: Tensor, x0: Tensor, *,
                  lambda_sigma: float, lambda_im: float, detach_target: bool = False) -> dict[str, Tensor]:
    """``L = ||z0-ẑ||²/d + λσ (σ̄²-σ̂²)² + λim ||x0-D0(ẑ)||²/n`` (METHOD.md §2), each term a batch mean.

    ``z_hat``, ``z0`` (B, C, h, w); ``sigma2_hat`` (B,); ``x_rec = D0(ẑ)`` and ``x0`` (B, 3, H, W), both in
    [-1, 1] as the models see them. ``σ̄²`` is not detached by default (as the authors); ``detach_target`` makes
    it a pure target, so the variance term cannot move ẑ's error toward σ̂². Returns loss, latent, sigma, image.
    """
    latent = (z0 - z_hat).flatten(1).pow(2).mean(dim=1)  # (B,)
    target = error_variance(z_hat, z0)  # σ̄², (B,)
    sigma = ((target.detach() if detach_target else target) - sigma2_hat).pow(2)  # (B,)
    image = (x0 - x_rec).flatten(1).pow(2).mean(dim=1)  # (B,)
    loss = (latent + lambda_sigma * sigma + lambda_im * image).mean()
    return {"loss": loss, "latent": latent.mean(), "sigma": sigma.mean(), "image": image.mean()}


def resolve_lambda_sigma(lambda_sigma: float | str, v0: float) -> float:
    """``λσ`` as configured, or ``1 / v0²`` for ``"auto"`` (the prototype's variance term divided by v0², λσ = 1)."""
    if isinstance(lambda_sigma, str):
        if lambda_sigma != "auto":
            raise ValueError(f"train.loss.lambda_sigma must be a number or 'auto', got {lambda_sigma!r}")
        return 1.0 / v0**2
    return float(lambda_sigma)


@dataclass(frozen=True)
class LossWeights:
    """The weights of ``severity_loss`` (``train.loss.*``): ``lambda_sigma`` a number or ``"auto"`` (``1 / v0²``)."""

    lambda_sigma: float | str = "auto"
    lambda_im: float = 1.0
    detach_target: bool = False

    def resolve(self, v0: float) -> LossWeights:
        """The same weights with a numeric ``lambda_sigma`` (``v0``: the untrained encoder's mean ``σ̄²``)."""
        return replace(self, lambda_sigma=resolve_lambda_sigma(self.lambda_sigma, v0), lambda_im=float(self.lambda_im))

    def __call__(self, z_hat: Tensor, sigma2_hat: Tensor, z0: Tensor, x_rec: Tensor, x0: Tensor) -> dict[str, Tensor]:
        """``severity_loss`` with these weights (``lambda_sigma`` resolved first)."""
        return severity_loss(z_hat, sigma2_hat, z0, x_rec, x0, lambda_sigma=float(self.lambda_sigma),
                             lambda_im=self.lambda_im, detach_target=self.detach_target)
