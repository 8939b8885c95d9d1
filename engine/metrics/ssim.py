"""SSIM and MS-SSIM for 3-D volumes (Gaussian window), and MS-SSIM diversity of a sample set.

Inputs are (N, 1, D, H, W) tensors (or one (D, H, W) volume) with values in ``value_range``
(the network's [-1, 1] by default). They are mapped to [0, 1] first and compared with a data
range of 1, as SSIM is defined for non-negative intensities: on signed data, windows whose means
have opposite signs get a negative luminance term.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError

# Wang, Simoncelli & Bovik (2003): the weights of the five scales, finest first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1, K2 = 0.01, 0.03
DATA_RANGE = 1.0  # after mapping to [0, 1]
NETWORK_RANGE = (-1.0, 1.0)


def as_batch(volume: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(D, H, W), (1, D, H, W) or (N, 1, D, H, W) -> float32 (N, 1, D, H, W)."""
    tensor = torch.as_tensor(np.asarray(volume) if not isinstance(volume, torch.Tensor) else volume)
    tensor = tensor.float()
    if tensor.ndim == 3:
        tensor = tensor[None, None]
    elif tensor.ndim == 4:
        tensor = tensor[None]
    if tensor.ndim != 5 or tensor.shape[1] != 1:
        raise ConfigError(f"expected volumes (N, 1, D, H, W) or one (D, H, W), got shape {tuple(tensor.shape)}")
    return tensor


def gaussian_kernel(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> torch.Tensor:
    """A normalised 1-D Gaussian of odd ``size``."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    return (kernel / kernel.sum()).float()


def _blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable 3-D Gaussian filter without padding ('valid'), one 1-D pass per axis.

    Each pass is a weighted sum of shifted views: several times faster on CPUs than conv3d
    with a one-channel 1-D kernel, and the same arithmetic.
    """
    taps = kernel.tolist()
    for dim in (2, 3, 4):
        size = x.shape[dim] - len(taps) + 1
        out = x.narrow(dim, 0, size) * taps[0]
        for shift, weight in enumerate(taps[1:], start=1):
            out.add_(x.narrow(dim, shift, size), alpha=weight)
        x = out
    return x


def to_unit(volume: torch.Tensor, value_range: tuple[float, float] = NETWORK_RANGE) -> torch.Tensor:
    """Values in ``value_range`` -> [0, 1] (clamped)."""
    low, high = value_range
    return ((volume - low) / (high - low)).clamp(0.0, 1.0)


def _ssim_maps(x: torch.Tensor, y: torch.Tensor, kernel: torch.Tensor, data_range: float = DATA_RANGE):
    """The SSIM map and its contrast-structure part ('valid' size: window - 1 smaller per axis)."""
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    n = len(x)
    # one filter pass over the five moment maps stacked on the batch axis
    moments = _blur(torch.cat([x, y, x * x, y * y, x * y]), kernel)
    mu_x, mu_y, xx, yy, xy = moments.split(n)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return luminance * cs, cs


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, kernel: torch.Tensor, data_range: float = DATA_RANGE):
    """Per-volume means of the SSIM map and of its contrast-structure part."""
    ssim, cs = _ssim_maps(x, y, kernel, data_range)
    return ssim.flatten(1).mean(1), cs.flatten(1).mean(1)


