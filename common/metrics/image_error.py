"""Per-image reconstruction errors (e.g. cycle reconstructions, translations against paired ground truth).

Images are compared in the library's [-1, 1] space, so the default PSNR ``data_range`` is 2.0; numbers
therefore equal PSNR computed on [0, 1] images with ``data_range=1`` (the ratio range^2 / MSE is the same).
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch

PSNR_CAP_DB = 100.0
"""PSNR of identical images is infinite; it is reported as this cap instead, so that means over a data set
stay finite. Every PSNR is clamped to it, which keeps the metric monotone in the error (100 dB in a range
of 2 is an MSE of 4e-10, far below 8-bit quantisation)."""


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim == 3:
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    if a.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W) or (C, H, W), got {tuple(a.shape)}")
    return a.detach().to(torch.float64), b.detach().to(a.device, torch.float64)


def l1_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image, ``(N,)`` float64, in the images' own scale ([-1, 1] for ours)."""
    a, b = _pair(a, b)
    return (a - b).abs().flatten(1).mean(dim=1)


CHANGED_LEVELS = 2
"""A pixel belongs to the region an edit should change when the ground truth differs from the input there by
more than this many 8-bit levels in some channel (PNG rounding alone moves a value by at most one)."""


def region_l1(a: torch.Tensor, b: torch.Tensor, region: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean absolute error of ``a`` against ``b`` inside ``region`` ((N, 1, H, W) booleans), per image:
    ``(errors, has_region)``, both ``(N,)``; an image whose region is empty gets error 0 and ``False``."""
    a, b = _pair(a, b)
    region = region.to(a.device, torch.float64)
    pixels = region.flatten(1).sum(dim=1)
    errors = ((a - b).abs().mean(dim=1, keepdim=True) * region).flatten(1).sum(dim=1) / pixels.clamp(min=1)
    return errors, pixels > 0


def changed_region(source: torch.Tensor, truth: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Where ``truth`` differs from ``source`` by more than :data:`CHANGED_LEVELS` levels: (N, 1, H, W) booleans."""
    source, truth = _pair(source, truth)
    return (truth - source).abs().amax(dim=1, keepdim=True) > CHANGED_LEVELS * data_range / 255


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB, ``(N,)`` float64, capped at :data:`PSNR_CAP_DB`."""
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    a, b = _pair(a, b)
    mse = (a - b).pow(2).flatten(1).mean(dim=1)
    # mse == 0 gives +inf from log10(x / 0); the clamp then maps it to the cap without special cases.
    return (10.0 * torch.log10(data_range**2 / mse)).clamp(max=PSNR_CAP_DB)


def aggregate(values: torch.Tensor | Iterable[float]) -> tuple[float, int]:
    """``(mean, n)`` of per-image values; ``(nan, 0)`` when there are none."""
    t = torch.as_tensor(values if isinstance(values, torch.Tensor) else list(values), dtype=torch.float64)
    t = t.flatten()
    n = int(t.numel())
    return (float(t.mean()) if n else math.nan), n


class RunningMean:
    """Streaming ``(mean, n)`` over batches of per-image values, summed in float64."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def update(self, values: torch.Tensor | Iterable[float]) -> None:
        t = torch.as_tensor(values if isinstance(values, torch.Tensor) else list(values), dtype=torch.float64)
        self.total += float(t.sum())
        self.count += int(t.numel())

    def result(self) -> tuple[float, int]:
        return (self.total / self.count if self.count else math.nan), self.count


def mean_l1_error(a: torch.Tensor, b: torch.Tensor) -> tuple[float, int]:
    """``(mean per-image L1 error, number of images)``."""
    return aggregate(l1_error(a, b))


def mean_psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 2.0) -> tuple[float, int]:
    """``(mean per-image PSNR in dB, number of images)``."""
    return aggregate(psnr(a, b, data_range))
