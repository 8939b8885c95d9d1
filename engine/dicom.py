"""DICOM export: a Volume as a series of single-frame images (pydicom), marked as synthetic.

Geometry: the volume's RAS affine is converted to DICOM's LPS patient frame (x and y negated).
Each k-plane is one image; columns run along i and rows along j, each flipped where that makes
the image's row and column directions point toward +x / +y in LPS (so viewers that ignore the
orientation still show the usual radiological picture). ImagePositionPatient is the LPS centre
of the first pixel of each plane. Values: CT as int16 HU (slope 1, intercept 0), anything else
as int16 with a slope and intercept that span the volume's range (16 bits of precision).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from . import __version__
from .enums import Part
from .errors import VolumeError
from .volume import Volume

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
PRESETS_FILE = Path(__file__).resolve().parents[1] / "resources" / "presets" / "viewing.json"
SERIES_NUMBERS = {Part.FULL: 1, Part.STITCHED: 1, Part.ANCHOR: 2, Part.SLAB: 3}
INT16 = np.iinfo(np.int16)
SOFTWARE = "GAN Volume Explorer"


def dicom_modality(volume: Volume, modality: str = "") -> str:
    """'CT' for HU volumes or CT models, otherwise 'MR'."""
    return "CT" if volume.intensity.unit == "HU" or modality.lower() == "ct" else "MR"


def slice_geometry(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    """LPS direction cosines of image rows and columns, and which of axes (i, j) are flipped on write."""
    lps = RAS_TO_LPS @ np.asarray(affine, dtype=np.float64)[:3, :3]
    flips = []
    cosines = []
    for axis in (0, 1):  # i -> along a row (columns), j -> down a column (rows)
        direction = lps[:, axis] / np.linalg.norm(lps[:, axis])
        flip = bool(direction[np.argmax(np.abs(direction))] < 0)
        flips.append(flip)
        cosines.append(-direction if flip else direction)
    return cosines[0], cosines[1], flips


def default_window(volume: Volume, modality: str) -> tuple[float, float]:
    """(centre, width) of the modality's first viewing preset: a fixed window or volume percentiles."""
    key = "ct" if modality == "CT" else "mri"
    try:
        entry = json.loads(PRESETS_FILE.read_text()).get(key, [])[0]
    except (OSError, ValueError, IndexError):
        entry = {"auto": [1, 99]}
    if "auto" in entry:
        low, high = (float(v) for v in np.percentile(volume.array, entry["auto"]))
        width = high - low if high > low else max(abs(low), 1.0)
        return low + width / 2.0, width
    return float(entry["level"]), float(entry["width"])


def stored_values(array: np.ndarray, hounsfield: bool) -> tuple[np.ndarray, float, float]:
    """(int16 array, slope, intercept) with stored * slope + intercept ~ the physical values.

    HU are stored as whole HU (slope 1); anything else spans its range with 16 bits.
    """
    low, high = float(array.min()), float(array.max())
    if hounsfield and INT16.min <= low and high <= INT16.max:
        slope, intercept = 1.0, 0.0
    else:
        intercept = (high + low) / 2.0
        slope = (high - low) / (INT16.max - INT16.min - 2) if high > low else 1.0
    stored = np.rint((array - intercept) / slope)
    return np.clip(stored, INT16.min, INT16.max).astype(np.int16), slope, intercept


def frame_of_reference_uid(provenance: dict) -> str:
    """The same UID for every part (anchor, slabs, full) of one latent: model, latent and truncation."""
    if not provenance.get("synthetic"):
        return generate_uid()
    latent = provenance.get("seed") if provenance.get("seed") is not None else provenance.get("latent")
    sources = [str(provenance.get(key)) for key in ("model_hash", "truncation", "class_label")]
    return generate_uid(entropy_srcs=["gan-volume-explorer", *sources, json.dumps(latent)])


def provenance_summary(volume: Volume) -> dict:
    """What the image comments record about where the volume came from (no file names: they may identify)."""
    p = volume.provenance
    keys = ("model", "model_hash", "seed", "latent_origin", "truncation", "class_label", "operation")
    summary = {key: p[key] for key in keys if p.get(key) is not None}
    if str(summary.get("latent_origin", "")).startswith("encoded "):
        summary["latent_origin"] = "encoded from a scan"  # a scan's file name may identify a person
    if p.get("latent") is not None:
        summary["latent_sha256"] = hashlib.sha256(json.dumps(p["latent"]).encode()).hexdigest()
    summary["engine_version"] = __version__
    return summary


