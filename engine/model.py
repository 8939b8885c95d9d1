"""Loaded models: networks plus their model card, one class per family (HA-GAN, Split&Shuffle-GAN)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .card import ModelCard
from .enums import Family
from .errors import ConfigError
from .models.hagan import Discriminator, Encoder, Generator, HAGANConfig, SubEncoder, encode_volume
from .models.split_shuffle import (
    SplitShuffleConfig,
    SplitShuffleDiscriminator,
    SplitShuffleGenerator,
    count_parameters,
)

PART_NAMES = {"G": "generator", "E": "encoder", "Sub_E": "sub_encoder", "D": "discriminator"}


class _LoadedModel:
    """What every family's model shares: networks by file prefix (G, E, Sub_E, D), device, to, eval."""

    @property
    def config(self) -> HAGANConfig | SplitShuffleConfig:
        return self.card.config

    def networks(self) -> dict[str, torch.nn.Module]:
        """Present networks by their file prefix."""
        found = {key: getattr(self, attr, None) for key, attr in PART_NAMES.items()}
        return {key: net for key, net in found.items() if net is not None}

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def to(self, device: torch.device | str):
        for net in self.networks().values():
            net.to(device)
        return self

    def eval(self):
        for net in self.networks().values():
            net.eval()
        return self


@dataclass
class HAGANModel(_LoadedModel):
    """Generator (always) and encoders / discriminator (when the file has them)."""

    card: ModelCard
    generator: Generator
    encoder: Encoder | None = None
    sub_encoder: SubEncoder | None = None
    discriminator: Discriminator | None = None

    @classmethod
    def build(cls, card: ModelCard, parts: tuple[str, ...] = ("G", "E", "Sub_E"), empty: bool = False) -> HAGANModel:
        """Fresh networks (PyTorch default initialisation) for the parts named.

        ``empty`` builds them without memory or initialisation (meta device), for loaders that
        assign every tensor from a file: that saves the time and the second copy of the weights.
        """
        c = card.config
        with torch.device("meta") if empty else contextlib.nullcontext():
            return cls(
                card=card,
                generator=Generator(c),
                encoder=Encoder(c) if "E" in parts else None,
                sub_encoder=SubEncoder(c) if "Sub_E" in parts else None,
                discriminator=Discriminator(c) if "D" in parts else None,
            )

    @property
    def hierarchical(self) -> bool:
        """True: anchor, slabs, full and stitched volumes exist (``engine.generate`` parts)."""
        return True

    @property
    def has_encoders(self) -> bool:
        return self.encoder is not None and self.sub_encoder is not None

    def encode(self, volume: torch.Tensor) -> torch.Tensor:
        """A real volume (N, 1, S, S, S) in [-1, 1] -> latents (N, latent_dim)."""
        if not self.has_encoders:
            raise ConfigError("this model file has no encoders (E and Sub_E)")
        return encode_volume(self.encoder, self.sub_encoder, volume)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per module, with the generator split into G^A, G^L and G^H."""
        g = self.generator
        count = lambda params: sum(p.numel() for p in params)  # noqa: E731
        low = count(g.sub_G.parameters())
        high = count(p for n, p in g.named_parameters() if n.split(".")[0] in ("tp_conv6", "bn6", "tp_conv7"))
        counts = {
            "G^A (shared features)": count(g.parameters()) - low - high,
            "G^L (anchor)": low,
            "G^H (high resolution)": high,
            "G total": count(g.parameters()),
        }
        for key, net in self.networks().items():
            if key != "G":
                counts[{"E": "E^H (slab encoder)", "Sub_E": "E^G (sub-encoder)", "D": "D total"}[key]] = count(
                    net.parameters()
                )
        if self.discriminator is not None:
            counts["G + D"] = counts["G total"] + counts["D total"]
        return counts


@dataclass
class SplitShuffleModel(_LoadedModel):
    """A Split&Shuffle-GAN: generator (always) and discriminator (when the file has it).

    No hierarchy (one generator makes the whole volume), no encoders. ``config.dims`` 2 is a slice
    model (stage 2d of training), which makes single slices rather than volumes.
    """

    card: ModelCard
    generator: SplitShuffleGenerator
    discriminator: SplitShuffleDiscriminator | None = None

    @classmethod
    def build(cls, card: ModelCard, parts: tuple[str, ...] = ("G", "D"), empty: bool = False) -> SplitShuffleModel:
        """Fresh networks for the parts named (G always; D when asked); ``empty``: on the meta device."""
        with torch.device("meta") if empty else contextlib.nullcontext():
            d = SplitShuffleDiscriminator(card.config) if "D" in parts else None
            return cls(card=card, generator=SplitShuffleGenerator(card.config), discriminator=d)

    @property
    def hierarchical(self) -> bool:
        """False: no anchor, slabs or stitched volumes; only the full volume."""
        return False

    @property
    def has_encoders(self) -> bool:
        return False

    def encode(self, volume: torch.Tensor) -> torch.Tensor:
        raise ConfigError("split-shuffle models have no encoders")

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters: G with its FC layer separately, D, and G + D when D is present."""
        fc = count_parameters(self.generator.fc)
        counts = {"G FC layer": fc, "G without FC": count_parameters(self.generator) - fc}
        counts["G total"] = fc + counts["G without FC"]
        if self.discriminator is not None:
            counts["D total"] = count_parameters(self.discriminator)
            counts["G + D"] = counts["G total"] + counts["D total"]
            counts["G + D without FC"] = counts["G + D"] - fc
        return counts


MODEL_CLASSES = {Family.HA_GAN: HAGANModel, Family.SPLIT_SHUFFLE: SplitShuffleModel}
AnyModel = HAGANModel | SplitShuffleModel  # what engine.checkpoints.load_model returns
