"""Geometry of a volume in the scene: axis-aligned grids in RAS millimetres, slices, boxes, lines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyvista as pv

from engine.api import Volume

SYNTHETIC_LABEL = "SYNTHETIC"  # on every view of a generated volume (provenance says synthetic)
FILE_LABEL = "FROM FILE"  # a volume read from disk whose sidecar does not say it is synthetic
BACKGROUND = "#1e1e24"
AXES = ("sagittal", "coronal", "axial")  # slice normal along i (R), j (A), k (S)


@dataclass
class Grid:
    """A volume as an axis-aligned grid: positive spacing, origin at the first voxel centre (mm)."""

    array: np.ndarray  # (i, j, k), float32
    spacing: np.ndarray  # (3,) mm
    origin: np.ndarray  # (3,) mm

    @classmethod
    def from_volume(cls, volume: Volume) -> Grid:
        """Flip axes with negative steps; oblique affines are shown on their axis-aligned grid."""
        array = volume.array
        spacing = np.asarray(volume.spacing, dtype=float)
        origin = volume.affine[:3, 3].astype(float).copy()
        for axis in range(3):
            if volume.affine[axis, axis] < 0:
                array = np.flip(array, axis=axis)
                origin[axis] -= spacing[axis] * (array.shape[axis] - 1)
        return cls(np.asarray(array, dtype=np.float32), spacing, origin)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.array.shape

    @property
    def bounds(self) -> tuple[float, ...]:
        """(xmin, xmax, ymin, ymax, zmin, zmax) of the voxel centres, in mm."""
        end = self.origin + self.spacing * (np.array(self.shape) - 1)
        return (self.origin[0], end[0], self.origin[1], end[1], self.origin[2], end[2])

    def index(self, position_mm) -> np.ndarray:
        """The voxel nearest to a position, clipped into the grid."""
        index = np.rint((np.asarray(position_mm, dtype=float) - self.origin) / self.spacing).astype(int)
        return np.clip(index, 0, np.array(self.shape) - 1)

    def contains(self, position_mm) -> bool:
        """True if the position lies inside the voxels' extent (half a voxel beyond the centres)."""
        relative = (np.asarray(position_mm, dtype=float) - self.origin) / self.spacing
        return bool(np.all(relative >= -0.5) and np.all(relative <= np.array(self.shape) - 0.5))

    def value(self, position_mm) -> float:
        i, j, k = self.index(position_mm)
        return float(self.array[i, j, k])

    def image(self) -> pv.ImageData:
        grid = pv.ImageData(dimensions=self.shape, spacing=self.spacing, origin=self.origin)
        grid.point_data["intensity"] = self.array.ravel(order="F")
        return grid

    def slice_grid(self, axis: int, index: int) -> pv.ImageData:
        """One plane of voxels (one voxel thick) normal to ``axis``."""
        dimensions = list(self.shape)
        dimensions[axis] = 1
        origin = self.origin.copy()
        origin[axis] += index * self.spacing[axis]
        grid = pv.ImageData(dimensions=dimensions, spacing=self.spacing, origin=origin)
        grid.point_data["intensity"] = np.take(self.array, [index], axis=axis).ravel(order="F")
        return grid

    def update_slice(self, grid: pv.ImageData, axis: int, index: int) -> None:
        """Move an existing slice grid to another index, in place (no new actor)."""
        origin = list(self.origin)
        origin[axis] += index * self.spacing[axis]
        grid.origin = origin
        grid.point_data["intensity"][:] = np.take(self.array, [index], axis=axis).ravel(order="F")
        grid.Modified()


def box_lines(bounds) -> pv.PolyData:
    """The 12 edges of an axis-aligned box (xmin, xmax, ymin, ymax, zmin, zmax)."""
    return pv.Box(bounds=bounds).extract_feature_edges(
        boundary_edges=False, feature_edges=True, manifold_edges=False, non_manifold_edges=False
    )


def plane_lines(bounds, spacing, axis: int, positions_mm) -> pv.PolyData:
    """Outlines of planes normal to ``axis`` at mm positions, spanning the voxels' extent (bounds of centres)."""
    half = np.asarray(spacing, dtype=float) / 2
    low, high = np.asarray(bounds[0::2], dtype=float) - half, np.asarray(bounds[1::2], dtype=float) + half
    u, v = (a for a in range(3) if a != axis)
    points, lines = [], []
    for position in positions_mm:
        first = len(points)
        for cu, cv in ((low[u], low[v]), (high[u], low[v]), (high[u], high[v]), (low[u], high[v])):
            point = np.empty(3)
            point[axis], point[u], point[v] = position, cu, cv
            points.append(point)
        lines += [5, first, first + 1, first + 2, first + 3, first]
    return pv.PolyData(np.array(points), lines=np.array(lines))


def crosshair_lines(position_mm, bounds) -> pv.PolyData:
    """Three lines through the crosshair, each spanning the bounds along one axis."""
    p = np.asarray(position_mm, dtype=float)
    points, lines = [], []
    for axis in range(3):
        a, b = p.copy(), p.copy()
        a[axis], b[axis] = bounds[2 * axis], bounds[2 * axis + 1]
        points += [a, b]
        lines += [2, 2 * axis, 2 * axis + 1]
    return pv.PolyData(np.array(points), lines=np.array(lines))
