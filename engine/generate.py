"""Turning latents into volumes: the parts of the hierarchy, as tensors or as Volumes.

By default every part is computed by ``FastGenerator``: the same arithmetic as the networks'
straightforward forward pass, but with sub-pixel (stride-2 transposed or phase-kernel)
convolutions instead of upsample-then-convolve, and G^H's GroupNorm folded into its last
convolution's input chunks (see ``engine.subpixel``). The output equals the
straightforward pass to float32 rounding (no tiling, no seams) at a fraction of the time and
memory. ``reference=True`` runs the straightforward pass for comparison; ``reference=None`` runs
whichever path is faster on the model's device (``reference_is_faster``): both give the same volume.

Split&Shuffle-GAN models (``model.hierarchical`` False) have one part, the full volume, made by
their generator's own forward pass; HA-GAN models with Split&Shuffle blocks or a smooth upsampling
also run the straightforward pass (``FastGenerator`` falls back to it).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .enums import Part, Precision
from .errors import ConfigError
from .latent import seed_to_z, truncate
from .model import AnyModel, SplitShuffleModel
from .models.hagan import Generator
from .precision import PRECISIONS, math_mode, resolve_precision
from .subpixel import (
    conv3d_chunked,
    group_norm_affine,
    phase_kernels,
    transposed_kernel,
    upsample_conv3d,
    upsample_conv3d_transposed,
)
from .volume import RAW, Volume, generated_affine

PARTS = tuple(part.value for part in Part)  # plain strings: argparse and messages show them
DEFAULT_BUDGET_MB = 256


class FastGenerator:
    """``features`` / ``anchor`` / ``slab`` / ``full`` / ``stitched`` of a Generator, computed lean.

    ``budget_mb`` bounds the temporaries of the chunked convolutions (G^H's last one and G^A's
    plain ones; the chunk thickness along D is chosen from it); ``chunk_rows`` fixes that
    thickness instead. The result depends on neither. The transposed convolutions run whole:
    they need no temporaries beyond their output.
    ``precision`` (see ``engine.precision``) sets the dtype of the arithmetic; callers run the
    methods inside ``math_mode(runner.precision, device)`` for CUDA's TF32 switches.

    The sub-pixel kernels need dense 3x3x3 convolutions after nearest upsampling: for a generator
    with Split&Shuffle blocks (``config.blocks`` not "dense") or another upsampling
    (``config.upsample`` not "nearest") every method simply runs the generator's own
    straightforward forward pass, in float32.
    """

    def __init__(
        self,
        generator: Generator,
        budget_mb: float = DEFAULT_BUDGET_MB,
        precision: str = Precision.AUTO,
        chunk_rows: int | None = None,
    ):
        self.precision = check_options(budget_mb, precision, next(generator.parameters()).device)
        self.subpixel = generator.config.blocks == "dense" and generator.config.upsample == "nearest"
        self.generator = generator
        self.config = generator.config
        self.budget = int(budget_mb * (1 << 20))
        self.rows = chunk_rows
        self.dtype = PRECISIONS[self.precision]
        # oneDNN and cuDNN run the stride-2 transposed convolution well; MPS keeps the phase kernels
        self.transposed = next(generator.parameters()).device.type != "mps"
        self._upsampled = {f"tp_conv{i}" for i in generator.upsample_before} | {"tp_conv6", "tp_conv7"}

    @torch.inference_mode()
    def features(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        g = self.generator
        if not self.subpixel:
            return g.features(z, labels)
        x = g.fc1(g.latent_input(z, labels)).view(z.shape[0], 16 * self.config.g_width, 4, 4, 4).to(self.dtype)
        for i in range(1, 6):
            x = self._norm_relu(getattr(g, f"bn{i}"), self._conv(f"tp_conv{i}", x))
        return x

    @torch.inference_mode()
    def anchor(self, features: torch.Tensor) -> torch.Tensor:
        """G^L works at S/4 without upsampling: the features were the expensive part."""
        head = self.generator.sub_G
        if not self.subpixel:
            return head(features.float())
        x = features.to(self.dtype)
        for i in (1, 2):
            x = self._norm_relu(getattr(head, f"bn{i}"), self._conv(f"sub_G.tp_conv{i}", x))
        return self._conv("sub_G.tp_conv3", x).tanh_().float()

    @torch.inference_mode()
    def high_res(self, features: torch.Tensor) -> torch.Tensor:
        g = self.generator
        if not self.subpixel:
            return g.high_res(features.float())
        # G^H's intermediate (g channels at S/2) is normalised while the last convolution copies
        # its chunks: its GroupNorm + ReLU costs no pass of its own; the 1-channel S^3 output is
        # the only full-size tensor.
        x = self._conv("tp_conv6", features.to(self.dtype))
        norm = g.bn6
        # in x's dtype: a float32 scale on bf16 data would take a slow mixed-dtype kernel
        normalize = tuple(
            t.to(x.dtype) for t in group_norm_affine(x, norm.num_groups, norm.weight, norm.bias, norm.eps)
        )
        x = upsample_conv3d(x, *self._phases("tp_conv7"), self.budget, self.rows, normalize)
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
        if name not in self._upsampled:
            return conv3d_chunked(x, *self._weights(name, "plain"), self.budget, self.rows)
        if x[0, 0].numel() <= 64:
            # a 4^3 input: plain upsampling is tiny, and cheaper than deriving kernels
            return F.conv3d(F.interpolate(x, scale_factor=2), *self._weights(name, "plain"), padding=1)
        if self.transposed:
            return upsample_conv3d_transposed(x, *self._weights(name, "transposed"))
        return upsample_conv3d(x, *self._phases(name), self.budget, self.rows)

    def _phases(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Phase kernels and bias of an upsampling convolution."""
        return self._weights(name, "phases")

    def _weights(self, name: str, form: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A convolution's weight in ``form`` (plain, phases, transposed) and bias, in this runner's dtype.

        Derived once per generator, form and dtype, and kept beside the generator while its
        parameters stay the same tensors, unchanged (the app makes volume after volume).
        """
        conv = self.generator.get_submodule(name)
        cache = _DERIVED.setdefault(self.generator, {})
        # the parameters themselves are kept in the stamp: their memory cannot be reused by others
        stamp = (conv.weight, conv.bias, _changes(conv.weight), _changes(conv.bias))
        key = (name, form, self.dtype)
        if key not in cache or not _same(cache[key][0], stamp):
            derive = {"plain": lambda w: w, "phases": phase_kernels, "transposed": transposed_kernel}[form]
            weight = derive(conv.weight.detach().float()).to(self.dtype)  # sums in float32; fp32 plain: no copy
            cache[key] = (stamp, (weight, conv.bias.detach().to(self.dtype)))
        return cache[key][1]

    def _norm_relu(self, norm: torch.nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
        # torch's own kernel (vectorised for channels-last, float32 statistics also for bf16) beats
        # chunked passes here; G^A's tensors are small next to G^H's
        weight, bias = norm.weight.to(x.dtype), norm.bias.to(x.dtype)
        return F.group_norm(x, norm.num_groups, weight, bias, norm.eps).relu_()


def _changes(tensor: torch.Tensor) -> int | None:
    """How often the tensor was changed in place (inference tensors keep no count)."""
    return None if tensor.is_inference() else tensor._version


def _same(old: tuple, new: tuple) -> bool:
    """The same parameter tensors (identity), changed as often."""
    return old[0] is new[0] and old[1] is new[1] and old[2:] == new[2:]


# kernels derived from each generator's weights (FastGenerator._weights), dropped with the generator
_DERIVED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_options(budget_mb: float, precision: str, device: torch.device) -> str:
    """Refuse generation settings that cannot work, before any work; returns the precision resolved."""
    if budget_mb <= 0:
        raise ConfigError(f"memory budget must be positive, got {budget_mb} MB")
    return resolve_precision(precision, device)


def check_part(model: AnyModel, part: str) -> None:
    """Refuse a part the model cannot make: unknown parts, hierarchy parts of one-piece models, 2D models."""
    if part not in PARTS:
        raise ConfigError(f"unknown part '{part}'; choose one of {', '.join(PARTS)}")
    if model.hierarchical:
        return
    if part != Part.FULL:
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
    part: str = Part.FULL,
    slab_start: int = 0,
    labels: torch.Tensor | None = None,
    reference: bool | None = False,
    budget_mb: float = DEFAULT_BUDGET_MB,
    precision: str = Precision.AUTO,
) -> torch.Tensor:
    """Latents (N, latent_dim) -> one part of the hierarchy, (N, 1, D, H, W) float32 in [-1, 1].

    ``reference``: the networks' straightforward forward pass (under autocast for bf16/fp16);
    None: the faster of the two paths here.
    """
    check_part(model, part)
    precision = check_options(budget_mb, precision, model.device)
    if not model.hierarchical:
        return _generate_whole(model, z, labels, precision)
    g = model.generator
    if part == Part.SLAB:
        g.check_slab_start(slab_start)  # fail before the expensive feature pass
    if reference is None:
        reference = reference_is_faster(model, precision)
    runner = g if reference else FastGenerator(g, budget_mb, precision)
    with (
        torch.inference_mode(),
        math_mode(precision, model.device),
        reference_autocast(model.device, precision, reference),
    ):
        features = runner.features(z.to(model.device), None if labels is None else labels.to(model.device))
        if part == Part.ANCHOR:
            return runner.anchor(features).float()
        if part == Part.SLAB:
            return runner.slab(features, slab_start).float()
        if part == Part.STITCHED:
            return runner.stitched(features).float()
        return runner.full(features).float()


def reference_autocast(device: torch.device, precision: str, reference: bool):
    """Autocast for the straightforward pass in bf16/fp16 (FastGenerator casts by itself)."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype, enabled=reference and dtype != torch.float32)


_REFERENCE_FASTER: dict[tuple, bool] = {}


def reference_is_faster(model: AnyModel, precision: str) -> bool:
    """Whether the straightforward pass beats the sub-pixel one on this model's device.

    CPUs and MPS: no (27/8 fewer multiply-adds and far less memory traffic; benchmarks/generate.py).
    CUDA: measured once per model and precision: one full volume by each path after a warm-up,
    timed with CUDA events; a path that runs out of memory loses.
    """
    device = model.device
    if device.type != "cuda" or not subpixel_path(model):
        return False
    key = (id(model.generator), str(device), precision)
    if key not in _REFERENCE_FASTER:
        _REFERENCE_FASTER[key] = _time_both_paths(model, precision)
    return _REFERENCE_FASTER[key]


def _time_both_paths(model: AnyModel, precision: str) -> bool:
    c = model.config
    z = torch.zeros(1, c.latent_dim)
    labels = torch.zeros(1, dtype=torch.long) if c.num_class else None
    milliseconds = {}
    for reference in (False, True):
        try:
            generate_part(model, z, Part.FULL, labels=labels, reference=reference, precision=precision)  # warm-up
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            generate_part(model, z, Part.FULL, labels=labels, reference=reference, precision=precision)
            end.record()
            torch.cuda.synchronize(model.device)
            milliseconds[reference] = start.elapsed_time(end)
        except torch.OutOfMemoryError:
            milliseconds[reference] = float("inf")
        torch.cuda.empty_cache()
    return milliseconds[True] < milliseconds[False]


def _generate_whole(model: SplitShuffleModel, z, labels, precision: str) -> torch.Tensor:
    """A one-piece generator's volumes (its own forward pass; autocast for bf16/fp16)."""
    device = model.device
    dtype = PRECISIONS[precision]
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    with torch.inference_mode(), math_mode(precision, device), autocast:
        return model.generator(z.to(device), None if labels is None else labels.to(device)).float()


@dataclass(frozen=True)
class SampleRequest:
    """What to generate for one latent; ``physical`` maps values to the model's units (e.g. HU).

    The latent is the seed's (``seed_to_z``) unless ``latent`` (1, latent_dim) is given, e.g. a
    point on an interpolation path; ``origin`` then says where it came from, for provenance.
    """

    seed: int | None
    part: str = Part.FULL
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
    """How to compute, never what: every choice gives the same volume, to the rounding of ``precision``
    (``auto``: exact fp32, TF32 on CUDA; see ``engine.precision``). ``reference`` None: the faster path."""

    reference: bool | None = None
    budget_mb: float = DEFAULT_BUDGET_MB
    precision: str = Precision.AUTO
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
    precision = check_options(options.budget_mb, options.precision, model.device)
    reference = options.reference
    if reference is None and model.hierarchical:
        reference = reference_is_faster(model, precision)
    batch: list[SampleRequest] = []
    for request in [*requests, None]:
        same_kind = batch and request is not None and _batch_key(request) == _batch_key(batch[0])
        if batch and (request is None or not same_kind or len(batch) == options.batch_size):
            z = torch.cat([r.z(latent_dim) for r in batch])
            first = batch[0]
            labels = None if first.label is None else torch.full((len(batch),), first.label)
            tensors = generate_part(
                model, z, first.part, first.slab_start, labels, reference, options.budget_mb, precision
            )
            for r, tensor in zip(batch, tensors):
                yield to_volume(model, r, tensor, precision, bool(reference))
            batch = []
        if request is not None:
            batch.append(request)


def auto_batch_size(model: AnyModel, part: str, count: int, options: GenerationOptions) -> int:
    """One latent at a time on the CPU (no gain from batching); on a GPU what fits in half its free memory."""
    device = model.device
    if device.type != "cuda" or count <= 1:
        return 1
    c = model.config
    reference = options.reference
    if reference is None:
        reference = reference_is_faster(model, check_options(options.budget_mb, options.precision, device))
    if reference or not subpixel_path(model):
        # the straightforward pass: the upsampled input, block output and norm output at full size
        per_latent = c.resolution**3 * (1 + 3 * c.g_width) * 4
    else:
        part_voxels = {Part.ANCHOR: c.feature_size**3, Part.SLAB: c.slab_thickness * c.resolution**2}
        voxels = part_voxels.get(part, c.resolution**3)
        # per latent: the output, G^H's intermediate (g channels at 1/8 of the voxels), the features
        per_latent = (voxels * (1 + c.g_width / 8) + 2 * c.g_width * c.feature_size**3) * 4
    free, _ = torch.cuda.mem_get_info(device)
    fit = int((free / 2 - options.budget_mb * (1 << 20)) // per_latent)
    return max(1, min(count, fit))


def subpixel_path(model: AnyModel) -> bool:
    """Whether the default path of this model is FastGenerator's sub-pixel one (dense HA-GAN generators
    with nearest upsampling: the phase kernels stand for "nearest upsample, then convolve")."""
    return model.hierarchical and model.config.blocks == "dense" and model.config.upsample == "nearest"


def _batch_key(request: SampleRequest) -> tuple:
    return (request.part, request.slab_start, request.label)


def to_volume(
    model: AnyModel, request: SampleRequest, tensor: torch.Tensor, precision: str, reference: bool = False
) -> Volume:
    """One generated tensor (1, D, H, W) as a Volume with the part's affine, units and provenance.

    The provenance names how it was computed: ``precision`` (fp32 exact, tf32, bf16, fp16) and the
    path (``sub-pixel`` or the networks' ``straightforward`` forward pass).
    """
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
        "operation": request.part if request.part != Part.SLAB else f"slab(start={request.slab_start})",
        "intensity": "physical" if request.physical else "raw",
        "precision": precision,
        "path": "straightforward" if reference or not subpixel_path(model) else "sub-pixel",
    }
    # The generated tensor is not read again: scaling it in place spares a fresh 64 MB (256³)
    # allocation, whose first touch after the generator freed its buffers can take 0.5 s of page faults.
    intensity = card.intensity if request.physical else RAW
    return Volume.from_network(tensor[0], affine, intensity, provenance, in_place=True)
