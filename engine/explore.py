"""Interactive exploration of one model: the parts of one latent's hierarchy, computed once and reused.

An app that shows the anchor, a slab and the full volume of the same latent, and moves the slab
while the latent stays, should not run G^A again for every part. ``Explorer`` keeps the feature
map of the latest latent and derives every part from it. One Explorer serves one thread.

Each call names its precision (``engine.precision``): an app can preview in bf16 and keep the
full volume exact; features are cached per precision, so an exact part never reuses bf16 features.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch

from .enums import Part, Precision
from .errors import ConfigError
from .generate import (
    DEFAULT_BUDGET_MB,
    FastGenerator,
    GenerationOptions,
    SampleRequest,
    reference_autocast,
    reference_is_faster,
    sample_volume,
    to_volume,
)
from .precision import math_mode, resolve_precision
from .volume import Volume

HIERARCHY_PARTS = tuple(part.value for part in (Part.ANCHOR, Part.SLAB, Part.FULL, Part.STITCHED))


def is_hierarchical(model) -> bool:
    """True for models with an anchor and slabs (HA-GAN); False for one-piece generators."""
    return bool(getattr(model, "hierarchical", True))


class Explorer:
    """Volumes of one model for one latent at a time, with the latent's features cached."""

    def __init__(self, model, budget_mb: float = DEFAULT_BUDGET_MB):
        self.model = model
        self.hierarchical = is_hierarchical(model)
        self.budget_mb = budget_mb
        self._runners: dict[str, object] = {}  # precision -> FastGenerator or the generator
        self._key: bytes | None = None
        self._features: torch.Tensor | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts this model can make."""
        return HIERARCHY_PARTS if self.hierarchical else (Part.FULL,)

    def volumes(
        self, request: SampleRequest, parts: Iterable[str], slab_start: int = 0, precision: str = Precision.AUTO
    ) -> dict[str, Volume]:
        """The named parts for the request's latent (seed or latent, truncation, label) as Volumes."""
        precision = resolve_precision(precision, self.model.device)
        parts = tuple(parts)
        unknown = [p for p in parts if p not in self.parts]
        if unknown:
            kind = "this model" if self.hierarchical else "a model without a hierarchy (no anchor or slabs)"
            raise ConfigError(f"{kind} cannot make {', '.join(unknown)}; it makes {', '.join(self.parts)}")
        if not self.hierarchical:
            whole = dataclasses.replace(request, part=Part.FULL)
            return {Part.FULL: sample_volume(self.model, whole, GenerationOptions(precision=precision))}
        runner = self._runner(precision)
        reference = not isinstance(runner, FastGenerator)
        device = self.model.device
        made = {}
        with torch.inference_mode(), math_mode(precision, device), reference_autocast(device, precision, reference):
            features = self._features_for(request, runner)
            for part in parts:
                tensor = {
                    Part.ANCHOR: lambda: runner.anchor(features),
                    Part.SLAB: lambda: runner.slab(features, slab_start),
                    Part.FULL: lambda: runner.full(features),
                    Part.STITCHED: lambda: runner.stitched(features),
                }[part]()
                placed = dataclasses.replace(request, part=part, slab_start=slab_start)
                made[part] = to_volume(self.model, placed, tensor[0].float(), precision, reference)
        return made

    def latent(self, request: SampleRequest) -> torch.Tensor:
        """The effective latent (1, latent_dim) of a request, truncation applied."""
        return request.z(self.model.card.config.latent_dim)

    def _runner(self, precision: str):
        """The faster path on this device: FastGenerator, or the generator itself (same interface)."""
        if precision not in self._runners:
            g = self.model.generator
            faster = g if reference_is_faster(self.model, precision) else FastGenerator(g, self.budget_mb, precision)
            self._runners[precision] = faster
        return self._runners[precision]

    def _features_for(self, request: SampleRequest, runner) -> torch.Tensor:
        z = self.latent(request)
        key = z.numpy().tobytes() + repr(request.label).encode() + str(id(runner)).encode()
        if key != self._key:
            labels = None if request.label is None else torch.tensor([request.label])
            device = self.model.device
            self._features = runner.features(z.to(device), None if labels is None else labels.to(device))
            self._key = key
        return self._features
