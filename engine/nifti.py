"""NIfTI reading and writing (nibabel), with a JSON provenance sidecar.

Exports are float32 in physical units with the volume's affine, a description that marks them
as synthetic, and ``<name>.json`` beside them. Importing an exported file gives back the same array.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from . import __version__
from .atomic import atomic_write
from .errors import VolumeError, clean_text, first_line
from .validation import check_affine, check_volume_memory, is_our_sidecar
from .volume import RAW, IntensityMapping, Volume

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def is_nifti_path(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def sidecar_path(path: str | os.PathLike) -> Path:
    """``scan.nii.gz`` -> ``scan.json``."""
    path = Path(path)
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(name + ".json")


def save_nifti(volume: Volume, path: str | os.PathLike, description: str = "SYNTHETIC") -> Path:
    """Write ``volume`` to ``path`` (.nii or .nii.gz) and its provenance to the JSON sidecar.

    Both files are written to a temporary name first and then renamed, so a crash never leaves
    a half-written file under the final name.
    """
    path = Path(path)
    if not is_nifti_path(path):
        raise VolumeError(f"{path}: a NIfTI file name ends in .nii or .nii.gz")
    if not path.parent.exists():
        raise VolumeError(f"{path}: folder {path.parent} does not exist")
    if not _all_finite(volume.array):
        raise VolumeError(f"{path}: refusing to write a volume with NaN or infinite values")
    check_affine(volume.affine, str(path))
    sidecar_file = sidecar_path(path)
    if sidecar_file.exists() and not is_our_sidecar(sidecar_file):
        raise VolumeError(f"{sidecar_file}: exists and is not a sidecar written by this engine; not replacing it")

    image = nib.Nifti1Image(volume.array.astype(np.float32, copy=False), volume.affine)
    header = image.header
    header.set_xyzt_units("mm")
    header["descrip"] = description.encode("ascii", "replace")[:79]
    header["cal_min"] = volume.intensity.low
    header["cal_max"] = volume.intensity.high
    image.set_sform(volume.affine, code="aligned")
    image.set_qform(volume.affine, code="aligned")

    sidecar = {
        "synthetic": volume.provenance.get("synthetic", True),
        "description": description,
        "intensity": {**volume.intensity.to_dict(), "network_range": [-1.0, 1.0]},
        "spacing_mm": list(volume.spacing),
        "orientation": "RAS",
        "provenance": volume.provenance,
        "engine_version": __version__,
        "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    _atomic_write(path, lambda tmp: nib.save(image, tmp))
    _atomic_write(sidecar_file, lambda tmp: Path(tmp).write_text(json.dumps(sidecar, indent=2)))
    return path


def load_nifti(path: str | os.PathLike) -> Volume:
    """Read a 3-D NIfTI volume; the sidecar (if any) supplies the intensity mapping and provenance."""
    path = Path(path)
    if not path.exists():
        raise VolumeError(f"{path}: no such file")
    if path.is_dir():
        raise VolumeError(f"{path}: is a folder, not a NIfTI file")
    try:
        image = nib.load(str(path))
    except Exception as error:  # nibabel raises many types for damaged files
        raise VolumeError(f"{path}: not a readable NIfTI file ({first_line(error)})") from None
    check_nifti_header(image, str(path))
    try:
        array = image.get_fdata(dtype=np.float32)
    except Exception as error:
        raise VolumeError(f"{path}: not a readable NIfTI file ({first_line(error)})") from None
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise VolumeError(f"{path}: a single 3-D volume is needed, this image has shape {array.shape}")
    bad = int(array.size - np.isfinite(array).sum())
    if bad:
        raise VolumeError(f"{path}: {bad} voxels are NaN or infinite")

    intensity, provenance = RAW, {}
    sidecar = sidecar_path(path)
    if sidecar.exists():
        try:
            meta = json.loads(sidecar.read_text())
            intensity = IntensityMapping.from_dict(meta["intensity"])
            provenance = {key: _clean_value(value) for key, value in dict(meta.get("provenance", {})).items()}
        except (ValueError, KeyError, TypeError, AttributeError, VolumeError) as error:
            raise VolumeError(f"{sidecar}: unreadable sidecar ({first_line(error)})") from None
    provenance.setdefault("source_file", str(path))
    return Volume(array, image.affine, intensity, provenance)


def _clean_value(value):
    """Sidecar text as safe to print as the numbers beside it."""
    return clean_text(value, 500) if isinstance(value, str) else value


def check_nifti_header(image, where: str) -> None:
    """Refuse, from the header alone, what cannot be read safely: complex or unknown data, a volume
    too large for the memory available, a degenerate affine."""
    dtype = np.dtype(image.get_data_dtype())
    if dtype.kind not in "biuf":
        raise VolumeError(f"{where + ': ' if where else ''}voxel type {dtype} is not supported (real numbers only)")
    check_volume_memory(tuple(int(n) for n in image.shape), where)
    check_affine(image.affine, where)


def _all_finite(array: np.ndarray) -> bool:
    """No NaN or infinity: the sum is finite only then (one pass, no mask), unless it overflows."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(array.sum())) or bool(np.isfinite(array).all())


def _atomic_write(path: Path, write) -> None:
    # keep the real extension: nibabel decides on compression from it
    suffix = next((s for s in NIFTI_SUFFIXES if path.name.lower().endswith(s)), path.suffix)
    atomic_write(path, write, suffix=suffix, fsync=True)
