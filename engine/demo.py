"""The bundled demo models (resources/models): what runs when no model is named."""

from __future__ import annotations

from pathlib import Path

from .errors import CheckpointError

MODELS_DIR = Path(__file__).resolve().parents[1] / "resources" / "models"
DEFAULT_DEMO = "demo-chest-ct.safetensors"


def demo_models() -> list[Path]:
    """The bundled demo model files, the default (chest CT) first."""
    found = sorted(MODELS_DIR.glob("demo-*.safetensors"))
    return sorted(found, key=lambda p: p.name != DEFAULT_DEMO)


def default_model() -> Path:
    """The chest CT demo model, or a clear error when the checkout lacks it."""
    path = MODELS_DIR / DEFAULT_DEMO
    if not path.exists():
        raise CheckpointError(f"no model given and the demo model {path} is missing; pass --checkpoint FILE")
    return path
