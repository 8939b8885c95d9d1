"""Feature extractors for FID/MMD, chosen by name: Med3D (3-D, user weights), slices (2.5-D), none."""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..checkpoints import tensor_hash
from ..errors import ConfigError
from .med3d import FEATURES as MED3D_FEATURES
from .med3d import load_med3d_weights, med3d_resnet50
from .slices import RandomSliceEncoder, SliceExtractor

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]  # (N, 1, D, H, W) in [-1, 1] -> (N, F)


class ExtractorKind(str, enum.Enum):
    """User-visible extractor choices."""

    MED3D = "med3d"
    SLICES = "slices"
    NONE = "none"


@dataclass
class ExtractorInfo:
    """An extractor ready to run, and what a report needs to say about it."""

    kind: ExtractorKind
    module: nn.Module | None
    description: str
    features: int = 0
    weights: str | None = None
    weights_hash: str | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.kind.value,
            "description": self.description,
            "features": self.features,
            "weights": self.weights,
            "weights_sha256": self.weights_hash,
        }

    @torch.inference_mode()
    def __call__(self, volumes: torch.Tensor) -> torch.Tensor:
        if self.module is None:
            raise ConfigError("no feature extractor was chosen")
        device = next(self.module.parameters()).device
        return self.module(volumes.to(device)).float().cpu()


def build_extractor(
    kind: str | ExtractorKind, weights: str | os.PathLike | None = None, device: torch.device | str = "cpu"
) -> ExtractorInfo:
    """The named extractor on ``device``. Med3D needs a MedicalNet weights file; nothing is downloaded."""
    try:
        kind = ExtractorKind(kind)
    except ValueError:
        raise ConfigError(f"unknown extractor '{kind}'; choose one of med3d, slices, none") from None
    if kind is ExtractorKind.NONE:
        if weights is not None:
            raise ConfigError("--extractor-weights needs an extractor (med3d); the extractor is 'none'")
        return ExtractorInfo(kind, None, "no feature extractor: network-free statistics only")
    if kind is ExtractorKind.SLICES:
        if weights is not None:
            raise ConfigError("the slices extractor has fixed random weights; --extractor-weights is for med3d")
        encoder = RandomSliceEncoder()
        module = SliceExtractor(encoder).to(device).eval()
        return ExtractorInfo(
            kind,
            module,
            "2.5-D: a fixed random 2-D CNN (seed 0, not pretrained) on 16 axial, coronal and sagittal slices, "
            "averaged per plane; not comparable with Med3D FIDs",
            3 * encoder.out_features,
            None,
            tensor_hash(encoder.state_dict()),
        )
    if weights is None:
        raise ConfigError(
            "the med3d extractor needs --extractor-weights FILE (MedicalNet resnet_50.pth or "
            "resnet_50_23dataset.pth); nothing is downloaded. Use --extractor slices or none without it"
        )
    path = Path(weights)
    module = med3d_resnet50()
    digest = load_med3d_weights(module, path)
    return ExtractorInfo(
        kind,
        module.to(device).eval(),
        "Med3D (MedicalNet) 3-D ResNet-50, global average pooled; inputs as HA-GAN evaluated: network range "
        "[-1, 1], (D, H, W) = RAS (k, j, i), no MedicalNet z-scoring",
        MED3D_FEATURES,
        str(path),
        digest,
    )
