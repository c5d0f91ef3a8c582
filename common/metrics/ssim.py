"""Structural similarity (SSIM, Wang, Bovik, Sheikh and Simoncelli, IEEE TIP 2004) per image.

As the authors' reference implementation (``ssim_index.m``): an 11x11 Gaussian window with sigma 1.5
(``fspecial('gaussian', 11, 1.5)``), K1 = 0.01, K2 = 0.03, dynamic range L = 1 on images scaled to [0, 1],
local statistics over the *valid* windows only (no padding, so the map is ``(H - 10) x (W - 10)``), and the
mean of the SSIM map. Colour images are scored per channel and the channel scores averaged (the reference
code takes grey images). No automatic downsampling (the later ``ssim.m`` shrinks large images first).

SSIM is not invariant to a shift of the values (its luminance term compares means), so images are first
mapped from their value range to [0, 1]: the library's [-1, 1] tensors by default. Values outside the range are
not clipped.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# The metrics package's one check of an image pair (shapes, batch dimension, float64).
from common.metrics.image_error import _pair as image_pair

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1 = 0.01
K2 = 0.03


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA, dtype: torch.dtype = torch.float64,
                    device: str | torch.device = "cpu") -> torch.Tensor:
    """The normalised 1-D Gaussian ``(size,)``. The 2-D window, MATLAB's ``fspecial('gaussian', size, sigma)``,
    is its outer product with itself, so local means are taken as two 1-D passes."""
    centred = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-centred.pow(2) / (2 * sigma**2))
    return g / g.sum()


def _images(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = image_pair(a, b)
    if min(a.shape[-2:]) < WINDOW_SIZE:
        raise ValueError(f"SSIM needs images of at least {WINDOW_SIZE}x{WINDOW_SIZE} (its window), "
                         f"got {a.shape[-1]}x{a.shape[-2]}")
    return a, b


def ssim(a: torch.Tensor, b: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """SSIM per image, ``(N,)`` float64, of images ``(N, C, H, W)`` or ``(C, H, W)`` whose values lie in
    ``value_range`` (mapped to [0, 1] first; see the module docstring). Identical images give exactly 1."""
    low, high = (float(v) for v in value_range)
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    a, b = _images(a, b)
    a, b = (a - low) / (high - low), (b - low) / (high - low)
    channels = a.shape[1]
    g = gaussian_window(device=a.device)
    across = g.view(1, 1, 1, WINDOW_SIZE).expand(channels, 1, 1, WINDOW_SIZE)
    down = g.view(1, 1, WINDOW_SIZE, 1).expand(channels, 1, WINDOW_SIZE, 1)

    def local_mean(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, across, groups=channels), down, groups=channels)

    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mu_a * mu_a
    var_b = local_mean(b * b) - mu_b * mu_b
    cov = local_mean(a * b) - mu_a * mu_b
    c1, c2 = K1**2, K2**2  # (K * L)^2 with L = 1
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))
    return ssim_map.mean(dim=(2, 3)).mean(dim=1)
