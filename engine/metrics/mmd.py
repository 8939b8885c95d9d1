"""Maximum mean discrepancy (unbiased MMD^2) with a Gaussian kernel and the median heuristic."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from .fid import Features, as_features


def median_alpha(pooled: torch.Tensor) -> float:
    """alpha = 1 / median(pairwise L2 distances of the pooled sample)^2, the median heuristic."""
    distances = _squared_distances(pooled, pooled).sqrt_()
    upper = torch.triu_indices(len(pooled), len(pooled), offset=1)
    median = float(np.median(distances[upper[0], upper[1]].numpy()))  # the midpoint for an even count
    return 1.0 / median**2 if median > 0 else 1.0


def mmd2_unbiased(x: Features, y: Features, alpha: float | None = None) -> float:
    """Unbiased MMD^2 of two (N, F) samples with k(a, b) = exp(-alpha ||a - b||^2).

    ``alpha`` defaults to the median heuristic over the pooled sample. The unbiased estimate
    leaves out the diagonals of k(x, x) and k(y, y), so it can be slightly negative (a set
    against itself gives about -2(1 - mean k)/N).
    """
    x = torch.from_numpy(as_features(x, "first sample"))
    y = torch.from_numpy(as_features(y, "second sample"))
    if x.shape[1] != y.shape[1]:
        raise ConfigError(f"feature sizes differ: {x.shape[1]} and {y.shape[1]}")
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ConfigError(f"the unbiased MMD needs at least 2 samples per set, got {m} and {n}")
    if alpha is None:
        alpha = median_alpha(torch.cat([x, y]))
    kxx = torch.exp(-alpha * _squared_distances(x, x))
    kyy = torch.exp(-alpha * _squared_distances(y, y))
    kxy = torch.exp(-alpha * _squared_distances(x, y))
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * kxy.mean())


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a_i - b_j||^2 in float64 through the Gram matrix (clamped at 0 against rounding)."""
    a, b = a.double(), b.double()
    gram = a @ b.T
    return ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * gram).clamp_min_(0)


class MMDMetric:
    """Unbiased MMD^2 between real and generated features (Gaussian kernel, median heuristic)."""

    def __init__(self, alpha: float | None = None) -> None:
        self.alpha = alpha

    def __call__(self, real: Features, fake: Features) -> float:
        return mmd2_unbiased(real, fake, self.alpha)
