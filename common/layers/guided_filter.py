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
    Separable (a row mean, then a column mean): the clipped window is a rectangle, so this is the 2-D mean.

    Summed as 2r+1 shifted slices of the zero-padded image, then divided by each window's pixel count: the
    same values and gradients as ``avg_pool2d(..., count_include_pad=False)`` to the last bit (checked at
    the sizes the tests use), and 3-4x faster forward and backward on CPU, where those pooling kernels were
    most of the filter's time."""
    h, w = x.shape[-2:]
    x = _box_sum(x, radius, -1) / _window_count(w, radius, x)
    return _box_sum(x, radius, -2) / _window_count(h, radius, x).unsqueeze(-1)


def _box_sum(x: Tensor, radius: int, dim: int) -> Tensor:
    """Sum over the 2r+1 neighbours along ``dim`` (-1 or -2), zeros beyond the border."""
    n = x.shape[dim]
    padded = F.pad(x, (radius, radius) if dim == -1 else (0, 0, radius, radius))
    total = padded.narrow(dim, 0, n)
    for shift in range(1, 2 * radius + 1):
        total = total + padded.narrow(dim, shift, n)
    return total


def _window_count(n: int, radius: int, like: Tensor) -> Tensor:
    """How many of the 2r+1 positions around each of ``n`` positions lie inside ``[0, n)``."""
    i = torch.arange(n, device=like.device)
    return ((i + radius).clamp(max=n - 1) - (i - radius).clamp(min=0) + 1).to(like.dtype)


def guided_filter(guide: Tensor, src: Tensor, radius: int, eps: float) -> Tensor:
    """Filter each channel of ``src`` (N, K, H, W) guided by ``guide`` (N, 1, H, W) or (N, 3, H, W); returns
    (N, K, H, W). The guide's window statistics (and, for a colour guide, the inverse of its covariance) are
    computed once for all K channels.

    A colour guide uses the full 3x3 covariance per window (the colour guided filter), so an edge between two
    colours of equal brightness still counts. ``eps`` regularises the fit: edges whose variance within a
    window is well below it are smoothed over (image noise), those well above it are kept.
    """
    if src.dim() != 4 or src.shape[1] < 1:
        raise ValueError(f"guided filter: src must be (N, K, H, W), got {tuple(src.shape)}")
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
    if guide.shape[1] == 1:
        var_i = box_mean(guide * guide, radius) - mean_i * mean_i
        a = (box_mean(guide * src, radius) - mean_i * mean_p) / (var_i + eps)
        b = mean_p - a * mean_i
        return box_mean(a, radius) * guide + box_mean(b, radius)
    inverse = _inverse_sym3(_window_covariance(guide, mean_i, radius, eps))
    k = src.shape[1]
    # All K channels at once: (N, 3, K, H, W) products of guide and src channels, one box mean for all.
    cov_ip = box_mean((guide.unsqueeze(2) * src.unsqueeze(1)).flatten(1, 2), radius).unflatten(1, (3, k)) \
        - mean_i.unsqueeze(2) * mean_p.unsqueeze(1)
    a = _apply_sym3(inverse, cov_ip)
    b = mean_p - (a * mean_i.unsqueeze(2)).sum(dim=1)
    return (box_mean(a.flatten(1, 2), radius).unflatten(1, (3, k)) * guide.unsqueeze(2)).sum(dim=1) \
        + box_mean(b, radius)


def _window_covariance(guide: Tensor, mean_i: Tensor, radius: int, eps: float) -> list[Tensor]:
    """The six distinct entries (xx, xy, xz, yy, yz, zz) of each window's colour covariance plus ``eps`` on the
    diagonal, each (N, 1, H, W)."""
    pairs = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
    j, k = [p[0] for p in pairs], [p[1] for p in pairs]
    cov = box_mean(guide[:, j] * guide[:, k], radius) - mean_i[:, j] * mean_i[:, k]
    xx, xy, xz, yy, yz, zz = cov.split(1, dim=1)
    return [xx + eps, xy, xz, yy + eps, yz, zz + eps]


def _inverse_sym3(sym: list[Tensor]) -> list[Tensor]:
    """The six distinct entries of S^-1 per pixel for a symmetric positive definite 3x3 S given as its six
    entries. Closed form (cofactors over the determinant), so it stays elementwise: fast on CPU for millions of
    tiny systems, deterministic, and exportable."""
    xx, xy, xz, yy, yz, zz = sym
    c_xx = yy * zz - yz * yz
    c_xy = xz * yz - xy * zz
    c_xz = xy * yz - xz * yy
    c_yy = xx * zz - xz * xz
    c_yz = xy * xz - xx * yz
    c_zz = xx * yy - xy * xy
    inv_det = 1 / (xx * c_xx + xy * c_xy + xz * c_xz)
    return [c * inv_det for c in (c_xx, c_xy, c_xz, c_yy, c_yz, c_zz)]


def _apply_sym3(inverse: list[Tensor], rhs: Tensor) -> Tensor:
    """``S^-1 rhs`` per pixel: ``inverse`` as :func:`_inverse_sym3` returns it (each (N, 1, H, W)), ``rhs`` and
    the result (N, 3, K, H, W), K right-hand sides."""
    i_xx, i_xy, i_xz, i_yy, i_yz, i_zz = inverse
    r0, r1, r2 = rhs.unbind(1)
    return torch.stack([i_xx * r0 + i_xy * r1 + i_xz * r2,
                        i_xy * r0 + i_yy * r1 + i_yz * r2,
                        i_xz * r0 + i_yz * r1 + i_zz * r2], dim=1)
