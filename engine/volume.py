"""Volume: a 3-D array with its geometry, intensity meaning and provenance.

Axis conventions (one place for all of them):

- Network tensors are (N, 1, D, H, W) with D the slab (axial) axis.
- ``Volume.array`` is in NIfTI voxel order (i, j, k) = network (W, H, D), so nibabel, pyvista
  and every viewer read it directly. Canonical orientation is RAS: i -> Right, j -> Anterior,
  k -> Superior, so network D runs inferior -> superior.
- The affine maps voxel indices to millimetres; a generated volume is centred on the origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .enums import Part
from .errors import VolumeError


@dataclass(frozen=True)
class IntensityMapping:
    """Linear map from network values [-1, 1] to physical values [low, high].

    CT models trained on the HU window [-1024, 600] use ``IntensityMapping(-1024, 600, "HU")``.
    The identity mapping (``RAW``) means values are the generator's own output.
    """

    low: float = -1.0
    high: float = 1.0
    unit: str = ""

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise VolumeError(f"intensity window [{self.low}, {self.high}] is empty or reversed")
        if not (np.isfinite(self.low) and np.isfinite(self.high)):
            raise VolumeError(f"intensity window [{self.low}, {self.high}] is not finite")

    def to_physical(self, x, in_place: bool = False):
        """x * scale + offset, in two passes over one new array (or over x itself, ``in_place``,
        for a float32 numpy array) when x is a numpy array."""
        scale = (self.high - self.low) / 2.0
        offset = scale + self.low
        if isinstance(x, np.ndarray):
            if in_place and x.dtype == np.float32 and x.flags.writeable:
                out = np.multiply(x, np.float32(scale), out=x)
            else:
                out = np.multiply(x, np.float32(scale), order="K", dtype=np.float32)  # keeps x's memory order
            out += np.float32(offset)
            return out
        return x * scale + offset

    def to_network(self, y):
        return (y - self.low) * (2.0 / (self.high - self.low)) - 1.0

    def to_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "unit": self.unit}

    @classmethod
    def from_dict(cls, values: dict) -> IntensityMapping:
        return cls(float(values["low"]), float(values["high"]), str(values.get("unit", "")))


RAW = IntensityMapping()


@dataclass
class Volume:
    """A 3-D volume in physical units (per ``intensity``), with its affine and provenance."""

    array: np.ndarray
    affine: np.ndarray
    intensity: IntensityMapping = RAW
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array, dtype=np.float32)
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.array.ndim != 3:
            raise VolumeError(f"a volume needs 3 dimensions, got shape {self.array.shape}")
        if self.affine.shape != (4, 4):
            raise VolumeError(f"an affine is 4x4, got shape {self.affine.shape}")

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @classmethod
    def from_network(
        cls,
        tensor: torch.Tensor | np.ndarray,
        affine: np.ndarray,
        intensity: IntensityMapping = RAW,
        provenance: dict | None = None,
        in_place: bool = False,
    ) -> Volume:
        """A network output (D, H, W), (1, D, H, W) or (1, 1, D, H, W) -> Volume.

        ``in_place``: the output is the caller's to give away (a float32 tensor or array no one
        reads again), so physical units are written into its memory instead of a new array.
        """
        if isinstance(tensor, torch.Tensor):
            tensor = tensor.detach().float().cpu().numpy()
        array = np.asarray(tensor, dtype=np.float32)
        while array.ndim > 3 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 3:
            raise VolumeError(f"expected one (D, H, W) volume, got shape {array.shape}")
        # A C-ordered (D, H, W) array seen as (W, H, D) is Fortran-ordered (i, j, k): NIfTI's own
        # on-disk order, so no transposed copy is made and writing is a straight dump.
        array = array.transpose(2, 1, 0)
        if intensity != RAW:
            array = intensity.to_physical(array, in_place=in_place)
        return cls(array, affine, intensity, dict(provenance or {}))

    def to_network(self) -> torch.Tensor:
        """Back to the network's layout and range: a (1, 1, D, H, W) float32 tensor."""
        network = self.intensity.to_network(self.array).transpose(2, 1, 0)
        return torch.from_numpy(np.ascontiguousarray(network, dtype=np.float32))[None, None]


def generated_affine(
    resolution: int,
    spacing_mm: tuple[float, float, float],
    part: str = Part.FULL,
    slab_start: int = 0,
) -> np.ndarray:
    """Affine of a generated part, all parts of one volume in the same millimetre frame.

    The full S^3 volume is centred on the origin. The anchor has 4x larger voxels whose
    centres sit in the middle of the 4^3 full-resolution voxels they summarise. A slab is the
    full-resolution grid shifted by ``slab_start`` voxels along k (network D).
    """
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    origin = -spacing * (resolution - 1) / 2.0
    if part == Part.ANCHOR:
        scale, offset = 4.0, spacing * 1.5
    elif part == Part.SLAB:
        scale, offset = 1.0, np.array([0.0, 0.0, slab_start * spacing[2]])
    elif part in (Part.FULL, Part.STITCHED):
        scale, offset = 1.0, np.zeros(3)
    else:
        raise VolumeError(f"unknown part '{part}'")
    affine = np.eye(4)
    affine[:3, :3] = np.diag(spacing * scale)
    affine[:3, 3] = origin + offset
    return affine
