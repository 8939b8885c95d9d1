"""Building blocks shared by the networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _SpectralNormMixin:
    """Divides the weight by its largest singular value (Miyato et al., 2018).

    One power iteration per call estimates the singular value. The estimate lives in the buffers
    ``u0`` (left singular vector, shape (1, out)) and ``sv0`` (last singular value, shape (1,)),
    the names used by BigGAN-style layers, so official HA-GAN discriminator files load unchanged.
    The buffers only change in training mode.
    """

    eps = 1e-8

    def _init_spectral_norm(self, out_features: int) -> None:
        self.register_buffer("u0", torch.randn(1, out_features))
        self.register_buffer("sv0", torch.ones(1))

    def normalised_weight(self) -> torch.Tensor:
        w = self.weight.flatten(1)
        with torch.no_grad():
            v = F.normalize(self.u0 @ w, dim=1, eps=self.eps)
            u = F.normalize(v @ w.t(), dim=1, eps=self.eps)
            if self.training:
                self.u0.copy_(u)
        sigma = (v @ w.t() @ u.t()).reshape(())
        if self.training:
            self.sv0.copy_(sigma.detach().reshape(1))
        return self.weight / sigma


class _SNConvMixin(_SpectralNormMixin):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_spectral_norm(self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.normalised_weight(), self.bias)


class SNConv3d(_SNConvMixin, nn.Conv3d):
    pass


class SNConv2d(_SNConvMixin, nn.Conv2d):
    """The 2D twin of SNConv3d (Split&Shuffle slice models)."""


class SNLinear(_SpectralNormMixin, nn.Linear):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_spectral_norm(self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalised_weight(), self.bias)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 8 groups, as in every HA-GAN normalisation layer."""
    return nn.GroupNorm(8, channels)


UPSAMPLE_MODES = ("nearest", "trilinear", "blur")


def upsample2(x: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """Upsampling by 2 along every spatial axis.

    "nearest" (the official networks) copies each voxel into a 2x2x2 block: a staircase that the
    next convolution must learn to smooth, or it shows as 2-voxel bands and checkerboards.
    "trilinear" interpolates (in the interior the same as nearest followed by a [1, 2, 1]/4 blur);
    "blur" also low-passes the result with [1, 2, 1]/4 along every axis: softer still.
    """
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    x = F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)
    return blur3(x) if mode == "blur" else x


def blur3(x: torch.Tensor) -> torch.Tensor:
    """A [1, 2, 1]/4 low-pass along D, H and W of every channel, borders replicated."""
    channels = x.shape[1]
    taps = torch.tensor([0.25, 0.5, 0.25], dtype=x.dtype, device=x.device)
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = 3
        padding = [0, 0, 0, 0, 0, 0]
        padding[4 - 2 * axis : 6 - 2 * axis] = [1, 1]  # F.pad lists the last axis first
        kernel = taps.view(shape).expand(channels, *shape[1:])
        x = F.conv3d(F.pad(x, padding, mode="replicate"), kernel, groups=channels)
    return x
