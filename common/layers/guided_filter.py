"""The guided filter (He, Sun and Tang, "Guided Image Filtering", ECCV 2010 / TPAMI 2013), differentiable, as
used end to end by Wu et al., "Fast End-to-End Trainable Guided Filter" (CVPR 2018).

Within each (2r+1)^2 window the output is a linear function of the guide image, fitted by least squares to the
filtered input, then the fits of all windows that cover a pixel are averaged. A map that is roughly right but
blurry near the guide's edges (an attention mask whose border is a rounded blob) comes out with its
transitions where the guide has its edges; where the guide is flat (variance well below ``eps``) the output is
the input's local mean.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def box_mean(x: Tensor, radius: int) -> Tensor:
    """Mean over the (2r+1)^2 window around each pixel, windows clipped at the border (no zero padding).
    Separable (a row mean, then a column mean): the clipped window is a rectangle, so this is the 2-D mean."""
    k = 2 * radius + 1
    x = F.avg_pool2d(x, (1, k), stride=1, padding=(0, radius), count_include_pad=False)
    return F.avg_pool2d(x, (k, 1), stride=1, padding=(radius, 0), count_include_pad=False)


def guided_filter(guide: Tensor, src: Tensor, radius: int, eps: float) -> Tensor:
    """Filter ``src`` (N, 1, H, W) guided by ``guide`` (N, 1, H, W) or (N, 3, H, W); returns (N, 1, H, W).

    A colour guide uses the full 3x3 covariance per window (the colour guided filter), so an edge between two
    colours of equal brightness still counts. ``eps`` regularises the fit: edges whose variance within a
    window is well below it are smoothed over (image noise), those well above it are kept.
    """
    if src.dim() != 4 or src.shape[1] != 1:
        raise ValueError(f"guided filter: src must be (N, 1, H, W), got {tuple(src.shape)}")
    if guide.dim() != 4 or guide.shape[1] not in (1, 3) or guide.shape[0] != src.shape[0] \
            or guide.shape[2:] != src.shape[2:]:
        raise ValueError(f"guided filter: guide must be (N, 1 or 3, H, W) matching src {tuple(src.shape)}, "
                         f"got {tuple(guide.shape)}")
    if radius < 1 or eps <= 0:
        raise ValueError(f"guided filter: radius must be >= 1 and eps > 0, got {radius} and {eps}")
    # Statistics in float32 at least: the covariances are differences of nearly equal means.
    dtype = torch.promote_types(src.dtype, torch.float32)
    guide, src = guide.to(dtype), src.to(dtype)
    mean_i = box_mean(guide, radius)
    mean_p = box_mean(src, radius)
    cov_ip = box_mean(guide * src, radius) - mean_i * mean_p
    if guide.shape[1] == 1:
        var_i = box_mean(guide * guide, radius) - mean_i * mean_i
        a = cov_ip / (var_i + eps)
    else:
        a = _solve_sym3(_window_covariance(guide, mean_i, radius, eps), cov_ip)
    b = mean_p - (a * mean_i).sum(dim=1, keepdim=True)
    return (box_mean(a, radius) * guide).sum(dim=1, keepdim=True) + box_mean(b, radius)


def _window_covariance(guide: Tensor, mean_i: Tensor, radius: int, eps: float) -> list[Tensor]:
    """The six distinct entries (xx, xy, xz, yy, yz, zz) of each window's colour covariance plus ``eps`` on the
    diagonal, each (N, 1, H, W)."""
    pairs = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
    out = []
    for j, k in pairs:
        c = box_mean(guide[:, j:j + 1] * guide[:, k:k + 1], radius) - mean_i[:, j:j + 1] * mean_i[:, k:k + 1]
        out.append(c + eps if j == k else c)
    return out


def _solve_sym3(sym: list[Tensor], rhs: Tensor) -> Tensor:
    """Solve S a = rhs per pixel for a symmetric positive definite 3x3 S given as its six entries; rhs and the
    result are (N, 3, H, W). Closed form (cofactors), so it stays elementwise: fast on CPU for millions of tiny
    systems, deterministic, and exportable."""
    xx, xy, xz, yy, yz, zz = sym
    c_xx = yy * zz - yz * yz
    c_xy = xz * yz - xy * zz
    c_xz = xy * yz - xz * yy
    c_yy = xx * zz - xz * xz
    c_yz = xy * xz - xx * yz
    c_zz = xx * yy - xy * xy
    det = xx * c_xx + xy * c_xy + xz * c_xz
    r0, r1, r2 = rhs[:, 0:1], rhs[:, 1:2], rhs[:, 2:3]
    a0 = c_xx * r0 + c_xy * r1 + c_xz * r2
    a1 = c_xy * r0 + c_yy * r1 + c_yz * r2
    a2 = c_xz * r0 + c_yz * r1 + c_zz * r2
    return torch.cat([a0, a1, a2], dim=1) / det
