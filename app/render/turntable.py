"""A turning 3D view for movies: one volume per frame, seen from a camera that circles it.

``TurntableStyle.scene`` makes a frame's data (the rendering grid and, for an isosurface, the surface)
and may run on a worker thread; ``Turntable`` renders off screen into its own VTK window, so it must
run on the UI thread (the thread that owns the app's OpenGL contexts), one frame at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyvista as pv

from engine.api import Volume

from ..state import RenderMode
from .scene3d import add_3d, add_surface, isosurface, isosurface_value, rendering_grid, volume_presets
from .slices import BACKGROUND, Grid
from .window_level import WindowLevel, default_window

FRAME_SIZE = (384, 384)  # multiples of 16 for MP4 encoders


@dataclass(frozen=True)
class TurntableScene:
    """One frame's data, ready to draw: the grid for 3D rendering, or the finished isosurface."""

    image: pv.ImageData
    bounds: tuple[float, ...]
    mode: str
    window: WindowLevel
    preset: dict
    iso_value: float
    surface: pv.PolyData | None = None


class TurntableStyle:
    """The panes' 3D mode (volume rendering, isosurface, MIP) for a whole movie: the transfer function,
    window and iso level come from the first frame, so that frames compare."""

    def __init__(
        self,
        mode: str,
        window: WindowLevel | None,
        preset: int = 0,
        iso_value: float | None = None,
        modality: str = "",
    ):
        self.mode, self.window, self.preset, self.iso_value, self.modality = mode, window, preset, iso_value, modality
        self._fixed: tuple[WindowLevel, dict, float] | None = None

    def scene(self, volume: Volume) -> TurntableScene:
        """The frame's data (numpy and VTK data objects only, no drawing: safe on a worker thread)."""
        if self._fixed is None:
            presets = volume_presets(volume, self.modality)
            iso = self.iso_value if self.iso_value is not None else isosurface_value(volume, self.modality)
            window = self.window or default_window(volume, self.modality)
            self._fixed = (window, presets[min(self.preset, len(presets) - 1)], iso)
        window, preset, iso = self._fixed
        grid = Grid.from_volume(volume)
        image = rendering_grid(grid)
        surface = isosurface(image, iso) if self.mode == RenderMode.ISOSURFACE else None
        return TurntableScene(image, tuple(grid.bounds), self.mode, window, preset, iso, surface)


class Turntable:
    """Off-screen renderer of prepared frames (``TurntableStyle.scene``)."""

    def __init__(self, size: tuple[int, int] = FRAME_SIZE):
        self.plotter = pv.Plotter(off_screen=True, window_size=size)
        self.plotter.set_background(BACKGROUND)
        self._actors: list = []

    def frame(self, scene: TurntableScene, angle_deg: float) -> np.ndarray:
        """``scene`` seen from ``angle_deg`` around the vertical (S) axis, as an RGB array."""
        p = self.plotter
        for actor in self._actors:
            p.remove_actor(actor, render=False)
        if scene.surface is not None:
            self._actors = add_surface(p, scene.surface)
        else:
            self._actors = add_3d(p, scene.image, scene.mode, scene.window, scene.preset, scene.iso_value)
        p.view_isometric()
        p.reset_camera(bounds=scene.bounds)
        p.camera.zoom(1.3)
        p.camera.Azimuth(angle_deg)
        p.render()
        return p.screenshot(None, return_img=True).copy()

    def close(self) -> None:
        self.plotter.close()
