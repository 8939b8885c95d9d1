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


def upsample2(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour upsampling by 2 along every spatial axis."""
    return F.interpolate(x, scale_factor=2, mode="nearest")
