"""The severity encoder's loss (METHOD.md §2): terms by hand, the detached target, the weights and ``auto``."""

import pytest
import torch

from flashdiff.severity.loss import LossWeights, error_variance, resolve_lambda_sigma, severity_loss


def test_loss_terms_match_hand_computation():
    torch.manual_seed(0)
    z_hat, z0 = torch.randn(2, 2, 3, 3), torch.randn(2, 2, 3, 3)
    x_rec, x0 = torch.rand(2, 3, 4, 4) * 2 - 1, torch.rand(2, 3, 4, 4) * 2 - 1
    sigma2_hat = torch.tensor([0.5, 2.0])
    out = severity_loss(z_hat, sigma2_hat, z0, x_rec, x0, lambda_sigma=3.0, lambda_im=0.5)
    lat, sig, img = [], [], []
    for b in range(2):
        e = [float(v) for v in (z_hat[b] - z0[b]).flatten()]
        mu = sum(e) / 18
        var = sum((v - mu) ** 2 for v in e) / 17  # unbiased: d - 1
        lat.append(sum(v * v for v in e) / 18)
        sig.append((var - float(sigma2_hat[b])) ** 2)
        img.append(float(((x0[b] - x_rec[b]) ** 2).sum()) / 48)
    expected = {"latent": sum(lat) / 2, "sigma": sum(sig) / 2, "image": sum(img) / 2}
    expected["loss"] = expected["latent"] + 3.0 * expected["sigma"] + 0.5 * expected["image"]
    for k, v in expected.items():
        assert out[k].item() == pytest.approx(v, rel=1e-5), k
    assert error_variance(z_hat, z0)[0].item() == pytest.approx(
        torch.var((z_hat[0] - z0[0]).flatten(), unbiased=True).item())
    weighted = LossWeights(3.0, 0.5)(z_hat, sigma2_hat, z0, x_rec, x0)
    assert {k: v.item() for k, v in weighted.items()} == {k: v.item() for k, v in out.items()}


def test_detached_target_keeps_the_variance_term_off_z_hat():
    z0 = torch.randn(3, 4, 4, 4)
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    for detach, moves in ((False, True), (True, False)):
        z_hat = (z0 + 0.3 * torch.randn_like(z0)).requires_grad_(True)
        terms = severity_loss(z_hat, torch.full((3,), 0.5), z0, x, x, lambda_sigma=1.0, lambda_im=0.0,
                              detach_target=detach)
        assert terms["sigma"].requires_grad == moves
        if moves:
            (grad,) = torch.autograd.grad(terms["sigma"], z_hat)
            assert grad.abs().sum() > 0


def test_lambda_sigma_auto_is_one_over_v0_squared():
    with pytest.raises(ValueError, match="'auto'"):
        resolve_lambda_sigma("big", 0.1)
    assert resolve_lambda_sigma("auto", 0.1) == pytest.approx(100.0) and resolve_lambda_sigma(10, 0.1) == 10.0
    resolved = LossWeights("auto", 2, True).resolve(0.1)
    assert resolved.lambda_sigma == pytest.approx(100.0) and resolved.lambda_im == 2.0 and resolved.detach_target
