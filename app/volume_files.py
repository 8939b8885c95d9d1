"""Opening and exporting NIfTI volumes and DICOM series from the app (File menu); reading and writing run as jobs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QInputDialog, QWidget

from engine.api import (
    SeriesInfo,
    SeveralSeriesError,
    Volume,
    is_nifti_path,
    load_dicom_series,
    load_nifti,
    save_dicom_series,
    save_nifti,
)

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

    def read(progress) -> Volume:
        progress(0, 0, f"reading {path.name}")
        return load_nifti(path)

    _show_in_background(context, path, read, f"Opened {path.name}")


def _show_in_background(context: AppContext, path: Path, read, message: str, otherwise=None) -> None:
    """Read a file volume as a job (``read(progress) -> Volume``), window it off the UI thread,
    then show it through the state's one path for volumes from files. Anything else ``read``
    returns goes to ``otherwise`` on the UI thread (e.g. the series of a folder holding several)."""

    def work(progress):
        volume = read(progress)
        return (volume, file_window(volume)) if isinstance(volume, Volume) else volume

    def done(result) -> None:
        if not isinstance(result, tuple):
            otherwise(result)
            return
        volume, window = result
        context.state.show_file(volume, str(path), window)
        context.show_message(message)

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


def choose_series(parent: QWidget, series: list[SeriesInfo]) -> str | None:
    """Ask which of several series to open: its UID, or None when the user cancels."""
    labels = [f"{s.label()} — {s.uid}" for s in series]  # the UID keeps look-alike series apart
    prompt = "This folder holds several series:"
    label, ok = QInputDialog.getItem(parent, "Choose a DICOM series", prompt, labels, 0, False)
    return series[labels.index(label)].uid if ok and label in labels else None


def open_dicom_series(context: AppContext, folder: str | os.PathLike, series: str | None = None) -> None:
    """Read a DICOM series folder in the background: one job reads the headers, then the images;
    when the folder holds several series, ``choose_series`` asks which and a second job reads it."""
    folder = Path(folder)

    def read(progress) -> Volume | list[SeriesInfo]:
        try:
            return load_dicom_series(folder, series, progress)
        except SeveralSeriesError as several:
            return several.series

    def choose(found: list[SeriesInfo]) -> None:
        chosen = choose_series(context.window, found)
        if chosen is not None:
            open_dicom_series(context, folder, chosen)

    _show_in_background(context, folder, read, f"Opened the DICOM series in {folder.name}", choose)


def export_dicom(context: AppContext, part: str, folder: str | os.PathLike) -> None:
    """Write the shown part as a DICOM series into a new folder (CT or MR by the model's modality)."""
    volume = context.state.volumes.get(part)
    if volume is None:
        context.report_error(f"there is no {part} volume to export yet")
        return
    folder = Path(folder)
    model = context.state.model
    modality = model.card.modality if model is not None else ""

    def work(progress):
        return save_dicom_series(
            volume, folder, modality, lambda done, total: progress(done, total, f"writing image {done + 1}/{total}")
        )

    context.jobs.submit(
        f"export {part}",
        f"Exporting {folder.name}",
        work,
        lambda written: context.show_message(f"Wrote the DICOM series {written}"),
        context.report_error,
        pool=BACKGROUND,
    )
