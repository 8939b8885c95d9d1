"""A turning 3D view for movies: one volume per frame, seen from a camera that circles it.

It renders off screen into its own VTK window, so it must run on the UI thread (the thread that
owns the app's OpenGL contexts), one frame at a time; the panel drives it from a timer.
"""

from __future__ import annotations

import numpy as np
import pyvista as pv

from engine.api import Volume

from .scene3d import add_3d, isosurface_value, rendering_grid, volume_presets
from .slices import BACKGROUND, Grid
from .window_level import WindowLevel

FRAME_SIZE = (384, 384)  # multiples of 16 for MP4 encoders


class Turntable:
    """Off-screen renderer of the 3D view in the panes' modes (volume rendering, isosurface, MIP)."""

    def __init__(
        self,
        mode: str,
        window: WindowLevel,
        preset: int = 0,
        iso_value: float | None = None,
        modality: str = "",
        size: tuple[int, int] = FRAME_SIZE,
    ):
        self.mode, self.window, self.preset, self.iso_value, self.modality = mode, window, preset, iso_value, modality
        self.plotter = pv.Plotter(off_screen=True, window_size=size)
        self.plotter.set_background(BACKGROUND)
        self._actors: list = []
        self._style: tuple[dict, float] | None = None  # transfer function and iso level of the first frame

    def frame(self, volume: Volume, angle_deg: float) -> np.ndarray:
        """``volume`` seen from ``angle_deg`` around the vertical (S) axis, as an RGB array."""
        p = self.plotter
        for actor in self._actors:
            p.remove_actor(actor, render=False)
        grid = Grid.from_volume(volume)
        if self._style is None:  # one transfer function for the whole movie, so frames compare
            presets = volume_presets(volume, self.modality)
            iso = self.iso_value if self.iso_value is not None else isosurface_value(volume, self.modality)
            self._style = (presets[min(self.preset, len(presets) - 1)], iso)
        self._actors = add_3d(p, rendering_grid(grid), self.mode, self.window, *self._style)
        p.view_isometric()
        p.reset_camera(bounds=grid.bounds)
        p.camera.zoom(1.3)
        p.camera.Azimuth(angle_deg)
        p.render()
        return p.screenshot(None, return_img=True).copy()

    def close(self) -> None:
        self.plotter.close()
