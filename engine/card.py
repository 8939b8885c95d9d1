"""The model card: what a model is, stored as JSON inside every model file."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field

from . import __version__
from .enums import Family
from .errors import CheckpointError, clean_text
from .models.hagan import HAGANConfig
from .models.split_shuffle import SplitShuffleConfig
from .validation import check_spacing
from .volume import IntensityMapping

CT_WINDOW = IntensityMapping(-1024.0, 600.0, "HU")  # the HA-GAN reference CT window
CONFIG_CLASSES = {Family.HA_GAN: HAGANConfig, Family.SPLIT_SHUFFLE: SplitShuffleConfig}  # family -> its config


@dataclass
class ModelCard:
    """Settings needed to rebuild and interpret a model, plus where it came from.

    ``config`` is the family's configuration (``CONFIG_CLASSES[family]``); its fields are stored
    at the card's top level.
    """

    config: HAGANConfig | SplitShuffleConfig
    family: str = Family.HA_GAN
    name: str = ""
    modality: str = "unknown"  # "ct", "mri" or "unknown"
    intensity: IntensityMapping = field(default_factory=lambda: IntensityMapping())
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)  # nominal, along i, j, k
    orientation: str = "RAS"
    parts: tuple[str, ...] = ("G",)  # networks in the file: G, E, Sub_E
    source: str = ""
    training: dict = field(default_factory=dict)  # data summary, iterations, time, hardware
    notes: str = ""
    # How the training data was preprocessed (PreprocessSettings.to_dict(): modality, window or
    # percentiles, foreground rule, trim, orientation, geometry, spacing); real scans are
    # preprocessed the same way (engine.model_input). Empty on older cards.
    preprocessing: dict = field(default_factory=dict)
    content_hash: str = ""
    engine_version: str = __version__
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        # the family follows from the config, so the two can never disagree
        self.family = next(name for name, kind in CONFIG_CLASSES.items() if isinstance(self.config, kind))

    def to_dict(self) -> dict:
        return {
            "family": self.family,
            "name": self.name,
            **self.config.to_dict(),
            "modality": self.modality,
            "intensity": self.intensity.to_dict(),
            "spacing_mm": list(self.spacing_mm),
            "orientation": self.orientation,
            "parts": list(self.parts),
            "source": self.source,
            "training": self.training,
            "notes": self.notes,
            "preprocessing": self.preprocessing,
            "content_hash": self.content_hash,
            "engine_version": self.engine_version,
            "created": self.created,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False)

    @classmethod
    def from_dict(cls, values: dict) -> ModelCard:
        try:
            family = values.get("family", Family.HA_GAN)
            if not isinstance(family, str) or family not in CONFIG_CLASSES:
                raise CheckpointError(f"model family '{family}' is not supported by this engine")
            return cls(
                config=CONFIG_CLASSES[family].from_dict(values),
                name=clean_text(values.get("name", ""), 200),
                modality=clean_text(values.get("modality", "unknown"), 40),
                intensity=IntensityMapping.from_dict(values.get("intensity", {"low": -1, "high": 1})),
                spacing_mm=check_spacing(values.get("spacing_mm", (1.0, 1.0, 1.0)), "spacing_mm"),
                orientation=_check_orientation(values.get("orientation", "RAS")),
                parts=tuple(values.get("parts", ("G",))),
                source=clean_text(values.get("source", ""), 500),
                training=dict(values.get("training", {})),
                notes=clean_text(values.get("notes", ""), 2000),
                preprocessing=dict(values.get("preprocessing") or {}),
                content_hash=clean_text(values.get("content_hash", ""), 100),
                engine_version=values.get("engine_version", ""),
                created=values.get("created", ""),
            )
        except CheckpointError:
            raise
        except Exception as error:  # a malformed card is a malformed file
            raise CheckpointError(f"model card is malformed ({error})") from None

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        try:
            values = json.loads(text)
        except ValueError as error:
            raise CheckpointError(f"model card is not valid JSON ({error})") from None
        return cls.from_dict(values)


def _check_orientation(orientation: object) -> str:
    """Generated volumes are written in RAS; a card saying otherwise describes a volume we do not make."""
    if orientation != "RAS":
        raise CheckpointError(f"orientation must be RAS, got {clean_text(orientation, 20)!r}")
    return "RAS"


def default_spacing(resolution: int) -> tuple[float, float, float]:
    """Nominal spacing when the training data's is unknown: a 256 mm field of view."""
    s = 256.0 / resolution
    return (s, s, s)
