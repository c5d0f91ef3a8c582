"""Fréchet Inception Distance between two Gaussians fitted to feature sets.

FID = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2)).

``S1 S2`` is not symmetric, so its square root is awkward to take without scipy. Its eigenvalues, however,
are those of the symmetric PSD matrix ``sqrt(S1) S2 sqrt(S1)`` (similar matrices), hence
``tr(sqrtm(S1 S2)) = sum_i sqrt(lambda_i(sqrt(S1) S2 sqrt(S1)))``, which two ``eigh`` calls give exactly.
Everything runs in float64: with 2048-d features and a few thousand samples, float32 loses several digits
in the trace difference.
"""
from __future__ import annotations

import torch


def _as_float64(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def _sym(m: torch.Tensor) -> torch.Tensor:
    # Round-off makes computed covariances very slightly asymmetric; eigh silently reads one triangle only.
    return (m + m.T) / 2


def _psd_sqrt(m: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(_sym(m))
    # Tiny negative eigenvalues are round-off of a rank-deficient PSD matrix (n <= d), not real structure.
    return (v * w.clamp_min(0).sqrt()) @ v.T


def feature_statistics(features) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` (like ``np.cov(rowvar=False)``) of ``features (n, d)``.

    Returned as CPU float64 tensors. ``n < 2`` raises ValueError (the covariance is undefined).
    """
    x = _as_float64(features, "features")
    if x.ndim != 2:
        raise ValueError(f"features must have shape (n, d), got {tuple(x.shape)}")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 feature vectors to estimate a covariance, got {n}")
    mu = x.mean(dim=0)
    centred = x - mu
    sigma = centred.T @ centred / (n - 1)
    return mu, sigma


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); tensors or arrays, computed in float64."""
    mu1, mu2 = _as_float64(mu1, "mu1"), _as_float64(mu2, "mu2")
    sigma1, sigma2 = _as_float64(sigma1, "sigma1"), _as_float64(sigma2, "sigma2")
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"means must be 1-d and of equal length, got {tuple(mu1.shape)} and {tuple(mu2.shape)}")
    d = mu1.shape[0]
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        if s.shape != (d, d):
            raise ValueError(f"{name} must have shape ({d}, {d}) to match the means, got {tuple(s.shape)}")
    sqrt1 = _psd_sqrt(sigma1)
    eig = torch.linalg.eigvalsh(_sym(sqrt1 @ sigma2 @ sqrt1))
    tr_covmean = eig.clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    value = diff.dot(diff) + torch.trace(sigma1) + torch.trace(sigma2) - 2 * tr_covmean
    # The distance is a squared Wasserstein-2 distance, so a negative result can only be round-off.
    return max(float(value), 0.0)


def fid_from_features(features1, features2) -> float:
    """FID between two feature sets ``(n1, d)`` and ``(n2, d)``; each needs at least 2 rows."""
    mu1, sigma1 = feature_statistics(features1)
    mu2, sigma2 = feature_statistics(features2)
    if mu1.shape != mu2.shape:
        raise ValueError(f"feature dimensions differ: {mu1.shape[0]} vs {mu2.shape[0]}")
    return frechet_distance(mu1, sigma1, mu2, sigma2)
