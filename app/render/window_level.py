"""Grey-scale windows and the viewing presets (editable JSON in resources/presets/viewing.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.api import IntensityMapping, Volume

PRESETS_FILE = Path(__file__).resolve().parents[2] / "resources" / "presets" / "viewing.json"
MIN_WIDTH = 1e-6
SAMPLE_SIZE = 200_000  # voxels behind a percentile: windows and presets of a large volume stay fast


@dataclass(frozen=True)
class WindowLevel:
    """A grey-scale window: values below low are black, above high white."""

    width: float
    level: float

    @property
    def low(self) -> float:
        return self.level - self.width / 2.0

    @property
    def high(self) -> float:
        return self.level + self.width / 2.0

    def label(self, unit: str = "") -> str:
        return f"W{self.width:.4g} L{self.level:.4g}" + (f" {unit}" if unit else "")

    def dragged(self, dx: float, dy: float, scale: float) -> WindowLevel:
        """Window after a mouse drag (Slicer's convention): right widens, up brightens (lowers the level)."""
        width = max(MIN_WIDTH, self.width + dx * scale)
        return WindowLevel(width, self.level - dy * scale)


@dataclass(frozen=True)
class Preset:
    """A named window: fixed width/level, or between two percentiles of the shown volume."""

    name: str
    width: float | None = None
    level: float | None = None
    auto: tuple[float, float] | None = None

    def window_for(self, volume: Volume | None) -> WindowLevel:
        if self.auto is None:
            return WindowLevel(float(self.width), float(self.level))
        if volume is None:
            return WindowLevel(2.0, 0.0)
        return percentile_window(volume.array, *self.auto)


def modality_key(intensity: IntensityMapping, modality: str = "") -> str:
    """Which preset list applies: 'ct' for HU volumes, 'mri', or 'other'."""
    if intensity.unit == "HU" or modality == "ct":
        return "ct"
    return "mri" if modality == "mri" else "other"


@lru_cache(maxsize=4)
def _read(path: str) -> dict:
    return json.loads(Path(path).read_text())


def viewing_presets(path: Path = PRESETS_FILE) -> dict:
    """The whole presets file (cached; a broken file raises ValueError naming it)."""
    try:
        return _read(str(path))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read the viewing presets ({error})") from error


def window_presets(key: str, path: Path = PRESETS_FILE) -> list[Preset]:
    """Window/level presets for 'ct', 'mri' or 'other'."""
    presets = []
    for entry in viewing_presets(path).get(key, []):
        auto = tuple(entry["auto"]) if "auto" in entry else None
        presets.append(Preset(entry["name"], entry.get("width"), entry.get("level"), auto))
    return presets


def voxel_sample(array: np.ndarray, size: int = SAMPLE_SIZE) -> np.ndarray:
    """Every n-th voxel in (i, j, k) order, about ``size`` of them: the values ``array.ravel()[::n]``
    gives, without the full copy that ravel makes of a Fortran-ordered volume (generated or NIfTI)."""
    step = max(1, array.size // size)
    if array.flags.c_contiguous:
        return array.reshape(-1)[::step]
    return array[np.unravel_index(np.arange(0, array.size, step), array.shape)]


def percentile_window(array: np.ndarray, low: float = 1.0, high: float = 99.0) -> WindowLevel:
    """A window spanning two percentiles of the finite values (a small sample keeps this fast)."""
    values = np.asarray(voxel_sample(np.asarray(array)), dtype=np.float32)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return WindowLevel(2.0, 0.0)
    a, b = (float(v) for v in np.percentile(values, [low, high]))
    width = b - a if b > a else max(abs(a), 1.0)
    return WindowLevel(width, a + width / 2.0)


def centred_window(array: np.ndarray, percentile: float = 99.5) -> WindowLevel:
    """Symmetric about 0, reaching the ``percentile`` of |values| (a few outliers do not wash it out):
    for differences. From a sample, as ``percentile_window``."""
    spread = float(np.percentile(np.abs(voxel_sample(array)), percentile))
    spread = spread or float(max(-np.min(array), np.max(array))) or 1.0
    return WindowLevel(2.0 * spread, 0.0)


def default_window(volume: Volume, modality: str = "") -> WindowLevel:
    """The first preset of the volume's kind: lung window for CT, a percentile window otherwise."""
    presets = window_presets(modality_key(volume.intensity, modality))
    return presets[0].window_for(volume) if presets else percentile_window(volume.array)


def beyond_training_range(window: WindowLevel, intensity: IntensityMapping) -> str:
    """A warning when the window reaches past the range the model was trained on, else ''."""
    if intensity.unit == "":
        return ""
    low, high = intensity.to_physical(np.array([-1.0, 1.0], dtype=np.float64))
    unit = intensity.unit
    parts = []
    # below the floor of a CT window that starts at air there is nothing to see, so no warning
    floor_is_air = unit == "HU" and low <= -1000
    if window.low < low - 1e-6 and not floor_is_air:
        parts.append(f"below {low:g} {unit}")
    if window.high > high + 1e-6:
        parts.append(f"above {high:g} {unit}")
    if not parts:
        return ""
    return f"window reaches {' and '.join(parts)}: the model was trained on [{low:g}, {high:g}] {unit} only"
