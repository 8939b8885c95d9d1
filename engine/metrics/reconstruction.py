"""Reconstruction quality of an encoder -> generator round trip: PSNR, SSIM, NMSE per volume.

All three are computed on data mapped from the network's [-1, 1] to [0, 1] (data range 1), so
the background (-1) is 0 and NMSE measures the error relative to the anatomy's energy. With a
``mask`` they are computed over the masked voxels only. ``baseline_metrics`` scores a constant
volume: "blank" (the background, -1: what a reconstruction that lost the scan gives; on a mostly
blank volume it already scores a high whole-volume PSNR/SSIM) or "mean" (the reference's mean
over the region: the best constant in the squared-error sense, a much harder bar).
"""

from __future__ import annotations

import torch

from .ssim import NETWORK_RANGE, as_batch, paired_batches, ssim3d, to_unit

DATA_RANGE = 1.0


def _region(x: torch.Tensor, mask) -> torch.Tensor:
    """(N, V) voxel weights: 1 everywhere, or the mask."""
    if mask is None:
        return torch.ones_like(x.flatten(1), dtype=torch.float64)
    return as_batch(mask).bool().to(x.device).expand_as(x).flatten(1).double()


def _squared_errors(x: torch.Tensor, y: torch.Tensor, mask, value_range) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = to_unit(x, value_range).double(), to_unit(y, value_range).double()
    weights = _region(x, mask)
    return ((x - y) ** 2).flatten(1) * weights, (x**2).flatten(1) * weights


def psnr(reference, reconstruction, mask=None, value_range: tuple[float, float] = NETWORK_RANGE) -> torch.Tensor:
    """10 log10(1 / MSE) on [0, 1] data per volume in dB, (N,); infinite for identical volumes."""
    x, y = paired_batches(reference, reconstruction)
    errors, _ = _squared_errors(x, y, mask, value_range)
    count = _region(x, mask).sum(1).clamp_min(1.0)
    return (10.0 * torch.log10(DATA_RANGE**2 / (errors.sum(1) / count))).float()


def nmse(reference, reconstruction, mask=None, value_range: tuple[float, float] = NETWORK_RANGE) -> torch.Tensor:
    """||reference - reconstruction||^2 / ||reference||^2 on [0, 1] data per volume, (N,)."""
    x, y = paired_batches(reference, reconstruction)
    errors, energy = _squared_errors(x, y, mask, value_range)
    return (errors.sum(1) / energy.sum(1)).float()


def reconstruction_metrics(
    reference, reconstruction, mask=None, value_range: tuple[float, float] = NETWORK_RANGE
) -> dict[str, torch.Tensor]:
    """PSNR (dB), 3-D SSIM and NMSE per volume, keyed by name (over ``mask`` when given)."""
    return {
        "psnr": psnr(reference, reconstruction, mask, value_range),
        "ssim": ssim3d(reference, reconstruction, value_range, mask),
        "nmse": nmse(reference, reconstruction, mask, value_range),
    }


BASELINES = ("blank", "mean")


def constant_like(reference, mask=None, kind: str = "blank", value_range=NETWORK_RANGE) -> torch.Tensor:
    """A constant volume of the reference's shape: the range's low end ("blank") or the reference's
    mean over the region ("mean": all voxels, or the mask)."""
    x = as_batch(reference).double()
    if kind == "blank":
        return torch.full_like(x, float(value_range[0])).float()
    weights = _region(x, mask)
    mean = (x.flatten(1) * weights).sum(1) / weights.sum(1).clamp_min(1.0)
    return mean.view(-1, 1, 1, 1, 1).expand_as(x).float()


def baseline_metrics(
    reference, mask=None, kind: str = "blank", value_range: tuple[float, float] = NETWORK_RANGE
) -> dict[str, torch.Tensor]:
    """``reconstruction_metrics`` of a constant baseline (``constant_like``) over the same region."""
    return reconstruction_metrics(reference, constant_like(reference, mask, kind, value_range), mask, value_range)


def round_trip_metrics(original: torch.Tensor, rebuilt: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """PSNR/SSIM/NMSE (on [0, 1] data) over the volume and the foreground, each with its constant baseline."""
    metrics = {"foreground_fraction": float(mask.float().mean())}
    for prefix, region in (("", None), ("foreground_", mask)):
        for key, value in reconstruction_metrics(original, rebuilt, region).items():
            metrics[f"{prefix}{key}"] = float(value[0])
        for kind in BASELINES:
            for key, value in baseline_metrics(original, region, kind).items():
                metrics[f"{prefix}{kind}_{key}"] = float(value[0])
    return metrics
