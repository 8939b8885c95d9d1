"""Reconstruction quality of an encoder -> generator round trip: PSNR, SSIM, NMSE per volume."""

from __future__ import annotations

import torch

from .ssim import paired_batches, ssim3d


def psnr(reference, reconstruction, data_range: float = 2.0) -> torch.Tensor:
    """10 log10(range^2 / MSE) per volume in dB, (N,); infinite for identical volumes."""
    x, y = paired_batches(reference, reconstruction)
    mse = ((x.double() - y.double()) ** 2).flatten(1).mean(1)
    return (10.0 * torch.log10(data_range**2 / mse)).float()


def nmse(reference, reconstruction) -> torch.Tensor:
    """||reference - reconstruction||^2 / ||reference||^2 per volume, (N,)."""
    x, y = paired_batches(reference, reconstruction)
    x, y = x.double(), y.double()
    return (((x - y) ** 2).flatten(1).sum(1) / (x**2).flatten(1).sum(1)).float()


def reconstruction_metrics(reference, reconstruction, data_range: float = 2.0) -> dict[str, torch.Tensor]:
    """PSNR (dB), 3-D SSIM and NMSE per volume, keyed by name."""
    return {
        "psnr": psnr(reference, reconstruction, data_range),
        "ssim": ssim3d(reference, reconstruction, data_range),
        "nmse": nmse(reference, reconstruction),
    }
