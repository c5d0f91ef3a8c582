"""The texture spectrum shared by the texture measure (:mod:`common.metrics.texture`) and the spectrum loss
(:func:`common.losses.spectrum_match_loss`): an image's grey level, high-passed so flat colour and smooth
gradients drop out, Hann-windowed so the image border makes no frequencies of its own, Fourier-transformed."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SHORTEST_PERIOD = 3.0
_BOX = 7


def band_fits(side: int) -> bool:
    """Whether an image side holds the default band: the shortest period four times over (12 px and up)."""
    return side / 4 >= SHORTEST_PERIOD


def windowed_spectrum(images: Tensor, shortest: float = SHORTEST_PERIOD,
                      longest: float | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The 2-D Fourier transform (N, H, W) of each image's grey level high-passed (minus its 7x7 box mean) and
    Hann-windowed, in ``images``' dtype and with its graph; with the band of periods ``[shortest, longest]``
    pixels (default ``longest``: a quarter of the shorter side) as an (H, W) boolean mask, and the frequencies
    (H, W) of the rows and columns in cycles per pixel."""
    if images.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W), got {tuple(images.shape)}")
    _, _, h, w = images.shape
    longest = min(h, w) / 4 if longest is None else longest
    if not 2 <= shortest <= longest:
        raise ValueError(f"need 2 <= shortest <= longest periods, got {shortest}, {longest}")
    gray = images.mean(dim=1, keepdim=True)
    pad = _BOX // 2
    high = gray - F.avg_pool2d(F.pad(gray, (pad, pad, pad, pad), mode="replicate"), _BOX, stride=1)
    kw = {"dtype": images.dtype, "device": images.device}
    window = torch.outer(torch.hann_window(h, periodic=False, **kw), torch.hann_window(w, periodic=False, **kw))
    spectrum = torch.fft.fft2(high[:, 0] * window)
    fy = torch.fft.fftfreq(h, **kw)[:, None].expand(h, w)
    fx = torch.fft.fftfreq(w, **kw)[None, :].expand(h, w)
    radius = torch.hypot(fy, fx)
    return spectrum, (radius >= 1 / longest) & (radius <= 1 / shortest), fy, fx
