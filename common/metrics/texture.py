"""Does a translation carry the ground truth's periodic texture (stripes, a grid), whatever its phase?

An attribute classifier takes many fine textures for stripes (a grid, stripes at another angle or period), and
a pixel error cannot tell stripes of the right frequency drawn at another phase from no stripes at all. This
measure compares where the dominant peak of each image's spectrum lies: per image, the grey-level image is
high-passed (minus its 7x7 box mean, so flat colour and smooth gradients drop out), Hann-windowed, and its power
spectrum searched within the band of periods ``[shortest, longest]`` pixels. The ground truth counts as
textured when the peak and its mirror image (a real image's spectrum is symmetric), each with its neighbouring
bins, hold at least ``min_share`` of the band's power (on 200 test images of the 64x64 shapes data: 0.10-0.74
for striped objects, 95% of them above 0.13; 0.04-0.17 for solid ones), so a faint texture on a small object
may not count; a translation matches when its own peak lies within ``tolerance`` x the truth's frequency of the
truth's peak or its mirror, and at least within 1.5 frequency bins (a diagonal neighbour of the truth's bin,
where the peak of the same stripes at another phase can fall).
"""
from __future__ import annotations

import torch
from torch import Tensor

from common.spectrum import SHORTEST_PERIOD, band_fits, windowed_spectrum

MIN_SHARE = 0.2
TOLERANCE = 0.15
MIN_BINS = 1.5


def dominant_frequency(images: Tensor, shortest: float = SHORTEST_PERIOD,
                       longest: float | None = None) -> tuple[Tensor, Tensor]:
    """For images (N, C, H, W): the peak of each high-passed, windowed power spectrum within periods
    ``[shortest, longest]`` pixels (default ``longest``: a quarter of the shorter side), as (N, 2) frequencies
    (rows, columns) in cycles per pixel, and the share (N,) of the band's power within one bin of the peak and of
    its mirror."""
    spectrum, band, fy, fx = windowed_spectrum(images.detach().to(torch.float64), shortest, longest)
    h, w = images.shape[-2:]
    power = spectrum.abs().pow(2) * band
    flat = power.flatten(1).argmax(dim=1)
    iy, ix = flat // w, flat % w
    freq = torch.stack([fy[iy, ix], fx[iy, ix]], dim=1)
    rows = torch.arange(h, device=images.device)[:, None]
    cols = torch.arange(w, device=images.device)[None, :]

    def near(cy: Tensor, cx: Tensor) -> Tensor:
        dy = (rows[None] - cy[:, None, None] + h // 2) % h - h // 2
        dx = (cols[None] - cx[:, None, None] + w // 2) % w - w // 2
        return (dy.abs() <= 1) & (dx.abs() <= 1)

    peak = near(iy, ix) | near((-iy) % h, (-ix) % w)
    total = power.flatten(1).sum(dim=1)
    share = (power * peak).flatten(1).sum(dim=1) / total.clamp(min=1e-30)
    return freq, torch.where(total > 0, share, torch.zeros_like(share))


def truth_texture(truth: Tensor, min_share: float = MIN_SHARE) -> tuple[Tensor, Tensor]:
    """The ground truth's dominant frequency (N, 2) and whether it counts as textured (N,) (:func:`dominant_frequency`'s
    share >= ``min_share``); images too small to hold a period of 3 pixels four times over are never textured."""
    n = truth.shape[0]
    if not band_fits(min(truth.shape[-2:])):
        return (torch.zeros(n, 2, dtype=torch.float64, device=truth.device),
                torch.zeros(n, dtype=torch.bool, device=truth.device))
    f_truth, share = dominant_frequency(truth)
    return f_truth, share >= min_share


def matches_frequency(y: Tensor, f_truth: Tensor, tolerance: float = TOLERANCE) -> Tensor:
    """(N,) booleans: whether ``y``'s dominant frequency is within ``tolerance`` x ``f_truth`` (at least 1.5 bins)
    of ``f_truth``, either sign (phase plays no part). Images too small for the band never match."""
    if not band_fits(min(y.shape[-2:])):
        return torch.zeros(y.shape[0], dtype=torch.bool, device=y.device)
    f_y, _ = dominant_frequency(y)
    distance = torch.minimum((f_y - f_truth).norm(dim=1), (f_y + f_truth).norm(dim=1))
    allowed = (tolerance * f_truth.norm(dim=1)).clamp(min=MIN_BINS / min(y.shape[-2:]))
    return distance <= allowed


def texture_match(y: Tensor, truth: Tensor, min_share: float = MIN_SHARE,
                  tolerance: float = TOLERANCE) -> tuple[Tensor, Tensor]:
    """``(match, textured)``, both (N,) booleans: :func:`matches_frequency` of translation ``y`` against the
    truth's dominant frequency, and :func:`truth_texture`'s verdict on the truth. To score several images
    against one truth, call those two directly (the truth's spectrum is then computed once)."""
    if y.shape != truth.shape:
        raise ValueError(f"image shapes differ: {tuple(y.shape)} vs {tuple(truth.shape)}")
    f_truth, textured = truth_texture(truth, min_share)
    return matches_frequency(y, f_truth, tolerance), textured
