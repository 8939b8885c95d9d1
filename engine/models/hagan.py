"""HA-GAN networks (Sun et al., "Hierarchical Amortized GAN for 3D High Resolution Medical Image
Synthesis", IEEE JBHI 2022): one parameterised implementation for every resolution.

Tensors are (N, C, D, H, W); D is the slab (slice) axis. With S the output size:

- G^A (`Generator.features`): z -> shared feature map (N, 2g, S/4, S/4, S/4)
- G^L (`Generator.anchor`):   feature map -> low-resolution anchor volume (N, 1, S/4, S/4, S/4)
- G^H (`Generator.high_res`): feature map -> high-resolution volume, 4x larger on every axis
- D = (D^H on a slab with its crop position + D^L on the anchor) / 2
- E^H (`Encoder`): slab (N, 1, S/8, S, S) -> feature slab (N, 2g, S/32, S/4, S/4)
- E^G (`SubEncoder`): feature map (N, 2g, S/4, S/4, S/4) -> z

Attribute names follow the official checkpoints so that their state dicts load as they are:
``tp_conv*`` are ordinary 3x3x3 convolutions (not transposed) and ``bn*`` are GroupNorms.
``HAGANConfig.blocks`` other than "dense" (the official networks) makes the convolutions of G^A,
G^H, G^L, D^H and D^L Split&Shuffle blocks (``engine.models.split_shuffle``), except D's first
convolutions (from 1 channel), G's last ones (to 1 channel) and D^L's last (to the logits);
E^H and E^G stay dense. ``HAGANConfig.upsample`` other than "nearest" changes G's upsampling
only (no weights change: a file of either kind loads into the other's layout).
Smaller resolutions drop leading layers (official 128 has no D^H ``conv1``; 64 also has no
``conv2``), which is exactly how the official 128 variant differs from the 256 one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .config_dict import DictConfig
from .layers import UPSAMPLE_MODES, SNLinear, group_norm, upsample2
from .split_shuffle import check_block_type, make_conv

SUPPORTED_RESOLUTIONS = (32, 64, 128, 256)


@dataclass(frozen=True)
class HAGANConfig(DictConfig):
    """Everything needed to build the networks; stored in every model card.

    Widths: ``g_width`` is G^H's channel count (official 32); G^A uses 16g, 8g, 4g and 2g, and
    the feature map has 2g channels. ``d_width`` is D^H's first width (official 16).
    ``e_width`` is the sub-encoder's first width (official 32). E^H follows ``g_width`` because
    its output must match the feature map.
    """

    resolution: int = 256
    latent_dim: int = 1024
    num_class: int = 0
    g_width: int = 32
    d_width: int = 16
    e_width: int = 32
    blocks: str = "dense"
    block_groups: int = 4
    upsample: str = "nearest"  # G's upsampling: nearest (official), trilinear or blur (no new weights)

    def __post_init__(self) -> None:
        check_block_type(self.blocks)
        if self.upsample not in UPSAMPLE_MODES:
            raise ConfigError(f"unknown upsampling '{self.upsample}'; choose one of {', '.join(UPSAMPLE_MODES)}")
        if self.blocks == "grouped" and not 2 <= self.block_groups <= 8:
            raise ConfigError(f"grouped blocks need 2 to 8 groups, got {self.block_groups}")
        if self.resolution not in SUPPORTED_RESOLUTIONS:
            raise ConfigError(
                f"resolution {self.resolution} is not supported; choose one of "
                + ", ".join(map(str, SUPPORTED_RESOLUTIONS))
            )
        if self.latent_dim < 1:
            raise ConfigError(f"latent_dim must be positive, got {self.latent_dim}")
        if self.num_class < 0:
            raise ConfigError(f"num_class must be 0 or more, got {self.num_class}")
        # GroupNorm(8) needs every normalised width divisible by 8; G^L's last one is g/2.
        if self.g_width < 16 or self.g_width % 16:
            raise ConfigError(f"g_width must be a multiple of 16, got {self.g_width}")
        for name in ("d_width", "e_width"):
            value = getattr(self, name)
            if value < 8 or value % 8:
                raise ConfigError(f"{name} must be a multiple of 8, got {value}")

    @classmethod
    def official(cls, resolution: int, num_class: int = 0) -> HAGANConfig:
        """The layout of the official HA-GAN checkpoints (128 or 256)."""
        if resolution not in (128, 256):
            raise ConfigError(f"official HA-GAN models exist at 128 and 256, not {resolution}")
        return cls(resolution=resolution, num_class=num_class)

    @property
    def feature_size(self) -> int:
        """Edge of G^A's feature map and of the anchor volume: S/4."""
        return self.resolution // 4

    @property
    def slab_thickness(self) -> int:
        """Slices in one training slab: S/8."""
        return self.resolution // 8

    @property
    def max_slab_start(self) -> int:
        """Largest slab start: 7S/8 (the official D divides the crop position by it)."""
        return self.resolution - self.slab_thickness

    @property
    def levels(self) -> int:
        """Stride-2 stages between 4^3 and the S/4 feature map: log2(S) - 4."""
        return int(math.log2(self.resolution)) - 4

    def conv(self, in_channels: int, out_channels: int, *geometry, spectral_norm: bool = False) -> torch.nn.Module:
        """An inner convolution: dense (the official layer) or a Split&Shuffle block, per ``blocks``.

        ``geometry`` is (kernel, stride, padding); the default is 3x3x3, stride 1, padding 1.
        """
        kernel, stride, padding = geometry or (3, 1, 1)
        options = dict(block=self.blocks, groups=self.block_groups, spectral_norm=spectral_norm)
        return make_conv(in_channels, out_channels, kernel, stride, padding, **options)


