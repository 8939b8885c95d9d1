"""The Med3D (MedicalNet) 3-D ResNet-50 as a feature extractor: (N, 1, D, H, W) -> (N, 2048).

The network follows the published Med3D backbone: Bottleneck blocks [3, 4, 6, 3], shortcut type B
(1x1x1 convolution + BatchNorm where the shape changes), BatchNorm throughout, a 7x7x7 stride-2
first convolution with 64 channels and a 3/2 max pool. layer3 and layer4 keep stride 1 and use
dilation 2 and 4 instead, so the total stride is 8 (a 256^3 input gives a 2048 x 32^3 map).
The segmentation head is replaced by global average pooling: 2048 features per volume.

Parameter names are those of MedicalNet's weight files (``conv1.weight``, ``layer1.0.bn1.weight``,
``layer1.0.downsample.0.weight`` ...), which store ``{'state_dict': {'module.' + name: tensor}}``.
No weights ship with the engine and none are downloaded: users give the file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import load_checked
from ..errors import CheckpointError, first_line

RESNET50_LAYERS = (3, 4, 6, 3)
FEATURES = 2048


class Bottleneck3d(nn.Module):
    """1x1x1 reduce -> 3x3x3 (stride, dilation) -> 1x1x1 expand (x4), with a residual connection."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv3d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:  # shortcut type B: a projection
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm3d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class Med3DResNet(nn.Module):
    """Med3D 3-D ResNet backbone with global average pooling (ResNet-50 by default)."""

    def __init__(self, layers: tuple[int, int, int, int] = RESNET50_LAYERS) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(1, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        channels = 64
        # (planes, stride, dilation) of layer1..layer4: total stride 2 * 2 * 2 = 8
        for index, (blocks, planes, stride, dilation) in enumerate(
            zip(layers, (64, 128, 256, 512), (1, 2, 1, 1), (1, 1, 2, 4)), start=1
        ):
            stage = []
            for block in range(blocks):
                stage.append(Bottleneck3d(channels, planes, stride if block == 0 else 1, dilation))
                channels = planes * Bottleneck3d.expansion
            setattr(self, f"layer{index}", nn.Sequential(*stage))
        self.out_features = channels

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, D, H, W) -> (N, 2048, D/8, H/8, W/8) (sizes rounded up)."""
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, D, H, W) -> (N, 2048) globally pooled features."""
        return self.feature_map(x).mean(dim=(2, 3, 4))


def file_sha256(path: str | os.PathLike) -> str:
    """'sha256:<hex>' of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def read_med3d_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A MedicalNet weight file -> backbone state dict ('module.' stripped, conv_seg.* dropped)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged or foreign files
        cause = first_line(error, 200)
        if "Weights only load failed" in str(error):  # torch's advice to unpickle anyway is never passed on
            cause = "holds Python objects other than tensors; refusing to unpickle it"
        raise CheckpointError(f"{path}: not a readable PyTorch weights file ({cause})") from None
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: holds no state dict of tensors (expected {{'state_dict': ...}})")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    return {key: value for key, value in state.items() if not key.startswith("conv_seg.")}


def load_med3d_weights(model: Med3DResNet, path: str | os.PathLike) -> str:
    """Load a MedicalNet weight file into ``model``; returns the file's SHA-256.

    Any mismatch (missing or unexpected key, wrong shape) is one CheckpointError line naming the
    key and shapes. BatchNorm ``num_batches_tracked`` counters are optional (older files lack them).
    """
    state = read_med3d_state_dict(path)
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value, device="cpu")
    load_checked(model, state, str(path), "Med3D ResNet-50")
    return file_sha256(path)


def med3d_resnet50(weights: str | os.PathLike | None = None) -> Med3DResNet:
    """The Med3D ResNet-50 in eval mode, with MedicalNet weights from ``weights`` when given."""
    model = Med3DResNet()
    if weights is not None:
        load_med3d_weights(model, weights)
    return model.eval()
