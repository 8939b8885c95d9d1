"""Turning latents into volumes: the parts of the hierarchy, as tensors or as Volumes.

By default every part is computed by ``FastGenerator``: the same arithmetic as the networks'
straightforward forward pass, but with sub-pixel convolutions instead of upsample-then-convolve
and GroupNorm statistics accumulated in chunks (see ``engine.subpixel``). The output equals the
straightforward pass to float32 rounding (no tiling, no seams) at a fraction of the time and
memory. ``reference=True`` runs the straightforward pass for comparison.

Split&Shuffle-GAN models (``model.hierarchical`` False) have one part, the full volume, made by
their generator's own forward pass; HA-GAN models with Split&Shuffle blocks also run the
straightforward pass (``FastGenerator`` falls back to it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .errors import ConfigError
from .latent import lerp, seed_to_z, slerp, truncate
from .model import AnyModel, SplitShuffleModel
from .models.hagan import Generator
from .subpixel import conv3d_chunked, group_norm_relu_, phase_kernels, upsample_conv3d
from .validation import MAX_FRAMES
from .volume import RAW, Volume, generated_affine

PARTS = ("full", "anchor", "slab", "stitched")
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEFAULT_BUDGET_MB = 256


class FastGenerator:
    """``features`` / ``anchor`` / ``slab`` / ``full`` / ``stitched`` of a Generator, computed lean.

    ``budget_mb`` bounds the temporaries of each convolution (the chunk thickness along D is
    chosen from it); ``chunk_rows`` fixes that thickness instead. The result depends on neither.

    The sub-pixel kernels need dense 3x3x3 convolutions: for a generator with Split&Shuffle
    blocks (``config.blocks`` not "dense") every method simply runs the generator's own
    straightforward forward pass, in float32.
    """

    def __init__(
        self,
        generator: Generator,
        budget_mb: float = DEFAULT_BUDGET_MB,
        precision: str = "fp32",
        chunk_rows: int | None = None,
    ):
        check_options(budget_mb, precision, next(generator.parameters()).device)
        self.subpixel = generator.config.blocks == "dense"
        self.generator = generator
        self.config = generator.config
        self.budget = int(budget_mb * (1 << 20))
        self.rows = chunk_rows
        self.dtype = PRECISIONS[precision]
        self._upsampled = {f"tp_conv{i}" for i in generator.upsample_before} | {"tp_conv6", "tp_conv7"}

    @torch.inference_mode()
    def features(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        g = self.generator
        if not self.subpixel:
            return g.features(z, labels)
        x = g.fc1(g.latent_input(z, labels)).view(z.shape[0], 16 * self.config.g_width, 4, 4, 4).to(self.dtype)
        for i in range(1, 6):
            x = self._conv(f"tp_conv{i}", x)
            self._norm_relu(getattr(g, f"bn{i}"), x)
        return x

    @torch.inference_mode()
    def anchor(self, features: torch.Tensor) -> torch.Tensor:
        """G^L works at S/4 without upsampling: the features were the expensive part."""
        return self.generator.anchor(features.float())

    @torch.inference_mode()
    def high_res(self, features: torch.Tensor) -> torch.Tensor:
        g = self.generator
        if not self.subpixel:
            return g.high_res(features.float())
        # G^H's intermediate (g channels at S/2) is made with a zero border, so the last
        # convolution reads it in place; the 1-channel S^3 output is the only full-size tensor.
        x = upsample_conv3d(
            features.to(self.dtype), *self._phases("tp_conv6"), self.budget, self.rows, output_bordered=True
        )
        self._norm_relu(g.bn6, x, bordered=True)
        x = upsample_conv3d(x, *self._phases("tp_conv7"), self.budget, self.rows, input_bordered=True)
        return x.tanh_().float()

    def slab(self, features: torch.Tensor, start: int) -> torch.Tensor:
        self.generator.check_slab_start(start)
        first = start // 4
        return self.high_res(features[:, :, first : first + self.config.slab_thickness // 4])

    def full(self, features: torch.Tensor) -> torch.Tensor:
        return self.high_res(features)

    def stitched(self, features: torch.Tensor) -> torch.Tensor:
        t = self.config.slab_thickness
        return torch.cat([self.slab(features, k * t) for k in range(8)], dim=2)

    def _conv(self, name: str, x: torch.Tensor) -> torch.Tensor:
        conv = self.generator.get_submodule(name)
        weight, bias = conv.weight.to(self.dtype), conv.bias.to(self.dtype)
        if name not in self._upsampled:
            return conv3d_chunked(x, weight, bias, self.budget, self.rows)
        if x[0, 0].numel() <= 64:
            # a 4^3 input: plain upsampling is tiny, and cheaper than deriving phase kernels
            return F.conv3d(F.interpolate(x, scale_factor=2), weight, bias, padding=1)
        return upsample_conv3d(x, *self._phases(name), self.budget, self.rows)

    def _phases(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Phase kernels and bias of an upsampling convolution (derived per call, never stored)."""
        conv = self.generator.get_submodule(name)
        return phase_kernels(conv.weight.to(self.dtype)), conv.bias.to(self.dtype)

    def _norm_relu(self, norm: torch.nn.GroupNorm, x: torch.Tensor, bordered: bool = False) -> None:
        group_norm_relu_(x, norm.num_groups, norm.weight, norm.bias, norm.eps, self.rows or 16, bordered)