def _dense(in_channels: int, out_channels: int, *geometry, spectral_norm: bool = False) -> torch.nn.Module:
    """A first or last convolution, always dense (3x3x3, stride 1, padding 1 by default)."""
    kernel, stride, padding = geometry or (3, 1, 1)
    return make_conv(in_channels, out_channels, kernel, stride, padding, spectral_norm=spectral_norm)


def _kept(names: tuple[str, ...], count: int) -> tuple[str, ...]:
    """The last ``count`` layer names: smaller resolutions drop leading layers."""
    return names[len(names) - count :] if count > 0 else ()


class Generator(nn.Module):
    """G^A + G^L + G^H with explicit operations instead of a mode flag.

    ``features`` -> ``anchor`` / ``slab`` / ``full`` / ``stitched``. All of them accept any
    batch size, including 1, on any device.
    """

    def __init__(self, config: HAGANConfig) -> None:
        super().__init__()
        self.config = config
        g = config.g_width
        self.fc1 = nn.Linear(config.latent_dim + config.num_class, 16 * g * 4**3)
        widths = [16 * g, 16 * g, 16 * g, 8 * g, 4 * g, 2 * g]  # tp_conv1..5 in -> out
        for i in range(1, 6):
            setattr(self, f"tp_conv{i}", config.conv(widths[i - 1], widths[i]))
            setattr(self, f"bn{i}", group_norm(widths[i]))
        self.tp_conv6 = config.conv(2 * g, g)
        self.bn6 = group_norm(g)
        self.tp_conv7 = _dense(g, 1)
        self.sub_G = _AnchorHead(config)
        # Indices i of the tp_conv{i} in G^A that follow an upsampling (as many as the resolution needs).
        self.upsample_before = {2 + i for i in range(config.levels)}

    # -- G^A ---------------------------------------------------------------------------------
    def features(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """G^A: latents (N, latent_dim) -> feature map (N, 2g, S/4, S/4, S/4)."""
        z = self.latent_input(z, labels)
        x = self.fc1(z).view(z.shape[0], 16 * self.config.g_width, 4, 4, 4)
        for i in range(1, 6):
            if i in self.upsample_before:
                x = upsample2(x, self.config.upsample)
            x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"tp_conv{i}")(x)))
        return x

    # -- G^L ---------------------------------------------------------------------------------
    def anchor(self, features: torch.Tensor) -> torch.Tensor:
        """G^L: the low-resolution whole volume (N, 1, S/4, S/4, S/4)."""
        return self.sub_G(features)

    # -- G^H ---------------------------------------------------------------------------------
    def high_res(self, features: torch.Tensor) -> torch.Tensor:
        """G^H on whatever feature map it is given (GroupNorm statistics of that map alone)."""
        mode = self.config.upsample
        x = F.relu(self.bn6(self.tp_conv6(upsample2(features, mode))))
        return torch.tanh(self.tp_conv7(upsample2(x, mode)))

    def slab(self, features: torch.Tensor, start: int) -> torch.Tensor:
        """G^H on the feature slab that covers voxels [start, start + S/8) of the full volume.

        Training-time behaviour: statistics and zero padding of the slab alone.
        ``start`` must be a multiple of 4 (one feature voxel is 4 output voxels).
        """
        self.check_slab_start(start)
        first = start // 4
        return self.high_res(features[:, :, first : first + self.config.slab_thickness // 4])

    def full(self, features: torch.Tensor) -> torch.Tensor:
        """G^H on the whole feature map: the full (N, 1, S, S, S) volume (inference behaviour)."""
        return self.high_res(features)

    def stitched(self, features: torch.Tensor) -> torch.Tensor:
        """The 8 non-overlapping slabs generated independently and concatenated along D.

        What a naive patch-based generator shows; kept to make seams visible.
        """
        t = self.config.slab_thickness
        return torch.cat([self.slab(features, k * t) for k in range(8)], dim=2)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The full volume for latents z (same as ``full(features(z))``)."""
        return self.full(self.features(z, labels))

    # -- helpers -----------------------------------------------------------------------------
    def latent_input(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Check z and append the one-hot class label for conditional models: fc1's input."""
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ConfigError(f"latents must have shape (N, {self.config.latent_dim}), got {tuple(z.shape)}")
        if self.config.num_class == 0:
            if labels is not None:
                raise ConfigError("this model is unconditional; it takes no class labels")
            return z
        if labels is None:
            raise ConfigError(f"this model is conditional ({self.config.num_class} classes): give a class label")
        return torch.cat([z, one_hot(labels, self.config.num_class, z)], dim=1)

    def check_slab_start(self, start: int) -> None:
        """Refuse a slab start that is not a multiple of 4 inside [0, 7S/8]."""
        if start % 4 or not 0 <= start <= self.config.max_slab_start:
            raise ConfigError(
                f"slab start {start} must be a multiple of 4 between 0 and "
                f"{self.config.max_slab_start} for a {self.config.resolution}^3 model"
            )


class _AnchorHead(nn.Module):
    """G^L: three 3x3x3 convolutions at S/4 ending in tanh."""

    def __init__(self, config: HAGANConfig) -> None:
        super().__init__()
        width = config.g_width
        self.tp_conv1 = config.conv(2 * width, width)
        self.bn1 = group_norm(width)
        self.tp_conv2 = config.conv(width, width // 2)
        self.bn2 = group_norm(width // 2)
        self.tp_conv3 = _dense(width // 2, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.tp_conv1(features)))
        x = F.relu(self.bn2(self.tp_conv2(x)))
        return torch.tanh(self.tp_conv3(x))


def one_hot(labels: torch.Tensor, num_class: int, like: torch.Tensor) -> torch.Tensor:
    """Class indices (N,) -> float one-hot (N, num_class) on ``like``'s device and dtype."""
    labels = torch.as_tensor(labels, device=like.device).long().reshape(-1)
    if labels.numel() != like.shape[0]:
        raise ConfigError(f"got {labels.numel()} class labels for a batch of {like.shape[0]}")
    if labels.min() < 0 or labels.max() >= num_class:
        raise ConfigError(f"class labels must lie in 0..{num_class - 1}, got {labels.tolist()}")
    return F.one_hot(labels, num_class).to(like.dtype)


class DiscriminatorOutput(NamedTuple):
    logit: torch.Tensor  # (N, 1): real/fake, the mean of D^H's and D^L's logits
    class_logits: torch.Tensor | None  # (N, num_class) for conditional models, else None


class Discriminator(nn.Module):
    """D^H judges a high-resolution slab together with its crop position; D^L the anchor.

    All layers are spectrally normalised; activations are LeakyReLU(0.2).
    """

    def __init__(self, config: HAGANConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_width
        # D^H: leading stride-2 cubes bring any slab (1, S/8, S, S) to (4d, 4, 32, 32).
        lead = _kept(("conv1", "conv2", "conv3"), config.levels - 1)
        widths = {"conv1": d, "conv2": 2 * d, "conv3": 4 * d}
        in_ch = 1
        for name in lead:  # the first convolution reads the 1-channel slab: always dense
            conv = _dense if in_ch == 1 else config.conv
            setattr(self, name, conv(in_ch, widths[name], 4, 2, 1, spectral_norm=True))
            in_ch = widths[name]
        self._lead = lead
        conv4 = _dense if in_ch == 1 else config.conv
        self.conv4 = conv4(in_ch, 8 * d, (2, 4, 4), (2, 2, 2), (0, 1, 1), spectral_norm=True)
        self.conv5 = config.conv(8 * d, 16 * d, (2, 4, 4), (2, 2, 2), (0, 1, 1), spectral_norm=True)
        self.conv6 = config.conv(16 * d, 32 * d, (1, 4, 4), (1, 2, 2), (0, 1, 1), spectral_norm=True)
        self.conv7 = config.conv(32 * d, 8 * d, (1, 4, 4), 1, 0, spectral_norm=True)
        self.fc1 = SNLinear(8 * d + 1, 4 * d)
        self.fc2 = SNLinear(4 * d, 1)
        if config.num_class:
            self.fc2_class = SNLinear(4 * d, config.num_class)
        self.sub_D = _AnchorDiscriminator(config)

    def forward(self, slab: torch.Tensor, anchor: torch.Tensor, slab_start: int | torch.Tensor) -> DiscriminatorOutput:
        """slab (N, 1, S/8, S, S) starting at voxel ``slab_start``; anchor (N, 1, S/4, S/4, S/4)."""
        x = slab
        for name in (*self._lead, "conv4", "conv5", "conv6", "conv7"):
            x = F.leaky_relu(getattr(self, name)(x), 0.2)
        x = x.flatten(1)
        position = torch.as_tensor(slab_start, dtype=x.dtype, device=x.device)
        position = (position / self.config.max_slab_start).reshape(-1, 1).expand(x.shape[0], 1)
        h = F.leaky_relu(self.fc1(torch.cat([x, position], dim=1)), 0.2)
        logit_h = self.fc2(h)
        low = self.sub_D(anchor)
        logit = (logit_h + low[:, :1]) / 2
        if not self.config.num_class:
            return DiscriminatorOutput(logit, None)
        return DiscriminatorOutput(logit, (self.fc2_class(h) + low[:, 1:]) / 2)


class _AnchorDiscriminator(nn.Module):
    """D^L: stride-2 convolutions from the S/4 anchor down to 4^3, then a 4^3 kernel to 1 + N."""

    def __init__(self, config: HAGANConfig) -> None:
        super().__init__()
        d = config.d_width
        widths = {"conv1": 2 * d, "conv2": 4 * d, "conv3": 8 * d, "conv4": 16 * d}
        self._names = _kept(tuple(widths), config.levels)
        in_ch = 1
        for name in self._names:
            conv = _dense if in_ch == 1 else config.conv
            setattr(self, name, conv(in_ch, widths[name], 4, 2, 1, spectral_norm=True))
            in_ch = widths[name]
        self.conv5 = _dense(in_ch, 1 + config.num_class, 4, 1, 0, spectral_norm=True)

    def forward(self, anchor: torch.Tensor) -> torch.Tensor:
        x = anchor
        for name in self._names:
            x = F.leaky_relu(getattr(self, name)(x), 0.2)
        return self.conv5(x).flatten(1)


class Encoder(nn.Module):
    """E^H: a real slab (N, 1, S/8, S, S) -> its feature slab (N, 2g, S/32, S/4, S/4)."""

    def __init__(self, config: HAGANConfig) -> None:
        super().__init__()
        g = config.g_width
        self.conv1 = nn.Conv3d(1, g, 4, 2, 1)
        self.bn1 = group_norm(g)
        self.conv2 = _dense(g, g)
        self.bn2 = group_norm(g)
        self.conv3 = nn.Conv3d(g, 2 * g, 4, 2, 1)
        self.bn3 = group_norm(2 * g)

    def forward(self, slab: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(slab)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.relu(self.bn3(self.conv3(x)))


class SubEncoder(nn.Module):
    """E^G: a whole-volume feature map (N, 2g, S/4, S/4, S/4) -> latents (N, latent_dim)."""

    def __init__(self, config: HAGANConfig) -> None:
        super().__init__()
        e = config.e_width
        widths = {"conv1": e, "conv2": 2 * e, "conv3": 4 * e, "conv4": 8 * e}
        self._names = _kept(tuple(widths), config.levels)
        in_ch = 2 * config.g_width
        for name in self._names:
            setattr(self, name, nn.Conv3d(in_ch, widths[name], 4, 2, 1))
            setattr(self, "bn" + name[-1], group_norm(widths[name]))
            in_ch = widths[name]
        self.conv5 = nn.Conv3d(in_ch, config.latent_dim, 4, 1, 0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features
        for name in self._names:
            x = F.relu(getattr(self, "bn" + name[-1])(getattr(self, name)(x)))
        return self.conv5(x).flatten(1)


def encode_volume(encoder: Encoder, sub_encoder: SubEncoder, volume: torch.Tensor) -> torch.Tensor:
    """A real volume (N, 1, S, S, S) -> latents, the way HA-GAN trains its encoders.

    E^H runs on the 8 non-overlapping slabs, their feature slabs are joined along D into a
    whole-volume feature map, and E^G maps that to z.
    """
    thickness = volume.shape[2] // 8
    slabs = [encoder(volume[:, :, k * thickness : (k + 1) * thickness]) for k in range(8)]
    return sub_encoder(torch.cat(slabs, dim=2))
