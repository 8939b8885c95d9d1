"""2.5-D features: a 2-D extractor applied to axial, coronal and sagittal slices, averaged per plane.

For users without 3-D weights. The default slice encoder is a small convolutional network with
*fixed random weights* (seeded, identical on every machine): no pretraining, no download. Random
convolutional features are sensitive to texture, edges and intensity, which is enough to compare
distributions, but the numbers are not comparable with Med3D- or Inception-based FIDs in papers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

SliceEncoder = Callable[[torch.Tensor], torch.Tensor]  # (M, 1, H, W) -> (M, F)


class RandomSliceEncoder(nn.Module):
    """Fixed random 2-D CNN: 3x3 stride-2 convolutions + ReLU, mean and std pooled at every stage.

    Weights are He-normal draws from a CPU generator seeded with ``seed``, so the features (and
    their hash) are the same everywhere. ``out_features`` = 2 * sum(widths).
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128), seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator("cpu").manual_seed(seed)
        self.convs = nn.ModuleList()
        in_channels = 1
        for width in widths:
            conv = nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False)
            fan_in = in_channels * 9
            conv.weight.data = torch.randn(conv.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5
            conv.weight.requires_grad_(False)
            self.convs.append(conv)
            in_channels = width
        self.out_features = 2 * sum(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = []
        for conv in self.convs:
            x = F.relu(conv(x))
            flat = x.flatten(2)
            pooled += [flat.mean(2), flat.std(2)]
        return torch.cat(pooled, dim=1)


def slice_indices(size: int, count: int) -> list[int]:
    """``count`` evenly spaced slice indices across ``size`` (all slices when count >= size)."""
    if count >= size:
        return list(range(size))
    return sorted({int(round(i)) for i in np.linspace(0, size - 1, count)})


class SliceExtractor(nn.Module):
    """(N, 1, D, H, W) -> (N, 3F): for each plane, the slice encoder's features averaged over slices.

    The three plane means (axial = along D, coronal = along H, sagittal = along W) are
    concatenated, so differences that show in one orientation only are kept.
    """

    def __init__(self, encoder: SliceEncoder | None = None, slices_per_plane: int = 16, batch: int = 64) -> None:
        super().__init__()
        if slices_per_plane < 1:
            raise ConfigError(f"slices per plane must be at least 1, got {slices_per_plane}")
        self.encoder = encoder if encoder is not None else RandomSliceEncoder()
        self.slices_per_plane = slices_per_plane
        self.batch = batch

    def forward(self, volumes: torch.Tensor) -> torch.Tensor:
        if volumes.ndim != 5 or volumes.shape[1] != 1:
            raise ConfigError(f"expected volumes (N, 1, D, H, W), got shape {tuple(volumes.shape)}")
        planes = []
        for axis in (2, 3, 4):
            chosen = torch.tensor(slice_indices(volumes.shape[axis], self.slices_per_plane), device=volumes.device)
            slices = volumes.index_select(axis, chosen).movedim(axis, 1)  # (N, k, 1, a, b)
            n, k = slices.shape[:2]
            flat = slices.reshape(n * k, 1, *slices.shape[3:])
            features = torch.cat([self.encoder(part) for part in flat.split(self.batch)])
            planes.append(features.view(n, k, -1).mean(1))
        return torch.cat(planes, dim=1)
