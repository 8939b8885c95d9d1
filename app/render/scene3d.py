"""The 3D view of a volume: volume rendering (presets), isosurface or maximum intensity projection."""

from __future__ import annotations

import math

import numpy as np
import pyvista as pv

from engine.api import Volume

from ..state import RenderMode
from .slices import Grid
from .window_level import WindowLevel, modality_key, viewing_presets, voxel_sample

MAX_3D_SIZE = 128  # larger volumes are rendered in 3D from every n-th voxel (slices stay full-res)
# While the render window asks for at least this many frames per second (a moving slider, a
# camera drag), VTK casts fewer rays through the volume; the still frame after it is full quality.
INTERACTIVE_UPDATE_RATE = 15.0
STILL_UPDATE_RATE = 0.0001  # VTK's default still rate: no time limit, full quality
OPACITY_STEPS = 128  # samples of a transfer function given as points (not 256: pyvista takes those as 0-255)
ISO_SMOOTH_VOXELS = 1.0  # Gaussian blur before the isosurface: thin bone stays whole, noise and table go


def allow_coarse_interaction(actor) -> None:
    """Let the volume mapper trade image detail for speed in interactive frames (VTK's level of
    detail): on a software renderer the ray casting is most of a frame's cost."""
    mapper = actor.GetMapper()
    if hasattr(mapper, "SetInteractiveAdjustSampleDistances"):  # vtkSmartVolumeMapper
        mapper.SetInteractiveUpdateRate(INTERACTIVE_UPDATE_RATE / 2)
        mapper.SetInteractiveAdjustSampleDistances(True)


def rendering_grid(grid: Grid) -> pv.ImageData:
    """The grid for 3D rendering, strided down to at most MAX_3D_SIZE voxels per axis."""
    step = max(1, math.ceil(max(grid.shape) / MAX_3D_SIZE))
    if step == 1:
        return grid.image()
    array = np.ascontiguousarray(grid.array[::step, ::step, ::step])
    image = pv.ImageData(dimensions=array.shape, spacing=grid.spacing * step, origin=grid.origin)
    image.point_data["intensity"] = array.ravel(order="F")
    return image


def volume_presets(volume: Volume, modality: str = "") -> list[dict]:
    """Volume-rendering presets for the volume's kind, with percentile ranges made absolute."""
    key = modality_key(volume.intensity, modality)
    presets = []
    for entry in viewing_presets().get("volume_rendering", {}).get(key, []):
        entry = dict(entry)
        if "range_percentiles" in entry:
            sample = voxel_sample(volume.array)
            entry["range"] = [float(v) for v in np.percentile(sample, entry.pop("range_percentiles"))]
        if "opacity_points" in entry:  # [[value, opacity], ...] in physical units, linear in between
            values, opacities = zip(*entry.pop("opacity_points"), strict=True)
            entry["opacity"] = np.interp(np.linspace(*entry["range"], OPACITY_STEPS), values, opacities).tolist()
        presets.append(entry)
    return presets or [{"name": "Default", "range": _min_max(volume), "opacity": "sigmoid", "cmap": "gray"}]


def isosurface_value(volume: Volume, modality: str = "") -> float:
    """The default isosurface level (CT: bone at 300 HU; otherwise a percentile)."""
    entry = viewing_presets().get("isosurface", {}).get(modality_key(volume.intensity, modality), {})
    if "value" in entry:
        return float(entry["value"])
    percentile = float(entry.get("value_percentile", 60))
    return float(np.percentile(voxel_sample(volume.array), percentile))


def isosurface(image: pv.ImageData, iso_value: float) -> pv.PolyData:
    """The surface at ``iso_value`` with smooth normals: mesh extraction, no drawing, so it may run
    on a worker thread (the image must not be shared with anything that changes it)."""
    smoothed = image.gaussian_smooth(std_dev=ISO_SMOOTH_VOXELS, scalars="intensity")
    surface = smoothed.contour([iso_value], scalars="intensity")
    if surface.n_points:
        surface = surface.compute_normals(split_vertices=False, auto_orient_normals=False)
    return surface


def add_surface(plotter: pv.BasePlotter, surface: pv.PolyData) -> list:
    """Add an isosurface (from ``isosurface``) to the active renderer; returns its actors."""
    if surface.n_points == 0:
        return []
    # normals come with the surface: the mapper shades smoothly without computing them here
    return [plotter.add_mesh(surface, color="#e8dcc8", reset_camera=False, render=False)]


def add_3d(
    plotter: pv.BasePlotter,
    image: pv.ImageData,
    mode: str,
    window: WindowLevel,
    preset: dict,
    iso_value: float,
) -> list:
    """Add the 3D rendering of ``image`` in ``mode`` to the active renderer; returns its actors."""
    if mode == RenderMode.MIP:
        actor = plotter.add_volume(
            image,
            scalars="intensity",
            cmap="gray",
            clim=(window.low, window.high),
            opacity=[1.0, 1.0],
            blending="maximum",
            show_scalar_bar=False,
            reset_camera=False,
            render=False,  # the caller renders once, after every change
        )
        allow_coarse_interaction(actor)
        return [actor]
    if mode == RenderMode.ISOSURFACE:
        return add_surface(plotter, isosurface(image, iso_value))
    actor = plotter.add_volume(
        image,
        scalars="intensity",
        cmap=preset.get("cmap", "gray"),
        clim=tuple(preset["range"]),
        opacity=preset.get("opacity", "sigmoid"),
        shade=False,
        show_scalar_bar=False,
        reset_camera=False,
        render=False,
    )
    allow_coarse_interaction(actor)
    return [actor]


def _min_max(volume: Volume) -> list[float]:
    low, high = float(np.nanmin(volume.array)), float(np.nanmax(volume.array))
    return [low, high if high > low else low + 1.0]
