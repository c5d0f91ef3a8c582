"""Kernel Inception Distance (Binkowski et al., 2018): squared MMD with a cubic polynomial kernel.

k(x, y) = (x . y / d + 1)^3. For two subsets X, Y of m samples each the unbiased estimator is

    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
              - 2 sum_{i, j} k(x_i, y_j) / m^2

Unlike FID it has no bias from the sample size, so values from different set sizes are comparable, and it
can be (slightly) negative. It is averaged over ``num_subsets`` random subsets (drawn without replacement
inside a subset); the std over subsets says how much that average can be trusted.
"""
from __future__ import annotations

import numpy as np
import torch


def _as_array(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The KID kernel matrix ``(x @ y.T / d + 1) ** 3``."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 estimate between two equally sized samples ``(m, d)`` under the KID kernel."""
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise ValueError(f"need two samples of equal size >= 2, got {x.shape[0]} and {y.shape[0]}")
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    # The diagonals k(x_i, x_i) pair each sample with itself; leaving them in biases the estimate upwards.
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kid_from_features(features1, features2, num_subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> tuple[float, float]:
    """KID ``(mean, std)`` over ``num_subsets`` random subsets of ``min(subset_size, n1, n2)`` rows each.

    The subsets come from ``numpy.random.default_rng(seed)``, so the same features and seed give the same
    value. ``std`` is the population std (ddof=0) of the per-subset estimates.
    """
    x = _as_array(features1, "features1")
    y = _as_array(features2, "features2")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be >= 2, got {subset_size}")
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 feature vectors per set, got {x.shape[0]} and {y.shape[0]}")
    rng = np.random.default_rng(seed)
    estimates = np.empty(num_subsets, dtype=np.float64)
    for i in range(num_subsets):
        xs = x[rng.choice(x.shape[0], m, replace=False)]
        ys = y[rng.choice(y.shape[0], m, replace=False)]
        estimates[i] = mmd2_unbiased(xs, ys)
    return float(estimates.mean()), float(estimates.std())
