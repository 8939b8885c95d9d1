"""Opening and exporting NIfTI volumes from the app (File menu); the reading and writing run as jobs."""

from __future__ import annotations

import os
from pathlib import Path

from engine.api import Volume, is_nifti_path, load_nifti, save_nifti

from .context import AppContext
from .workers import BACKGROUND

NIFTI_FILTER = "NIfTI volumes (*.nii.gz *.nii);;All files (*)"


def open_volume(context: AppContext, path: str | os.PathLike) -> None:
    """Read a NIfTI in the background and show it as the full volume (it has no anchor or slabs)."""
    path = Path(path)

    def work(progress):
        progress(0, 0, f"reading {path.name}")
        return load_nifti(path)

    def done(volume: Volume) -> None:
        context.state.set_volumes({"full": volume}, replace=True)
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
