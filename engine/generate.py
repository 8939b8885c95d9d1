"""Turning latents into volumes: the parts of the hierarchy, as tensors or as Volumes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .errors import ConfigError
from .latent import seed_to_z, truncate
from .model import HAGANModel
from .volume import RAW, Volume, generated_affine

PARTS = ("full", "anchor", "slab", "stitched")


@torch.inference_mode()
def generate_part(
    model: HAGANModel,
    z: torch.Tensor,
    part: str = "full",
    slab_start: int = 0,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Latents (N, latent_dim) -> one part of the hierarchy, (N, 1, D, H, W) in [-1, 1]."""
    if part not in PARTS:
        raise ConfigError(f"unknown part '{part}'; choose one of {', '.join(PARTS)}")
    g = model.generator
    if part == "slab":
        g._check_slab_start(slab_start)  # fail before the expensive feature pass
    features = g.features(z.to(model.device), labels)
    if part == "anchor":
        return g.anchor(features)
    if part == "slab":
        return g.slab(features, slab_start)
    if part == "stitched":
        return g.stitched(features)
    return g.full(features)


@dataclass(frozen=True)
class SampleRequest:
    """What to generate for one seed; ``physical`` maps values to the model's units (e.g. HU)."""

    seed: int
    part: str = "full"
    slab_start: int = 0
    truncation: float = 1.0
    label: int | None = None
    physical: bool = True


def sample_volume(model: HAGANModel, request: SampleRequest) -> Volume:
    """Generate one part for one seed as a Volume with geometry, units and provenance."""
    card = model.card
    z = truncate(seed_to_z(request.seed, card.config.latent_dim), request.truncation)
    labels = None if request.label is None else torch.tensor([request.label])
    tensor = generate_part(model, z, request.part, request.slab_start, labels)
    affine = generated_affine(card.config.resolution, card.spacing_mm, request.part, request.slab_start)
    provenance = {
        "synthetic": True,
        "model": card.name or "HA-GAN",
        "model_hash": card.content_hash,
        "model_source": card.source,
        "seed": request.seed,
        "truncation": request.truncation,
        "class_label": request.label,
        "operation": request.part if request.part != "slab" else f"slab(start={request.slab_start})",
        "intensity": "physical" if request.physical else "raw",
    }
    return Volume.from_network(tensor[0, 0], affine, card.intensity if request.physical else RAW, provenance)


def sample_volumes(model: HAGANModel, requests: list[SampleRequest]) -> Iterator[Volume]:
    for request in requests:
        yield sample_volume(model, request)
