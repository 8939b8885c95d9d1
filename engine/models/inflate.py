"""Inflation: a 2D model's weights as the initialisation of its 3D twin (Liu et al. 2023).

A 2D kernel W2 (O, I, kh, kw) becomes a 3D kernel (O, I, kd, kh, kw) by one of the strategies:

- ``center``: the middle depth tap gets W2, the others zero: at the start the 3D convolution is
  the 2D one applied slice by slice. For even kd the "middle" tap is kd // 2 (the later of the two),
  the same voxel the in-plane branch of a Split&Shuffle block reads.
- ``average``: every tap gets W2 / kd: on a volume constant along depth the 3D response equals the
  2D one (away from the depth borders, where zero padding enters).
- ``repeat``: every tap gets W2: kd times the 2D response on such a volume.
- ``random``: nothing is copied; the 3D model keeps its fresh initialisation (the baseline).

Kernels whose depth is 1 (the in-plane branches of ``mixed`` and ``planes`` blocks) take W2 exactly
under every strategy but ``random``; so do biases and normalisation parameters. Spectral
normalisation: the power-iteration vector ``u0`` (and the last estimate ``sv0``) are copied as they
are; centre inflation leaves the largest singular value unchanged, average inflation divides it by
sqrt(kd), so after normalisation each depth tap is W2 / (sigma sqrt(kd)).

The fully connected layer of the generator ends in a 4x4 map in 2D but a 4x4x4 map in 3D, so it
cannot be inflated one to one. ``fc="tile"`` (default) repeats the 2D output along depth (each of
the 4 depth rows gets the 2D rows; scaled by 1/4 under ``average``, like a 4-tap kernel: the FC is a
4^d "transposed convolution" of a 1-voxel input), ``fc="random"`` keeps its fresh initialisation.

These rules are our reading of the paper's abstract (its body and code are not public).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn

from ..errors import ConfigError
from .layers import SNConv2d, SNConv3d
from .split_shuffle import SplitShuffleConv

MAP_EDGE = 4  # both generators start from a 4^d map


class Strategy(str, Enum):
    CENTER = "center"
    AVERAGE = "average"
    REPEAT = "repeat"
    RANDOM = "random"


STRATEGIES = tuple(s.value for s in Strategy)
FC_INITS = ("tile", "random")


def check_strategy(strategy: str, fc: str = "tile") -> str:
    """``strategy`` if it and ``fc`` are known, else a one-line ConfigError."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown inflation '{strategy}'; choose one of {', '.join(STRATEGIES)}")
    if fc not in FC_INITS:
        raise ConfigError(f"unknown FC initialisation '{fc}'; choose one of {', '.join(FC_INITS)}")
    return strategy


