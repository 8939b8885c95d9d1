"""Intensity statistics that need no network: histogram distance and CT tissue fractions.

Both work in physical units (HU for CT), so numbers read the same whatever the model's window.
Histograms are accumulated over fixed bins, so any number of volumes streams through in constant
memory and real and generated sets are compared bin for bin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.stats

from ..errors import ConfigError

# CT tissue classes in HU: half-open intervals [low, high). Values between the classes
# ([-400, -150) and [150, 200): partial-volume and dense soft tissue) count as "other".
CT_TISSUE_BINS: dict[str, tuple[float, float]] = {
    "air": (-np.inf, -900.0),
    "lung": (-900.0, -400.0),
    "fat": (-150.0, -30.0),
    "soft_tissue": (-30.0, 150.0),
    "bone": (200.0, np.inf),
}


def tissue_fractions(values: np.ndarray, bins: dict[str, tuple[float, float]] | None = None) -> dict[str, float]:
    """Fraction of voxels in each tissue class (CT HU bins by default), plus "other"."""
    counts = tissue_counts(values, bins)
    total = max(counts.pop("total"), 1.0)
    return {name: count / total for name, count in counts.items()}


def tissue_counts(values: np.ndarray, bins: dict[str, tuple[float, float]] | None = None) -> dict[str, float]:
    """Voxel counts per tissue class, "other" and "total" (counts add up over volumes)."""
    values = np.asarray(values).ravel()
    counts = {
        name: float(np.count_nonzero((values >= low) & (values < high)))
        for name, (low, high) in (bins or CT_TISSUE_BINS).items()
    }
    counts["other"] = float(values.size) - sum(counts.values())
    counts["total"] = float(values.size)
    return counts


@dataclass
class IntensityHistogram:
    """A running histogram of physical values over fixed bins spanning [low, high] (values clipped)."""

    low: float
    high: float
    bins: int = 512
    counts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if not self.high > self.low or self.bins < 1:
            raise ConfigError(f"histogram range [{self.low}, {self.high}] with {self.bins} bins is empty")
        self.counts = np.zeros(self.bins, dtype=np.float64)

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.low, self.high, self.bins + 1)

    @property
    def centres(self) -> np.ndarray:
        edges = self.edges
        return (edges[:-1] + edges[1:]) / 2

    def add(self, values: np.ndarray) -> IntensityHistogram:
        """Count the values of one more volume."""
        clipped = np.clip(np.asarray(values, dtype=np.float64).ravel(), self.low, self.high)
        self.counts += np.histogram(clipped, bins=self.bins, range=(self.low, self.high))[0]
        return self

    def mean(self) -> float:
        return float(np.average(self.centres, weights=self.counts)) if self.counts.sum() else float("nan")


def histogram_wasserstein(a: IntensityHistogram, b: IntensityHistogram) -> float:
    """Wasserstein-1 (earth mover's) distance between two histograms, in their physical units.

    Each histogram is read as a distribution on its bin centres; the result is exact for those
    and within one bin width of the distance between the underlying values.
    """
    if a.counts.sum() == 0 or b.counts.sum() == 0:
        raise ConfigError("a histogram is empty: no voxels were counted")
    return float(scipy.stats.wasserstein_distance(a.centres, b.centres, a.counts, b.counts))


def intensity_wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """Wasserstein-1 distance between the value distributions of two arrays (exact, from samples)."""
    return float(scipy.stats.wasserstein_distance(np.asarray(a).ravel(), np.asarray(b).ravel()))
