"""How well a score orders samples by severity: ordering accuracy (paper App. C, Def. 1) and Spearman's rank
correlation. Used by the severity encoder's validation, the severity study, the report and the benchmarks."""

from __future__ import annotations

import torch
from torch import Tensor


def ordering_accuracy(severity: Tensor, sigma2_hat: Tensor) -> Tensor:
    """OA (App. C, Def. 1, eq. 20): share of pairs i≠j with ``sign(s_i-s_j) = sign(σ̂_i-σ̂_j)``; (N, n) -> (N,).

    A tie in ``σ̂`` between different severities counts as wrong (sign 0 ≠ ±1), exactly as eq. 19.
    """
    if severity.shape != sigma2_hat.shape or severity.dim() != 2 or severity.shape[1] < 2:
        raise ValueError(f"severity and sigma2_hat must both be (N, n >= 2), got {tuple(severity.shape)} "
                         f"and {tuple(sigma2_hat.shape)}")
    n = severity.shape[1]
    s = torch.sign(severity[:, :, None] - severity[:, None, :])  # (N, n, n)
    p = torch.sign(sigma2_hat[:, :, None] - sigma2_hat[:, None, :])
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=s.device)
    return ((s == p) & off_diagonal).sum(dim=(1, 2)).double() / (n * (n - 1))


def rankdata(x: Tensor) -> Tensor:
    """Ranks 1..n of a 1-D tensor, ties given their average rank (scipy's ``rankdata`` 'average'); (n,) -> (n,)."""
    values, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()  # last rank of each distinct value
    return (ends - (counts.double() - 1.0) / 2.0)[inverse]


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman's rank correlation of two 1-D tensors (n,): Pearson of the average ranks; NaN if one is constant."""
    if a.shape != b.shape or a.dim() != 1 or a.numel() < 2:
        raise ValueError(f"spearman needs two 1-D tensors of equal length >= 2, got {tuple(a.shape)}, {tuple(b.shape)}")
    ra, rb = rankdata(a.detach().cpu()), rankdata(b.detach().cpu())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = (ra.pow(2).sum() * rb.pow(2).sum()).sqrt()
    return float(ra @ rb / denom) if denom > 0 else float("nan")