def inflate_kernel(weight_2d: torch.Tensor, depth: int, strategy: str) -> torch.Tensor:
    """(O, I, kh, kw) -> (O, I, depth, kh, kw) by ``strategy`` (``random`` is not a kernel rule)."""
    if depth == 1:
        return weight_2d.unsqueeze(2).clone()  # an in-plane kernel: the 2D weights exactly
    if strategy == "center":
        weight = weight_2d.new_zeros(weight_2d.shape[:2] + (depth,) + weight_2d.shape[2:])
        weight[:, :, depth // 2] = weight_2d
        return weight
    if strategy not in ("average", "repeat"):
        raise ConfigError(f"no kernel rule for inflation '{strategy}'")
    tiled = weight_2d.unsqueeze(2).expand(-1, -1, depth, *weight_2d.shape[2:]).clone()
    return tiled / depth if strategy == "average" else tiled


def tile_fc(value_2d: torch.Tensor, strategy: str) -> torch.Tensor:
    """An FC weight (C*16, L) or bias (C*16,) ending in a 4x4 map -> (C*64, ...) ending in 4x4x4.

    Output row c*16 + i of the 2D layer becomes rows c*64 + k*16 + i, k = 0..3, of the 3D one.
    """
    rows, rest = value_2d.shape[0], tuple(value_2d.shape[1:])
    per_channel = MAP_EDGE**2
    tiled = value_2d.reshape(rows // per_channel, 1, per_channel, *rest).expand(-1, MAP_EDGE, -1, *rest)
    tiled = tiled.reshape(rows * MAP_EDGE, *rest)
    return tiled / MAP_EDGE if strategy == "average" else tiled.clone()


def _rule(shape_2d: tuple[int, ...], shape_3d: tuple[int, ...]) -> str | None:
    """How a 3D tensor follows from its 2D twin: "kernel", "copy", "fc" or None (they do not correspond)."""
    if len(shape_3d) == 5 and len(shape_2d) == 4 and shape_3d[:2] == shape_2d[:2] and shape_3d[3:] == shape_2d[2:]:
        return "kernel"
    if shape_3d == shape_2d:
        return "copy"
    is_fc = len(shape_3d) in (1, 2) and len(shape_2d) == len(shape_3d) and shape_3d[1:] == shape_2d[1:]
    if is_fc and shape_3d[0] == MAP_EDGE * shape_2d[0] and shape_2d[0] % MAP_EDGE**2 == 0:
        return "fc"
    return None


def inflate_tensor(key: str, value_2d: torch.Tensor, target: torch.Tensor, strategy: str, fc: str) -> torch.Tensor:
    """The 3D tensor ``target`` (same name as ``value_2d``) initialised from its 2D twin."""
    rule = _rule(tuple(value_2d.shape), tuple(target.shape))
    if rule is None:
        raise ConfigError(f"'{key}': the 2D shape {tuple(value_2d.shape)} has no 3D counterpart {tuple(target.shape)}")
    if strategy == "random" or (rule == "fc" and fc == "random"):
        return target
    value = value_2d.detach().to(target.device, target.dtype)
    if rule == "kernel":
        return inflate_kernel(value, target.shape[2], strategy)
    return tile_fc(value, strategy) if rule == "fc" else value.clone()


def inflate_state_dict(
    state_2d: dict[str, torch.Tensor], model_3d: nn.Module, strategy: str = "center", fc: str = "tile"
) -> dict[str, torch.Tensor]:
    """The state dict of ``model_3d`` initialised from the state dict of its 2D twin (same keys)."""
    check_strategy(strategy, fc)
    target = model_3d.state_dict()
    missing = [key for key in target if key not in state_2d]
    extra = [key for key in state_2d if key not in target]
    if missing:
        raise ConfigError(f"the 2D model is not this network's twin: it has no '{missing[0]}'")
    if extra:
        raise ConfigError(f"the 2D model is not this network's twin: '{extra[0]}' has no 3D counterpart")
    return {key: inflate_tensor(key, state_2d[key], value, strategy, fc) for key, value in target.items()}


def inflate(model_2d: nn.Module, model_3d: nn.Module, strategy: str = "center", fc: str = "tile") -> nn.Module:
    """Initialise ``model_3d`` in place from its 2D twin ``model_2d``; returns ``model_3d``."""
    model_3d.load_state_dict(inflate_state_dict(model_2d.state_dict(), model_3d, strategy, fc))
    return model_3d


# -- into a network of another layout (HA-GAN) ----------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    """An inflatable layer: the FC, a convolution or a Split&Shuffle block, with where it sits."""

    name: str
    module: nn.Module
    signature: tuple  # what must be equal for a 2D layer to inflate into a 3D one
    position: float  # relative depth in its (sub-)network, 0 (input) .. 1 (output)
    norm: nn.GroupNorm | None  # the GroupNorm that follows it, if any


def _signature(module: nn.Module) -> tuple | None:
    """Kind, channels and in-plane kernel, stride and padding (2D or 3D alike); None if not a layer."""
    if isinstance(module, nn.Linear):
        return ("fc", module.in_features)
    if isinstance(module, SplitShuffleConv):
        channels = (sum(module.in_splits), sum(module.out_splits), len(module.branches))
        kind, geometry = module.block, (module.kernel_size, module.stride, module.padding)
    elif isinstance(module, nn.Conv2d | nn.Conv3d):
        channels = (module.in_channels, module.out_channels, 1)
        kind, geometry = "dense", (module.kernel_size, module.stride, module.padding)
    else:
        return None
    in_plane = tuple(tuple(values[-2:]) for values in geometry)
    spectral = isinstance(module, SNConv2d | SNConv3d) or any(
        isinstance(b, SNConv2d | SNConv3d) for b in getattr(module, "branches", ())
    )
    return (kind, *channels, *in_plane, spectral)


def _layers(net: nn.Module) -> list[_Layer]:
    """The inflatable layers of a network, positioned within their parent module.

    HA-GAN's G^L (``sub_G``) and D^L (``sub_D``) are chains of their own. The norm after a layer is
    ``norms.i`` after ``blocks.i`` (Split&Shuffle-GAN) or ``bnN`` after ``tp_convN`` (HA-GAN).
    """
    found, inside = [], ()
    modules = dict(net.named_modules())
    for name, module in net.named_modules():
        if inside and name.startswith(inside):
            continue  # the branches of a block are part of the block
        signature = _signature(module)
        if signature is None:
            continue
        inside = name + "." if isinstance(module, SplitShuffleConv) else ()
        parent = name.rpartition(".")[0] if not name.startswith("blocks.") else ""
        norm = modules.get(name.replace("blocks.", "norms.").replace("tp_conv", "bn"))
        found.append((parent, name, module, signature, norm if isinstance(norm, nn.GroupNorm) else None))
    layers = []
    for parent in dict.fromkeys(p for p, *_ in found):
        chain = [entry for entry in found if entry[0] == parent]
        for index, (_, name, module, signature, norm) in enumerate(chain):
            layers.append(_Layer(name, module, signature, index / max(1, len(chain) - 1), norm))
    return layers


def _matches(layer_2d: _Layer, layer_3d: _Layer) -> bool:
    if layer_2d.signature != layer_3d.signature:
        return False
    if layer_3d.signature[0] == "fc":
        rows_2d, rows_3d = layer_2d.module.out_features, layer_3d.module.out_features
        return rows_3d == MAP_EDGE * rows_2d and rows_2d % MAP_EDGE**2 == 0
    keys_2d, keys_3d = set(layer_2d.module.state_dict()), set(layer_3d.module.state_dict())
    return keys_2d <= keys_3d and all(key.endswith("bias") for key in keys_3d - keys_2d)


def inflate_matching(
    nets_2d: dict[str, nn.Module], nets_3d: dict[str, nn.Module], strategy: str = "center", fc: str = "tile"
) -> list[tuple[str, str]]:
    """Inflate 2D layers into the 3D layers of another layout where they correspond; returns the pairs.

    ``nets_2d`` / ``nets_3d`` name networks alike ({"G": ..., "D": ...}); layers pair up only within
    the same name. A 2D layer inflates into a 3D layer when both are the same kind (FC, dense
    convolution, or the same Split&Shuffle block type) with the same channel counts and the same
    in-plane kernel, stride and padding (an FC: same input size, a 4x4 versus 4x4x4 map). Among
    several such 2D layers the one at the closest relative depth is used. A 2D layer without bias
    gives a zero bias; a GroupNorm after both layers is copied too. Everything else keeps its fresh
    initialisation (and so does everything under ``random``). Returns ("G.tp_conv4", "G.blocks.0")
    pairs, 3D name first.
    """
    check_strategy(strategy, fc)
    pairs = []
    for key, net_3d in nets_3d.items():
        candidates = _layers(nets_2d[key]) if key in nets_2d else []
        for layer in _layers(net_3d):
            fitting = [c for c in candidates if _matches(c, layer)]
            if not fitting:
                continue
            source = min(fitting, key=lambda c: abs(c.position - layer.position))
            pairs.append((f"{key}.{layer.name}", f"{key}.{source.name}"))
            if strategy != "random":
                _inflate_layer(source, layer, strategy, fc)
    return pairs


@torch.no_grad()
def _inflate_layer(source: _Layer, target: _Layer, strategy: str, fc: str) -> None:
    state_2d = source.module.state_dict()
    for key, value in target.module.state_dict().items():
        if key not in state_2d:  # a bias the 2D layer does not have: zero, which is the same layer
            state_2d[key] = torch.zeros_like(value)
    target.module.load_state_dict(inflate_state_dict(state_2d, target.module, strategy, fc))
    if source.norm is not None and target.norm is not None and source.norm.weight.shape == target.norm.weight.shape:
        target.norm.load_state_dict(source.norm.state_dict())
