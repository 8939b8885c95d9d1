"""Default display window (width/level) for a volume, in its physical units."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.volume import Volume

LUNG = (1500.0, -600.0)  # CT lung window W1500 / L-600 HU


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

    def label(self, unit: str) -> str:
        return f"W{self.width:g} L{self.level:g}" + (f" {unit}" if unit else "")


def default_window(volume: Volume) -> WindowLevel:
    """CT in HU gets the lung window; anything else spans its own min..max."""
    if volume.intensity.unit == "HU":
        return WindowLevel(*LUNG)
    low, high = float(np.nanmin(volume.array)), float(np.nanmax(volume.array))
    if not (np.isfinite(low) and np.isfinite(high)):
        return WindowLevel(2.0, 0.0)
    width = high - low if high > low else 1.0
    return WindowLevel(width, low + width / 2.0)