def save_dicom_series(
    volume: Volume, folder: str | os.PathLike, modality: str = "", progress: Callable[[int, int], None] | None = None
) -> Path:
    """Write ``volume`` as a DICOM series into ``folder`` (one IM*.dcm file per k-plane), atomically.

    The files are written into a temporary folder beside ``folder`` that is then renamed; an
    earlier export in ``folder`` (only .dcm files) is replaced, any other content refuses.
    ``progress(done, total)`` is called before each file; an exception it raises stops the export.
    """
    folder = Path(folder)
    if not folder.parent.is_dir():
        raise VolumeError(f"{folder}: folder {folder.parent} does not exist")
    if folder.exists() and (not folder.is_dir() or any(p.suffix.lower() != ".dcm" for p in folder.iterdir())):
        raise VolumeError(f"{folder}: exists and is not an earlier DICOM export (only .dcm files); choose a new folder")
    if not np.isfinite(volume.array).all():
        raise VolumeError(f"{folder}: refusing to write a volume with NaN or infinite values")
    kind = dicom_modality(volume, modality)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        total = volume.array.shape[2]
        for done, (name, dataset) in enumerate(_datasets(volume, kind)):
            if progress is not None:
                progress(done, total)
            dataset.save_as(tmp / name, enforce_file_format=True)
        os.chmod(tmp, 0o777 & ~_umask())
        if folder.exists():
            old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old."))
            os.replace(folder, old / "series")
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _datasets(volume: Volume, kind: str):
    """(file name, dataset) for each k-plane of the volume; the same dataset object, to be written at once."""
    affine = volume.affine
    row_cosines, column_cosines, flips = slice_geometry(affine)
    array = volume.array
    for axis, flip in enumerate(flips):
        if flip:
            array = np.flip(array, axis=axis)
    hounsfield = kind == "CT" and volume.intensity.unit == "HU"
    stored, slope, intercept = stored_values(array, hounsfield)
    si, sj, sk = volume.spacing
    ni, nj, nk = array.shape
    first = np.array([ni - 1 if flips[0] else 0, nj - 1 if flips[1] else 0, 0, 1], dtype=np.float64)
    centre, width = default_window(volume, kind)
    base = _common(volume, kind)
    base.ImageOrientationPatient = [_ds(v) for v in (*row_cosines, *column_cosines)]
    base.PixelSpacing = [_ds(sj), _ds(si)]  # (between rows, between columns)
    base.SliceThickness = _ds(sk)
    base.SpacingBetweenSlices = _ds(sk)
    base.RescaleSlope, base.RescaleIntercept = _ds(slope), _ds(intercept)
    base.RescaleType = "HU" if hounsfield else "US"
    base.WindowCenter, base.WindowWidth = _ds(centre), _ds(width)
    digits = max(4, len(str(nk)))
    ds = base  # one dataset, updated per plane and written before the next (no copies)
    for k in range(nk):
        ds.InstanceNumber = k + 1
        position = RAS_TO_LPS @ (affine @ (first + [0, 0, k, 0]))[:3]
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.SliceLocation = _ds(float(np.dot(position, np.cross(row_cosines, column_cosines))))
        ds.set_pixel_data(np.ascontiguousarray(stored[:, :, k].T), "MONOCHROME2", 16)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        yield f"IM{k + 1:0{digits}d}.dcm", ds


def _common(volume: Volume, kind: str) -> Dataset:
    """Attributes shared by every image of one export: identity, marking, study and series."""
    provenance = volume.provenance
    synthetic = bool(provenance.get("synthetic", False))
    model = "".join(c if c not in "^=\\" else "_" for c in str(provenance.get("model") or "model"))[:50]
    part = str(provenance.get("operation") or "volume").split("(")[0]
    summary = provenance_summary(volume)
    what = f"seed {summary['seed']}" if "seed" in summary else summary.get("latent_origin", "")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = CTImageStorage if kind == "CT" else MRImageStorage
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationVersionName = f"GANVE_{__version__}"[:16]
    ds.SpecificCharacterSet = "ISO_IR 192"
    if synthetic:
        ds.PatientName = f"SYNTHETIC^{model}"
        ds.PatientID = "SYN-" + (str(provenance.get("model_hash") or "unknown").split(":")[-1][:16] or "unknown")
        ds.SeriesDescription = f"SYNTHETIC {model} {part} {what}".strip()[:64]
        ds.ImageComments = (
            f"SYNTHETIC image made by the generative model {model}; not a patient. Provenance: {json.dumps(summary)}"
        )
    else:
        ds.PatientName, ds.PatientID = "ANONYMOUS", "ANONYMOUS"
        ds.SeriesDescription = f"DERIVED {part} exported by {SOFTWARE}"[:64]
        ds.ImageComments = f"DERIVED volume exported by {SOFTWARE}. Provenance: {json.dumps(summary)}"
    ds.PatientBirthDate = ds.PatientSex = ""
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = frame_of_reference_uid(provenance)
    ds.StudyDescription = ds.SeriesDescription
    ds.StudyDate = ds.StudyTime = ds.ReferringPhysicianName = ds.AccessionNumber = ds.StudyID = ""
    ds.Modality = kind
    ds.SeriesNumber = SERIES_NUMBERS.get(part, 4)
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = ""
    ds.ManufacturerModelName = SOFTWARE
    ds.SoftwareVersions = __version__
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.BurnedInAnnotation = "NO"
    ds.AcquisitionNumber = 1
    if kind == "CT":
        ds.KVP = ""
    else:
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "RM", "NONE", ""
        ds.MRAcquisitionType = "3D"
        ds.RepetitionTime = ds.EchoTime = ds.EchoTrainLength = ""
    return ds


def _ds(value: float) -> str:
    """A decimal string of at most 16 characters that keeps as many digits as fit."""
    value = 0.0 if abs(value) < 1e-12 else float(value)
    for digits in range(12, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{value:.1g}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
