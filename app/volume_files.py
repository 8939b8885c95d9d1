"""Opening and exporting NIfTI volumes from the app (File menu); the reading and writing run as jobs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.nifti import is_nifti_path, load_nifti, save_nifti
from engine.volume import Volume

from .context import AppContext
from .render.window_level import WindowLevel, default_window, percentile_window
from .workers import BACKGROUND

NIFTI_FILTER = "NIfTI volumes (*.nii.gz *.nii);;All files (*)"
FOREGROUND_SHARE = 0.05  # below this share of voxels above the minimum, window the whole volume


def file_window(volume: Volume) -> WindowLevel:
    """A file's own window, whatever model is loaded: the CT default for HU volumes, otherwise
    1–99 % of the foreground (the voxels above the volume's minimum, e.g. not the air around a head)."""
    if volume.intensity.unit == "HU":
        return default_window(volume, "ct")
    values = np.asarray(volume.array, dtype=np.float32).ravel()
    foreground = values[values > values.min()] if values.size else values
    return percentile_window(foreground if foreground.size >= FOREGROUND_SHARE * values.size else values)


def open_volume(context: AppContext, path: str | os.PathLike) -> None:
    """Read a NIfTI in the background and show it as the full volume (it has no anchor or slabs),
    with its own window and without the model's slab box."""
    path = Path(path)

    def work(progress):
        progress(0, 0, f"reading {path.name}")
        volume = load_nifti(path)
        return volume, file_window(volume)  # statistics off the UI thread too

    def done(result: tuple[Volume, WindowLevel]) -> None:
        volume, window = result
        context.state.show_file(volume, str(path), window)
        context.show_message(f"Opened {path.name}")

    context.jobs.submit("open volume", f"Opening {path.name}", work, done, context.report_error, pool=BACKGROUND)


def export_volume(context: AppContext, part: str, path: str | os.PathLike) -> None:
    """Write the shown part as NIfTI (physical units, its affine) plus the JSON provenance sidecar."""
    volume = context.state.volumes.get(part)
    if volume is None:
        context.report_error(f"there is no {part} volume to export yet")
        return
    path = Path(path)
    if not is_nifti_path(path):
        path = path.with_name(path.name + ".nii.gz")
    synthetic = bool(volume.provenance.get("synthetic", False))
    description = "SYNTHETIC" if synthetic else "exported by GAN Volume Explorer"

    def work(progress):
        progress(0, 0, f"writing {path.name}")
        return save_nifti(volume, path, description)

    context.jobs.submit(
        f"export {part}",
        f"Exporting {path.name}",
        work,
        lambda written: context.show_message(f"Wrote {written}"),
        context.report_error,
        pool=BACKGROUND,
    )