def check_options(budget_mb: float, precision: str, device: torch.device) -> None:
    """Refuse generation settings that cannot work, before any work."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")
    if precision != "fp32" and device.type == "cpu":
        raise ConfigError(f"{precision} is for GPUs; use fp32 on the CPU")
    if budget_mb <= 0:
        raise ConfigError(f"memory budget must be positive, got {budget_mb} MB")


def check_part(model: AnyModel, part: str) -> None:
    """Refuse a part the model cannot make: unknown parts, hierarchy parts of one-piece models, 2D models."""
    if part not in PARTS:
        raise ConfigError(f"unknown part '{part}'; choose one of {', '.join(PARTS)}")
    if model.hierarchical:
        return
    if part != "full":
        raise ConfigError(
            f"split-shuffle models have no anchor or slabs: their generator makes the whole volume at once "
            f"(part 'full'), not '{part}'"
        )
    if model.config.dims == 2:
        raise ConfigError(
            f"'{model.card.name or 'this model'}' is a 2D slice model (split-shuffle stage 2d): it makes single "
            "slices, not volumes; inflate it into a 3D model with engine train --stage 3d --init-from"
        )


def generate_part(
    model: AnyModel,
    z: torch.Tensor,
    part: str = "full",
    slab_start: int = 0,
    labels: torch.Tensor | None = None,
    reference: bool = False,
    budget_mb: float = DEFAULT_BUDGET_MB,
    precision: str = "fp32",
) -> torch.Tensor:
    """Latents (N, latent_dim) -> one part of the hierarchy, (N, 1, D, H, W) float32 in [-1, 1]."""
    check_part(model, part)
    if not model.hierarchical:
        return _generate_whole(model, z, labels, budget_mb, precision)
    g = model.generator
    if part == "slab":
        g.check_slab_start(slab_start)  # fail before the expensive feature pass
    runner = g if reference else FastGenerator(g, budget_mb, precision)
    with torch.inference_mode():
        features = runner.features(z.to(model.device), None if labels is None else labels.to(model.device))
        if part == "anchor":
            return runner.anchor(features)
        if part == "slab":
            return runner.slab(features, slab_start)
        if part == "stitched":
            return runner.stitched(features)
        return runner.full(features)


def _generate_whole(model: SplitShuffleModel, z, labels, budget_mb: float, precision: str) -> torch.Tensor:
    """A one-piece generator's volumes (its own forward pass; autocast for bf16/fp16 on a GPU)."""
    device = model.device
    check_options(budget_mb, precision, device)
    dtype = PRECISIONS[precision]
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        return model.generator(z.to(device), None if labels is None else labels.to(device)).float()


@dataclass(frozen=True)
class SampleRequest:
    """What to generate for one latent; ``physical`` maps values to the model's units (e.g. HU).

    The latent is the seed's (``seed_to_z``) unless ``latent`` (1, latent_dim) is given, e.g. a
    point on an interpolation path; ``origin`` then says where it came from, for provenance.
    """

    seed: int | None
    part: str = "full"
    slab_start: int = 0
    truncation: float = 1.0
    label: int | None = None
    physical: bool = True
    latent: torch.Tensor | None = field(default=None, compare=False)
    origin: str = ""

    def z(self, latent_dim: int) -> torch.Tensor:
        if self.latent is None and self.seed is None:
            raise ConfigError("a sample request needs a seed or a latent")
        z = seed_to_z(self.seed, latent_dim) if self.latent is None else self.latent.reshape(1, -1).cpu()
        return truncate(z, self.truncation)


@dataclass(frozen=True)
class GenerationOptions:
    """How to compute, never what: every choice gives the same volume (to float precision)."""

    reference: bool = False
    budget_mb: float = DEFAULT_BUDGET_MB
    precision: str = "fp32"
    batch_size: int = 1


def sample_volume(model: AnyModel, request: SampleRequest, options: GenerationOptions | None = None) -> Volume:
    """Generate one part for one seed as a Volume with geometry, units and provenance."""
    return next(sample_volumes(model, [request], options))