def paired_batches(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = as_batch(x), as_batch(y)
    if x.shape != y.shape:
        raise ConfigError(f"volumes to compare differ in shape: {tuple(x.shape)} and {tuple(y.shape)}")
    return x, y.to(x.device)


def _window_size(shape: tuple[int, ...]) -> int:
    """The standard window, shrunk (odd) for volumes smaller than it."""
    smallest = min(shape)
    return WINDOW_SIZE if smallest >= WINDOW_SIZE else max(1, smallest - (1 - smallest % 2))


def ssim3d(x, y, value_range: tuple[float, float] = NETWORK_RANGE, mask=None) -> torch.Tensor:
    """Mean 3-D SSIM per volume on data mapped to [0, 1] (data range 1), (N,); 1 for identical volumes.

    With ``mask`` (boolean, the volumes' shape), the SSIM map is averaged over the masked voxels
    (each value belongs to the window centred on it; voxels within half a window of the border
    have none and are left out).
    """
    x, y = paired_batches(x, y)
    size = _window_size(x.shape[2:])
    ssim_map, _ = _ssim_maps(to_unit(x, value_range), to_unit(y, value_range), gaussian_kernel(size))
    if mask is None:
        return ssim_map.flatten(1).mean(1)
    half = size // 2
    inner = as_batch(mask).bool().to(ssim_map.device)[..., half : half + ssim_map.shape[2], :, :]
    inner = inner[..., half : half + ssim_map.shape[3], half : half + ssim_map.shape[4]].expand_as(ssim_map)
    weights = inner.flatten(1).float()
    return (ssim_map.flatten(1) * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def ms_ssim_levels(shape: tuple[int, ...], window: int = WINDOW_SIZE) -> int:
    """Scales usable for a volume: each halves it, and the coarsest must still hold the window."""
    smallest, levels = min(shape), 0
    while levels < len(MS_SSIM_WEIGHTS) and smallest >= window:
        levels += 1
        smallest //= 2
    return max(levels, 1)


def scale_weights(levels: int) -> list[float]:
    """The standard weights for all five scales; for fewer, the first ones renormalised to sum to 1."""
    if levels == len(MS_SSIM_WEIGHTS):
        return list(MS_SSIM_WEIGHTS)
    total = sum(MS_SSIM_WEIGHTS[:levels])
    return [w / total for w in MS_SSIM_WEIGHTS[:levels]]


def ms_ssim_scales(shape: tuple[int, ...]) -> dict:
    """What MS-SSIM uses for volumes of ``shape``: scales, their weights, the window, the data range.

    The standard five scales and weights where the volume allows (at least 176 voxels per axis
    with the 11-voxel window); otherwise the first scales, their standard weights renormalised
    to sum to 1 (``scale_weights``). A report records this, since MS-SSIMs over different scales do not compare.
    """
    window = _window_size(tuple(shape))
    levels = ms_ssim_levels(tuple(shape), window)
    return {
        "scales": levels,
        "weights": [round(w, 6) for w in scale_weights(levels)],
        "standard": levels == len(MS_SSIM_WEIGHTS),
        "window": window,
        "sigma": WINDOW_SIGMA,
        "data_range": DATA_RANGE,
        "mapped_from": list(NETWORK_RANGE),
    }


def ms_ssim3d(x, y, value_range: tuple[float, float] = NETWORK_RANGE, levels: int | None = None) -> torch.Tensor:
    """Multi-scale 3-D SSIM per volume on data mapped to [0, 1] (data range 1), (N,).

    Scales are limited by the volume size (``ms_ssim_scales``: 4 at 128^3, 5 at 256^3, 2 at
    32^3); the standard weights of the scales used are renormalised to sum to 1. Negative
    contrast terms (anticorrelated structure) are clipped at 0 so fractional powers stay real.
    """
    x, y = paired_batches(x, y)
    x, y = to_unit(x, value_range), to_unit(y, value_range)
    size = _window_size(x.shape[2:])
    levels = levels or ms_ssim_levels(x.shape[2:], size)
    weights = torch.tensor(scale_weights(levels), dtype=torch.float64)
    kernel = gaussian_kernel(size)
    result = torch.ones(len(x), dtype=torch.float64, device=x.device)
    for level in range(levels):
        if min(x.shape[2:]) < size:
            raise ConfigError(f"volume of shape {tuple(x.shape[2:])} is too small for {levels} MS-SSIM scales")
        ssim, cs = _ssim_terms(x, y, kernel)
        term = ssim if level == levels - 1 else cs
        result = result * term.double().clamp_min(0) ** weights[level].item()
        if level < levels - 1:
            x, y = F.avg_pool3d(x, 2), F.avg_pool3d(y, 2)
    return result.float()


def pairwise_ms_ssim(volumes, max_pairs: int = 64, value_range: tuple[float, float] = NETWORK_RANGE) -> torch.Tensor:
    """MS-SSIM of distinct pairs of a sample set (a diversity measure: lower is more diverse).

    Takes the first ``max_pairs`` pairs (i, j), i < j, in order, so results are reproducible.
    """
    volumes = as_batch(volumes)
    if len(volumes) < 2:
        raise ConfigError("MS-SSIM diversity needs at least 2 volumes")
    pairs = list(itertools.islice(itertools.combinations(range(len(volumes)), 2), max_pairs))
    return torch.cat([ms_ssim3d(volumes[i : i + 1], volumes[j : j + 1], value_range) for i, j in pairs])
