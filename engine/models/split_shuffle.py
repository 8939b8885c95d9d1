"""3D Split&Shuffle-GAN (Liu et al., "Inflating 2D Convolution Weights for Efficient Generation of
3D Medical Images", CMPB 2023): channel shuffle, the Split&Shuffle convolution block and the
family's generator and discriminator, each one class for 2D (the slice model) and 3D.

The paper's body and code are not public: the block types and layer sequence are our reading of
its abstract. Tensors are (N, C, D, H, W) in 3D and (N, C, H, W)
in 2D. A 2D network is the twin of the 3D one on an axial slice: same module names, same channels,
every 3D kernel (kd, kh, kw) becomes its in-plane part (kh, kw); ``engine.models.inflate`` maps
each 2D weight onto its 3D twin.

Block types (k the kernel size; parameters relative to one dense k^3 convolution):

- ``mixed`` (default): the input channels split into two halves; one half goes through a
  k x k x k convolution, the other through a 1 x k x k (in-plane) one; the outputs are
  concatenated and shuffled with g = 2. Ratio (k^3 + k^2) / (4 k^3): 1/3 for k = 3.
  Its exact 2D twin is two k x k convolutions on the two halves (a grouped convolution with two
  groups) and the same shuffle: inflation turns the first into the k^3 branch (along depth, by
  the chosen strategy) and copies the second into the in-plane branch as it is.
- ``planes``: three channel groups with convolutions in the three orthogonal planes
  (k x k x 1, k x 1 x k, 1 x k x k), shuffle with g = 3; about 1/(3k). 2D twin: kernels
  (k x 1), (1 x k) and (k x k); the first two are inflated along depth, the third is copied.
- ``grouped``: ``groups`` channel groups of k^3 convolutions, shuffle with g = groups; 1/groups.
- ``dense``: one ordinary convolution (the baseline).

Odd channel counts split as evenly as possible (the first groups take one channel more) and the
shuffle interleaves such uneven groups the same way. Along an axis where a branch's kernel is 1
but the block's is k (the in-plane branch's depth axis), the branch reads the middle tap of the
block's window (tap k // 2), so its output has the block's size and lines up with the voxels a
``center``-inflated kernel reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .config_dict import DictConfig
from .layers import SNConv2d, SNConv3d, upsample2


class BlockType(str, Enum):
    """Which convolution a Split&Shuffle block uses in place of a dense k^3 one."""

    MIXED = "mixed"
    PLANES = "planes"
    GROUPED = "grouped"
    DENSE = "dense"


BLOCK_TYPES = tuple(t.value for t in BlockType)
SUPPORTED_RESOLUTIONS = (16, 32, 64, 128, 256)
_CONV = {(2, False): nn.Conv2d, (3, False): nn.Conv3d, (2, True): SNConv2d, (3, True): SNConv3d}


def check_block_type(name: str) -> str:
    """``name`` if it is a block type, else a one-line ConfigError."""
    if name not in BLOCK_TYPES:
        raise ConfigError(f"unknown block type '{name}'; choose one of {', '.join(BLOCK_TYPES)}")
    return name


# -- channel shuffle ------------------------------------------------------------------------------


def even_split(total: int, parts: int) -> list[int]:
    """Sizes of ``parts`` groups of ``total`` channels, as even as possible, larger groups first."""
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


def shuffle_order(channels: int, groups: int) -> list[int]:
    """Source channel of every output channel of ``channel_shuffle``: the groups read round-robin."""
    sizes = even_split(channels, groups)
    starts = [sum(sizes[:g]) for g in range(groups)]
    return [starts[g] + j for j in range(sizes[0]) for g in range(groups) if j < sizes[g]]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle of (N, C, ...): view C as (groups, C / groups), transpose, flatten.

    Parameter-free; uneven groups (C not divisible) are interleaved round-robin the same way.
    """
    channels = x.shape[1]
    if groups == 1:
        return x
    if channels % groups == 0:
        return x.unflatten(1, (groups, channels // groups)).transpose(1, 2).flatten(1, 2)
    return x[:, shuffle_order(channels, groups)]


def channel_unshuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """The inverse of ``channel_shuffle(x, groups)``."""
    channels = x.shape[1]
    if groups == 1:
        return x
    if channels % groups == 0:
        return x.unflatten(1, (channels // groups, groups)).transpose(1, 2).flatten(1, 2)
    inverse = [0] * channels
    for position, source in enumerate(shuffle_order(channels, groups)):
        inverse[source] = position
    return x[:, inverse]


# -- the block ------------------------------------------------------------------------------------


def _as_tuple(value: int | tuple[int, ...], dims: int) -> tuple[int, ...]:
    values = tuple(value) if isinstance(value, tuple | list) else (int(value),) * dims
    if len(values) != dims:
        raise ConfigError(f"expected {dims} values, got {values}")
    return values


def branch_kernels(block: str, kernel: tuple[int, ...], groups: int = 4) -> list[tuple[int, ...]]:
    """Kernel of every branch of a block whose dense kernel is ``kernel`` (2D: (kh, kw); 3D: (kd, kh, kw))."""
    kernel3 = kernel if len(kernel) == 3 else (kernel[0], *kernel)  # a 2D block is the slice of a cubic one
    kd, kh, kw = kernel3
    kernels = {
        "dense": [kernel3],
        "grouped": [kernel3] * groups,
        "mixed": [kernel3, (1, kh, kw)],
        "planes": [(kd, kh, 1), (kd, 1, kw), (1, kh, kw)],
    }[check_block_type(block)]
    return kernels if len(kernel) == 3 else [k[1:] for k in kernels]


class SplitShuffleConv(nn.Module):
    """A convolution replaced by channel-split branches and a channel shuffle (see the module docstring).

    Behaves like ``ConvNd(in_channels, out_channels, kernel_size, stride, padding)``: same output
    shape. ``dims`` is 2 (the slice twin) or 3. ``spectral_norm`` normalises every branch by its
    own largest singular value (so the block's is at most 1).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        *,
        dims: int = 3,
        block: str = "mixed",
        groups: int = 4,
        spectral_norm: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ConfigError(f"dims must be 2 or 3, got {dims}")
        self.block, self.dims = check_block_type(block), dims
        self.kernel_size, self.stride = _as_tuple(kernel_size, dims), _as_tuple(stride, dims)
        self.padding = _as_tuple(padding, dims)
        kernels = branch_kernels(block, self.kernel_size, groups)
        if min(in_channels, out_channels) < len(kernels):
            raise ConfigError(
                f"a '{block}' block has {len(kernels)} branches: it needs at least {len(kernels)} input and "
                f"output channels, got {in_channels} -> {out_channels}"
            )
        self.in_splits, self.out_splits = even_split(in_channels, len(kernels)), even_split(out_channels, len(kernels))
        conv = _CONV[dims, spectral_norm]
        branches, self.taps = [], []
        for kernel, c_in, c_out in zip(kernels, self.in_splits, self.out_splits):
            # axes where this branch's kernel is 1 but the block's is not read the window's middle tap
            taps = [(axis, self.kernel_size[axis] // 2 - self.padding[axis]) for axis in range(dims)]
            taps = [(axis, start) for axis, start in taps if kernel[axis] < self.kernel_size[axis]]
            padding = tuple(0 if kernel[a] < self.kernel_size[a] else self.padding[a] for a in range(dims))
            branches.append(conv(c_in, c_out, kernel, self.stride, padding, bias=bias))
            self.taps.append(taps)
        self.branches = nn.ModuleList(branches)

    def output_size(self, size: tuple[int, ...]) -> tuple[int, ...]:
        """Spatial output size for a spatial input size (that of the dense convolution)."""
        k, s, p = self.kernel_size, self.stride, self.padding
        return tuple((n + 2 * p[a] - k[a]) // s[a] + 1 for a, n in enumerate(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = x.split(self.in_splits, dim=1) if len(self.branches) > 1 else (x,)
        size = self.output_size(tuple(x.shape[2:]))
        outputs = [self._branch(i, part, size) for i, part in enumerate(parts)]
        return channel_shuffle(torch.cat(outputs, dim=1), len(self.branches)) if len(outputs) > 1 else outputs[0]

    def _branch(self, index: int, x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        for axis, start in self.taps[index]:
            # input positions start, start + s, ...: one per output voxel, zeros outside the input
            dim, needed = 2 + axis, (size[axis] - 1) * self.stride[axis] + 1
            before, after = max(0, -start), max(0, start + needed - x.shape[2 + axis])
            if before or after:
                x = F.pad(x, [0, 0] * (x.ndim - 1 - dim) + [before, after])
            x = x.narrow(dim, start + before, needed)
        return self.branches[index](x)


def make_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, ...],
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] = 0,
    *,
    block: str = "dense",
    **options,
) -> nn.Module:
    """A plain (spectrally normalised) convolution for ``dense``, else a SplitShuffleConv.

    ``options`` are SplitShuffleConv's (dims, groups, spectral_norm, bias). Dense layers stay plain
    convolutions so that their state-dict keys are those of an ordinary network (HA-GAN's official
    layout).
    """
    if check_block_type(block) != "dense":
        return SplitShuffleConv(in_channels, out_channels, kernel_size, stride, padding, block=block, **options)
    conv = _CONV[options.get("dims", 3), options.get("spectral_norm", False)]
    return conv(in_channels, out_channels, kernel_size, stride, padding, bias=options.get("bias", True))


# -- the model family -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitShuffleConfig(DictConfig):
    """Everything needed to build a Split&Shuffle-GAN; stored in every model card.

    Widths: the generator has ``g_width`` channels at full resolution, twice as many per level
    toward its 4^d map, at most ``max_width``; the discriminator ``d_width`` after its first
    convolution, doubling per level up to ``max_width``. ``dims`` 2 is the slice model (stage
    2d), 3 the volume model. Defaults are our choice (the paper's widths are not public): with
    ``mixed`` blocks they give G + D at most 55% of the dense baseline's parameters at 64^3 and
    128^3, the FC layer included (benchmarks/params.py).
    """

    resolution: int = 128
    dims: int = 3
    latent_dim: int = 128
    g_width: int = 32
    d_width: int = 32
    max_width: int = 256
    blocks: str = "mixed"
    block_groups: int = 4
    spectral_norm: bool = True  # in the discriminator

    def __post_init__(self) -> None:
        if self.resolution not in SUPPORTED_RESOLUTIONS:
            raise ConfigError(
                f"resolution {self.resolution} is not supported; choose one of "
                + ", ".join(map(str, SUPPORTED_RESOLUTIONS))
            )
        if self.dims not in (2, 3):
            raise ConfigError(f"dims must be 2 (slice model) or 3 (volume model), got {self.dims}")
        if self.latent_dim < 1:
            raise ConfigError(f"latent_dim must be positive, got {self.latent_dim}")
        check_block_type(self.blocks)
        if self.blocks == "grouped" and self.block_groups < 2:
            raise ConfigError(f"grouped blocks need at least 2 groups, got {self.block_groups}")
        branches = len(branch_kernels(self.blocks, (3, 3, 3), self.block_groups))
        for name in ("g_width", "d_width"):
            if getattr(self, name) < branches:
                raise ConfigError(f"{name} must be at least {branches} for '{self.blocks}' blocks")
        if self.max_width < max(self.g_width, self.d_width):
            raise ConfigError(f"max_width {self.max_width} is below g_width or d_width")

    @property
    def levels(self) -> int:
        """Upsampling steps from the 4^d map to S: log2(S) - 2."""
        return int(math.log2(self.resolution)) - 2

    @property
    def num_class(self) -> int:
        """The family is unconditional (code shared with HA-GAN reads this)."""
        return 0

    def generator_widths(self) -> list[int]:
        """Channels of the 4^d map, then after every block (the last one at full resolution)."""
        return [min(self.max_width, self.g_width * 2 ** (self.levels - i)) for i in range(self.levels + 1)]

    def discriminator_widths(self) -> list[int]:
        """Channels after the first convolution (S/2), then after every strided block (down to 4)."""
        return [min(self.max_width, self.d_width * 2**i) for i in range(self.levels)]

    def image_shape(self) -> tuple[int, ...]:
        """(1, S, S) or (1, S, S, S): one sample, without the batch axis."""
        return (1,) + (self.resolution,) * self.dims


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 8 groups where the width allows (batch-independent, so batch size 1 works)."""
    return nn.GroupNorm(math.gcd(8, channels), channels)


class SplitShuffleGenerator(nn.Module):
    """latent -> FC -> 4^d map -> [nearest upsample x2, block, GroupNorm, ReLU] x levels -> dense conv -> tanh.

    Block convolutions have no bias (GroupNorm follows). The last convolution (to 1 channel)
    stays dense.
    """

    def __init__(self, config: SplitShuffleConfig) -> None:
        super().__init__()
        self.config = config
        widths, dims = config.generator_widths(), config.dims
        self.fc = nn.Linear(config.latent_dim, widths[0] * 4**dims)
        blocks = [
            make_conv(a, b, 3, 1, 1, dims=dims, block=config.blocks, groups=config.block_groups, bias=False)
            for a, b in zip(widths, widths[1:])
        ]
        self.blocks = nn.ModuleList(blocks)
        self.norms = nn.ModuleList(_norm(b) for b in widths[1:])
        self.out = make_conv(widths[-1], 1, 3, 1, 1, dims=dims)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latents (N, latent_dim) -> images (N, 1, S, S) or volumes (N, 1, S, S, S) in [-1, 1]."""
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ConfigError(f"latents must have shape (N, {self.config.latent_dim}), got {tuple(z.shape)}")
        if labels is not None:
            raise ConfigError("split-shuffle models are unconditional; they take no class labels")
        x = self.fc(z).view(z.shape[0], -1, *(4,) * self.config.dims)
        for block, norm in zip(self.blocks, self.norms):
            x = F.relu(norm(block(upsample2(x))))
        return torch.tanh(self.out(x))


class SplitShuffleDiscriminator(nn.Module):
    """Dense stride-2 conv from 1 channel, stride-2 blocks down to 4^d, a dense 4^d conv -> logit (N, 1).

    Spectral normalisation on every layer (``config.spectral_norm``), LeakyReLU(0.2), no norms.
    """

    def __init__(self, config: SplitShuffleConfig) -> None:
        super().__init__()
        self.config = config
        widths, dims, sn = config.discriminator_widths(), config.dims, config.spectral_norm
        self.first = make_conv(1, widths[0], 4, 2, 1, dims=dims, spectral_norm=sn)
        blocks = [
            make_conv(a, b, 4, 2, 1, dims=dims, block=config.blocks, groups=config.block_groups, spectral_norm=sn)
            for a, b in zip(widths, widths[1:])
        ]
        self.blocks = nn.ModuleList(blocks)
        self.logit = make_conv(widths[-1], 1, 4, 1, 0, dims=dims, spectral_norm=sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = self.config.image_shape()
        if tuple(x.shape[1:]) != expected:
            raise ConfigError(f"the discriminator takes (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        x = F.leaky_relu(self.first(x), 0.2)
        for block in self.blocks:
            x = F.leaky_relu(block(x), 0.2)
        return self.logit(x).flatten(1)


# -- parameter counts -----------------------------------------------------------------------------


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters (weights, biases, norm scales); spectral-norm buffers are not counted."""
    return sum(p.numel() for p in module.parameters())


def replaced_parameters(dense: nn.Module, blocked: nn.Module) -> tuple[int, int]:
    """Parameters of the convolutions ``blocked`` replaces with Split&Shuffle blocks: (dense, blocked).

    Both networks must be built from the same settings except the block type.
    """
    names = [name for name, m in blocked.named_modules() if isinstance(m, SplitShuffleConv)]
    dense_modules = dict(dense.named_modules())
    before = sum(count_parameters(dense_modules[name]) for name in names)
    after = sum(count_parameters(blocked.get_submodule(name)) for name in names)
    return before, after
