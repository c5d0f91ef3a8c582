"""Image-quality metrics against ground truth: SSIM (checked against a direct numpy implementation of Wang et al.
2004 and hand-computed values), and L1/PSNR/SSIM on an oracle and on a known degradation."""
import math

import numpy as np
import pytest
import torch

from common.metrics import l1_error, psnr, ssim
from common.metrics.image_error import PSNR_CAP_DB


def _reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of two (C, H, W) images in [0, 1], written out as in the paper: for every valid 11x11 window the
    Gaussian-weighted means, variances and covariance (second moments about the mean), then the mean of the map
    over positions and channels."""
    size, sigma, c1, c2 = 11, 1.5, 0.01**2, 0.03**2
    r = np.arange(size) - (size - 1) / 2
    dy, dx = np.meshgrid(r, r, indexing="ij")
    w = np.exp(-(dx**2 + dy**2) / (2 * sigma**2))
    w /= w.sum()
    per_channel = []
    for xc, yc in zip(x, y):
        values = []
        for i in range(xc.shape[0] - size + 1):
            for j in range(xc.shape[1] - size + 1):
                px, py = xc[i:i + size, j:j + size], yc[i:i + size, j:j + size]
                mx, my = (w * px).sum(), (w * py).sum()
                vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
                cxy = (w * (px - mx) * (py - my)).sum()
                values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
        per_channel.append(np.mean(values))
    return float(np.mean(per_channel))


def _images(seed, shape=(2, 3, 14, 13)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64)


def test_ssim_matches_a_direct_implementation():
    x = _images(0)
    y = (0.7 * x + 0.3 * _images(1)).clamp(0, 1)  # correlated, so every term of SSIM matters
    got = ssim(x, y, value_range=(0, 1))
    want = [_reference_ssim(x[i].numpy(), y[i].numpy()) for i in range(2)]
    assert got.shape == (2,) and got.dtype == torch.float64
    assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), atol=1e-12)
    assert 0.0 < want[0] < 0.99  # a real, imperfect similarity, not a degenerate case


def test_ssim_of_identical_images_is_one_and_of_unrelated_ones_far_below():
    x = _images(2) * 2 - 1
    assert torch.equal(ssim(x, x), torch.ones(2, dtype=torch.float64))
    assert (ssim(x, _images(3) * 2 - 1) < 0.2).all()


def test_ssim_hand_computed_constant_images():
    # Flat images have zero (co)variance: SSIM is the luminance term (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1).
    a, b = torch.full((1, 3, 16, 16), 0.5), torch.full((1, 3, 16, 16), 0.25)
    want = (2 * 0.5 * 0.25 + 1e-4) / (0.25 + 0.0625 + 1e-4)  # 0.80006...
    assert ssim(a, b, value_range=(0, 1)).item() == pytest.approx(want, abs=1e-12)
    # The same images in the library's [-1, 1] range score the same: SSIM is taken on [0, 1].
    assert ssim(a * 2 - 1, b * 2 - 1).item() == pytest.approx(want, abs=1e-12)


def test_ssim_is_symmetric_and_falls_with_the_noise():
    x = _images(4, (1, 3, 24, 24))
    noise = _images(5, (1, 3, 24, 24)) - 0.5
    scores = [ssim(x, x + s * noise, value_range=(0, 1)).item() for s in (0.05, 0.1, 0.2, 0.4)]
    assert scores == sorted(scores, reverse=True) and scores[0] < 1.0
    y = x + 0.1 * noise
    assert ssim(x, y, (0, 1)).item() == pytest.approx(ssim(y, x, (0, 1)).item(), abs=1e-14)


@pytest.mark.parametrize(("a", "b", "match"), [
    (torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 15), "shapes differ"),
    (torch.zeros(1, 3, 10, 16), torch.zeros(1, 3, 10, 16), "at least 11x11"),
    (torch.zeros(16, 16), torch.zeros(16, 16), "expected images"),
])
def test_ssim_refuses_bad_inputs(a, b, match):
    with pytest.raises(ValueError, match=match):
        ssim(a, b)


def test_ssim_refuses_an_empty_value_range():
    with pytest.raises(ValueError, match="value_range"):
        ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), value_range=(1, 1))


def test_oracle_output_scores_perfectly():
    truth = _images(6, (3, 3, 16, 16)) * 2 - 1
    assert torch.equal(l1_error(truth, truth), torch.zeros(3, dtype=torch.float64))
    assert torch.equal(psnr(truth, truth), torch.full((3,), PSNR_CAP_DB, dtype=torch.float64))
    assert torch.equal(ssim(truth, truth), torch.ones(3, dtype=torch.float64))


def test_known_degradation_scores_as_computed_by_hand():
    # A flat grey 0.5 (on [0, 1]) brightened by 0.1 everywhere: in [-1, 1] units the error is 0.2 per pixel.
    truth = torch.zeros(1, 3, 16, 16, dtype=torch.float64)
    output = truth + 0.2
    assert l1_error(output, truth).item() == pytest.approx(0.2)
    assert psnr(output, truth).item() == pytest.approx(10 * math.log10(2.0**2 / 0.2**2))  # 20 dB
    assert ssim(output, truth).item() == pytest.approx((2 * 0.5 * 0.6 + 1e-4) / (0.25 + 0.36 + 1e-4), abs=1e-12)
