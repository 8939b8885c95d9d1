"""The real set for an evaluation: a folder of NIfTI files or of preprocessed ``.npy`` arrays.

Every volume comes out as the network sees its own samples: a (1, 1, S, S, S) float32 tensor in
[-1, 1], (D, H, W) = NIfTI (k, j, i) after reorienting to RAS.

- NIfTI (``.nii``/``.nii.gz``): read with ``load_nifti`` (physical units), reoriented to RAS,
  mapped with the model card's intensity mapping and clipped to [-1, 1], then resampled to S^3
  (area averaging when every axis shrinks, trilinear otherwise; the aspect ratio is not kept).
- ``.npy`` (the preprocessing output): float16/float32 arrays already in network layout and range;
  with a ``manifest.json`` the files it lists are used, otherwise every ``*.npy`` in the folder.
  When the manifest records an intensity window that differs from the model's, values are
  mapped through physical units to the model's window (percentile-scaled MRI arrays are used as-is).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, VolumeError
from ..nifti import is_nifti_path, load_nifti
from ..volume import IntensityMapping

MANIFEST = "manifest.json"
_MANIFEST_LISTS = ("files", "volumes", "entries", "items")
_MANIFEST_NAMES = ("file", "path", "array", "output", "npy", "name")


@dataclass(frozen=True)
class RealSet:
    """The files of a real set, in a fixed (sorted or manifest) order."""

    folder: Path
    files: tuple[Path, ...]
    kind: str  # "nifti" or "npy"
    stored: IntensityMapping | None = None  # the window .npy arrays were written with, when known

    def __len__(self) -> int:
        return len(self.files)

    def fingerprint(self) -> str:
        """SHA-256 over each file's relative name, size and modification time (not its bytes)."""
        digest = hashlib.sha256(self.kind.encode())
        for path in self.files:
            stat = path.stat()
            digest.update(f"|{path.relative_to(self.folder)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        return "sha256:" + digest.hexdigest()

    def load(self, index: int, resolution: int, intensity: IntensityMapping) -> torch.Tensor:
        """Volume ``index`` as a (1, 1, S, S, S) float32 tensor in [-1, 1]."""
        path = self.files[index]
        if self.kind == "npy":
            array = _load_npy(path)
            if self.stored is not None and self.stored != intensity:
                array = np.clip(intensity.to_network(self.stored.to_physical(array)), -1.0, 1.0).astype(np.float32)
        else:
            array = _load_nifti_network(path, intensity)
        return resample_cube(torch.from_numpy(array)[None, None], resolution)


def find_real_set(folder: str | os.PathLike) -> RealSet:
    """List a real-set folder: ``.npy`` files (via manifest.json when present) or NIfTI files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: the real set must be a folder of NIfTI or .npy files")
    manifest = _read_json(folder / MANIFEST)
    listed = _manifest_files(manifest)
    if listed:
        missing = [name for name in listed if not (folder / name).is_file()]
        if missing:
            raise ConfigError(f"{folder / MANIFEST}: lists {len(missing)} missing file(s), e.g. {missing[0]}")
        return RealSet(folder, tuple(folder / name for name in listed), "npy", _manifest_window(manifest))
    arrays = sorted(folder.glob("*.npy"))
    if arrays:
        return RealSet(folder, tuple(arrays), "npy", _manifest_window(manifest))
    volumes = sorted(p for p in folder.iterdir() if p.is_file() and is_nifti_path(p))
    if not volumes:
        raise ConfigError(f"{folder}: no NIfTI (.nii, .nii.gz) or .npy files here")
    return RealSet(folder, tuple(volumes), "nifti")


def resample_cube(volume: torch.Tensor, size: int) -> torch.Tensor:
    """(1, 1, D, H, W) -> (1, 1, size, size, size): area averaging when shrinking, else trilinear."""
    if tuple(volume.shape[2:]) == (size,) * 3:
        return volume.float().contiguous()
    volume = volume.float()
    if all(s >= size for s in volume.shape[2:]):
        return F.adaptive_avg_pool3d(volume, size)
    return F.interpolate(volume, size=(size,) * 3, mode="trilinear", align_corners=False)


def _read_json(path: Path):
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _manifest_window(manifest) -> IntensityMapping | None:
    """The physical window of the stored arrays (manifest 'intensity' of kind 'window'), if recorded."""
    intensity = manifest.get("intensity") if isinstance(manifest, dict) else None
    if not isinstance(intensity, dict) or intensity.get("kind", "window") != "window":
        return None
    try:
        return IntensityMapping.from_dict(intensity)
    except (KeyError, TypeError, ValueError, VolumeError):
        return None


def _manifest_files(data) -> list[str] | None:
    """Names of .npy files a manifest lists (a list, or a dict holding one), or None."""
    if isinstance(data, dict):
        data = next((data[key] for key in _MANIFEST_LISTS if isinstance(data.get(key), list)), None)
    if not isinstance(data, list):
        return None
    names = []
    for entry in data:
        if isinstance(entry, dict):
            entry = next((entry[key] for key in _MANIFEST_NAMES if isinstance(entry.get(key), str)), None)
        if isinstance(entry, str) and entry.endswith(".npy"):
            names.append(entry)
    return names or None


def _load_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise VolumeError(f"{path}: not a readable .npy array ({str(error).splitlines()[0][:200]})") from None
    while array.ndim > 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise VolumeError(f"{path}: a single 3-D volume is needed, this array has shape {array.shape}")
    array = np.asarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise VolumeError(f"{path}: holds NaN or infinite values")
    return array


def _load_nifti_network(path: Path, intensity: IntensityMapping) -> np.ndarray:
    """A NIfTI file -> (D, H, W) float32 in [-1, 1] by the model's intensity mapping, RAS order."""
    volume = load_nifti(path)
    if min(volume.array.shape) < 2:
        raise VolumeError(f"{path}: a volume needs at least 2 voxels along every axis, got {volume.array.shape}")
    if float(volume.array.min()) == float(volume.array.max()):
        raise VolumeError(f"{path}: every voxel has the same value ({float(volume.array.min()):g})")
    to_ras = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(volume.affine), nib.orientations.axcodes2ornt("RAS")
    )
    array = nib.orientations.apply_orientation(volume.array, to_ras)
    network = np.clip(intensity.to_network(array), -1.0, 1.0).transpose(2, 1, 0)
    return np.ascontiguousarray(network, dtype=np.float32)
