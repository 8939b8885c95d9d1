"""The slice view: three orthogonal planes through the volume centre, in millimetres."""

from __future__ import annotations

import numpy as np
import pyvista as pv

from engine.volume import Volume

from .window_level import WindowLevel

SYNTHETIC_LABEL = "SYNTHETIC"
BACKGROUND = "#1e1e24"
SCALAR_BAR = {"color": "white", "vertical": True, "position_x": 0.88, "fmt": "%.0f"}


def plane_grids(volume: Volume) -> list[pv.ImageData]:
    """The central sagittal, coronal and axial planes as one-voxel-thick grids in RAS mm."""
    array, spacing, origin = _axis_aligned(volume)
    planes = []
    for axis in range(3):
        index = array.shape[axis] // 2
        dimensions = list(array.shape)
        dimensions[axis] = 1
        shift = np.zeros(3)
        shift[axis] = index * spacing[axis]
        grid = pv.ImageData(dimensions=dimensions, spacing=spacing, origin=origin + shift)
        grid.point_data["intensity"] = np.take(array, [index], axis=axis).ravel(order="F")
        planes.append(grid)
    return planes


def volume_outline(volume: Volume) -> pv.PolyData:
    """The volume's bounding box as lines."""
    array, spacing, origin = _axis_aligned(volume)
    return pv.ImageData(dimensions=array.shape, spacing=spacing, origin=origin).outline()


def show_volume(plotter: pv.BasePlotter, volume: Volume, window: WindowLevel, caption: str, reset_camera: bool) -> None:
    """Replace the scene with the volume's three central slices, labelled SYNTHETIC."""
    plotter.clear()
    plotter.set_background(BACKGROUND)
    unit = volume.intensity.unit
    for number, grid in enumerate(plane_grids(volume)):
        plotter.add_mesh(
            grid,
            scalars="intensity",
            cmap="gray",
            clim=(window.low, window.high),
            lighting=False,  # grey values must be the window's, not shaded
            show_scalar_bar=number == 0,
            scalar_bar_args=SCALAR_BAR | {"title": unit or "value"},
            reset_camera=False,
        )
    plotter.add_mesh(volume_outline(volume), color="#c8a040", line_width=1, reset_camera=False)
    plotter.add_text(SYNTHETIC_LABEL, position="upper_right", color="#ff5050", font_size=14, name="synthetic")
    plotter.add_text(caption, position="lower_left", color="white", font_size=9, name="caption")
    plotter.show_axes()  # the R/A/S orientation marker, hidden while there is nothing to orient
    if reset_camera:
        plotter.view_isometric()
        plotter.reset_camera()
    plotter.render()


def show_placeholder(plotter: pv.BasePlotter, message: str) -> None:
    """An empty scene with a centred message."""
    plotter.clear()
    plotter.set_background(BACKGROUND)
    actor = plotter.add_text(message, position=(0.5, 0.5), viewport=True, color="white", font_size=14, name="message")
    text = actor.GetTextProperty()
    text.SetJustificationToCentered()
    text.SetVerticalJustificationToCentered()
    plotter.hide_axes()
    plotter.render()


def _axis_aligned(volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Array, positive spacing and origin for a diagonal affine (axes with negative steps flipped)."""
    array = volume.array
    spacing = np.asarray(volume.spacing, dtype=float)
    origin = volume.affine[:3, 3].astype(float).copy()
    for axis in range(3):
        if volume.affine[axis, axis] < 0:
            array = np.flip(array, axis=axis)
            origin[axis] -= spacing[axis] * (array.shape[axis] - 1)
    return array, spacing, origin