def sample_volumes(
    model: AnyModel, requests: list[SampleRequest], options: GenerationOptions | None = None
) -> Iterator[Volume]:
    """Volumes for many requests, several latents per forward pass where they share part and label."""
    options = options or GenerationOptions()
    if options.batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {options.batch_size}")
    latent_dim = model.card.config.latent_dim
    batch: list[SampleRequest] = []
    for request in [*requests, None]:
        same_kind = batch and request is not None and _batch_key(request) == _batch_key(batch[0])
        if batch and (request is None or not same_kind or len(batch) == options.batch_size):
            z = torch.cat([r.z(latent_dim) for r in batch])
            first = batch[0]
            labels = None if first.label is None else torch.full((len(batch),), first.label)
            tensors = generate_part(
                model, z, first.part, first.slab_start, labels, options.reference, options.budget_mb, options.precision
            )
            for r, tensor in zip(batch, tensors):
                yield to_volume(model, r, tensor)
            batch = []
        if request is not None:
            batch.append(request)


def auto_batch_size(model: AnyModel, part: str, count: int, options: GenerationOptions) -> int:
    """One latent at a time on the CPU (no gain from batching); on a GPU what fits in half its free memory."""
    device = model.device
    if device.type != "cuda" or count <= 1:
        return 1
    c = model.config
    if not model.hierarchical or c.blocks != "dense":
        # the straightforward pass: the upsampled input, block output and norm output at full size
        per_latent = c.resolution**3 * (1 + 3 * c.g_width) * 4
    else:
        voxels = {"anchor": c.feature_size**3, "slab": c.slab_thickness * c.resolution**2}.get(part, c.resolution**3)
        # per latent: the output, G^H's intermediate (g channels at 1/8 of the voxels), the features
        per_latent = (voxels * (1 + c.g_width / 8) + 2 * c.g_width * c.feature_size**3) * 4
    free, _ = torch.cuda.mem_get_info(device)
    fit = int((free / 2 - options.budget_mb * (1 << 20)) // per_latent)
    return max(1, min(count, fit))


def interpolation_requests(
    keyframes: list[int],
    steps: int,
    latent_dim: int,
    method: str = "slerp",
    part: str = "full",
    **request_options,
) -> list[SampleRequest]:
    """Requests along a path through the keyframe seeds: ``steps`` frames per segment, plus the end.

    Frame t of segment a -> b is lerp/slerp(z(a), z(b), t) for t = 0, 1/steps, ..., with the last
    keyframe itself closing the path.
    """
    if len(keyframes) < 2:
        raise ConfigError("an interpolation needs at least two keyframe seeds")
    if steps < 1:
        raise ConfigError(f"steps per segment must be at least 1, got {steps}")
    if (len(keyframes) - 1) * steps + 1 > MAX_FRAMES:
        raise ConfigError(
            f"{len(keyframes)} keyframes with {steps} steps make {(len(keyframes) - 1) * steps + 1} frames;"
            f" at most {MAX_FRAMES}"
        )
    interpolate = {"lerp": lerp, "slerp": slerp}.get(method)
    if interpolate is None:
        raise ConfigError(f"unknown interpolation '{method}'; choose lerp or slerp")
    latents = [seed_to_z(seed, latent_dim) for seed in keyframes]
    requests = []
    for (a, za), (b, zb) in zip(zip(keyframes, latents), zip(keyframes[1:], latents[1:])):
        for k in range(steps):
            t = k / steps
            origin = f"{method}(seed {a} -> seed {b}, t={t:.4f})"
            requests.append(SampleRequest(None, part, latent=interpolate(za, zb, t), origin=origin, **request_options))
    last = keyframes[-1]
    requests.append(SampleRequest(None, part, latent=latents[-1], origin=f"keyframe seed {last}", **request_options))
    return requests


def _batch_key(request: SampleRequest) -> tuple:
    return (request.part, request.slab_start, request.label)


def to_volume(model: AnyModel, request: SampleRequest, tensor: torch.Tensor) -> Volume:
    """One generated tensor (1, D, H, W) as a Volume with the part's affine, units and provenance."""
    card = model.card
    affine = generated_affine(card.config.resolution, card.spacing_mm, request.part, request.slab_start)
    provenance = {
        "synthetic": True,
        "model": card.name or "HA-GAN",
        "model_hash": card.content_hash,
        "model_source": card.source,
        "seed": request.seed,
        **({"latent_origin": request.origin} if request.origin else {}),
        **(
            {"latent": [round(v, 7) for v in request.latent.reshape(-1).tolist()]} if request.latent is not None else {}
        ),
        "truncation": request.truncation,
        "class_label": request.label,
        "operation": request.part if request.part != "slab" else f"slab(start={request.slab_start})",
        "intensity": "physical" if request.physical else "raw",
    }
    return Volume.from_network(tensor[0], affine, card.intensity if request.physical else RAW, provenance)
