"""Ordering accuracy (App. C, Def. 1) and Spearman's rank correlation on hand-made inputs and against scipy."""

import pytest
import scipy.stats
import torch

from flashdiff.metrics.ordering import ordering_accuracy, rankdata, spearman


def test_ordering_accuracy_on_hand_made_inputs():
    s = torch.linspace(0, 1, 10).expand(3, -1)
    assert ordering_accuracy(s, s * 5 + 1).tolist() == [1.0] * 3
    assert ordering_accuracy(s, -s).tolist() == [0.0] * 3
    assert ordering_accuracy(s[:1], torch.tensor([[0.0, 2, 1, 3, 4, 5, 6, 7, 8, 9]])).item() == pytest.approx(88 / 90)
    assert ordering_accuracy(s[:1], torch.ones(1, 10)).item() == 0.0  # ties in σ̂ are wrong (Def. 1, eq. 19)
    torch.manual_seed(0)
    assert ordering_accuracy(s[:1].expand(4000, -1), torch.rand(4000, 10)).mean().item() == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="N, n"):
        ordering_accuracy(s[0], s[0])


def test_spearman_matches_scipy_with_ties():
    torch.manual_seed(0)
    a, b = torch.randint(0, 5, (40,)).float(), torch.randn(40)
    b = b + 0.5 * a
    assert spearman(a, b) == pytest.approx(scipy.stats.spearmanr(a.numpy(), b.numpy()).statistic, abs=1e-10)
    torch.testing.assert_close(rankdata(a).numpy(), scipy.stats.rankdata(a.numpy()), check_dtype=False)
    assert spearman(b, b.exp()) == pytest.approx(1.0)
    assert spearman(torch.ones(5), torch.arange(5.0)) != spearman(torch.ones(5), torch.arange(5.0))  # NaN
