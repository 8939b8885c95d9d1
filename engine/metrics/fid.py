"""Fréchet distance between Gaussian fits of two feature sets (FID when the features are a network's)."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import torch

from ..errors import ConfigError

Features = np.ndarray | torch.Tensor


def as_features(features: Features, name: str = "features") -> np.ndarray:
    """(N, F) float64 numpy array from a tensor or array, with a one-line error for other shapes."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().double().numpy()
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ConfigError(f"{name}: expected a (N, F) feature matrix, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ConfigError(f"{name}: features contain NaN or infinite values")
    return array


def feature_statistics(features: Features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and unbiased covariance (F, F) of a (N, F) feature set."""
    array = as_features(features)
    if array.shape[0] < 2:
        raise ConfigError(f"a covariance needs at least 2 samples, got {array.shape[0]}")
    return array.mean(axis=0), np.atleast_2d(np.cov(array, rowvar=False))


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)): the Fréchet distance of two Gaussians.

    Rank-deficient covariances (fewer samples than features) can make the square root of the
    product singular or non-finite; then ``eps`` is added to both diagonals and it is tried again.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ConfigError(
            f"feature statistics do not match: means {mu1.shape} {mu2.shape}, covariances {sigma1.shape} {sigma2.shape}"
        )
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if covmean is None:
        offset = np.eye(mu1.size) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if covmean is None:
            raise ConfigError("the matrix square root of the covariance product did not converge")
    covmean = _real_part(covmean)
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return float(max(value, 0.0))


IMAGINARY_TOLERANCE = 1e-3  # relative to the largest |entry| of the square root


def _real_part(root: np.ndarray) -> np.ndarray:
    """The real part of a matrix square root; an error when the imaginary part is not numerical noise.

    The product of two covariance matrices has real non-negative eigenvalues, so a root with a
    sizeable imaginary part means the statistics are broken (e.g. NaN-free but non-PSD inputs).
    """
    if not np.iscomplexobj(root):
        return root
    scale = max(float(np.abs(root.real).max()), np.finfo(np.float64).tiny)
    imaginary = float(np.abs(root.imag).max())
    if imaginary > IMAGINARY_TOLERANCE * scale:
        raise ConfigError(
            f"the matrix square root of the covariance product has an imaginary part of {imaginary:.3g} "
            f"({imaginary / scale:.2g} of its largest entry): the feature statistics are not valid covariances"
        )
    return root.real


def _sqrtm(matrix: np.ndarray) -> np.ndarray | None:
    """scipy's matrix square root, or None where it is not finite."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # singular products are handled here
        root = scipy.linalg.sqrtm(matrix)
    return root if np.isfinite(root).all() else None


def frechet_distance_of_features(x: Features, y: Features, eps: float = 1e-6) -> float:
    """The Fréchet distance of the Gaussian fits of two (N, F) feature sets.

    With fewer samples than features the covariances are rank-deficient: there the trace term
    is computed exactly in sample space (no eps, no F x F square root). Otherwise it is
    ``frechet_distance`` on the fitted statistics (scipy sqrtm, as the reference evaluation).
    """
    x, y = as_features(x, "first set"), as_features(y, "second set")
    if x.shape[1] != y.shape[1]:
        raise ConfigError(f"feature sizes differ: {x.shape[1]} and {y.shape[1]}")
    if min(len(x), len(y)) < 2:
        raise ConfigError(f"a covariance needs at least 2 samples, got {len(x)} and {len(y)}")
    if max(len(x), len(y)) > x.shape[1]:
        return frechet_distance(*feature_statistics(x), *feature_statistics(y), eps=eps)
    # S1 = a^T a and S2 = b^T b with a, b the centred samples / sqrt(N - 1). The non-zero
    # eigenvalues of S1 S2 = a^T (a b^T) b are those of C C^T with C = a b^T (N1 x N2), so
    # Tr (S1 S2)^(1/2) is the sum of C's singular values (its nuclear norm).
    a = (x - x.mean(0)) / np.sqrt(len(x) - 1)
    b = (y - y.mean(0)) / np.sqrt(len(y) - 1)
    diff = x.mean(0) - y.mean(0)
    trace_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    return float(max(diff @ diff + np.sum(a * a) + np.sum(b * b) - 2.0 * trace_sqrt, 0.0))


class FIDMetric:
    """Fréchet distance between the Gaussian fits of real and generated features.

    Features come from any extractor (Med3D, the 2.5D slice extractor, ...): the metric only
    sees (N, F) matrices, so it can be tested on random tensors.
    """

    def __init__(self, eps: float = 1e-6) -> None:
        self.eps = eps

    def __call__(self, real: Features, fake: Features) -> float:
        return frechet_distance_of_features(real, fake, self.eps)
