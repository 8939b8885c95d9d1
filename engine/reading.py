"""Reading a volume from a path: a NIfTI file or a folder holding a DICOM series (one entry point)."""

from __future__ import annotations

import os
from pathlib import Path

from .dicom_read import holds_dicom, load_dicom_series
from .errors import VolumeError
from .nifti import is_nifti_path, load_nifti
from .volume import Volume


def read_volume(path: str | os.PathLike, series: str | None = None) -> Volume:
    """A NIfTI file, or the DICOM series in a folder (``series``: its UID when the folder holds several)."""
    path = Path(path)
    if path.is_dir():
        return load_dicom_series(path, series)
    if series is not None:
        raise VolumeError(f"{path}: a series UID applies to a folder of DICOM files only")
    if is_nifti_path(path) or not path.exists():
        return load_nifti(path)
    if path.suffix.lower() == ".dcm" or holds_dicom(path.parent):
        raise VolumeError(f"{path}: one DICOM image; give the folder that holds the whole series")
    raise VolumeError(f"{path}: neither a NIfTI file (.nii, .nii.gz) nor a folder of DICOM files")


def find_volume_sources(root: str | os.PathLike) -> list[Path]:
    """NIfTI files and folders holding DICOM files under ``root`` (recursively, hidden names skipped)."""
    root = Path(root)
    found = [root] if holds_dicom(root) else []
    for path in root.rglob("*"):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if (path.is_file() and is_nifti_path(path.name)) or (path.is_dir() and holds_dicom(path)):
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def is_volume_source(path: str | os.PathLike) -> bool:
    """A NIfTI file name or a folder holding DICOM files."""
    path = Path(path)
    return is_nifti_path(path) if not path.is_dir() else holds_dicom(path)
