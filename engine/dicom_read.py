"""DICOM import: a folder holding a series of single-frame images -> a Volume (RAS, physical units).

Slices are ordered by their position projected on the slice normal (row x column cosines),
never by file name. A series is refused, with the file and the cause, when its slices disagree
in orientation or size, leave a gap, repeat a position, are unevenly spaced or shifted in-plane
(gantry tilt), when a file is multi-frame, truncated, or compressed without an installed decoder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.misc import is_dicom
from pydicom.pixels import apply_rescale, get_decoder

from .card import CT_WINDOW
from .errors import VolumeError, first_line
from .volume import RAW, Volume

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
ORIENTATION_TOLERANCE = 1e-4  # direction cosines
SPACING_TOLERANCE = 0.01  # fraction of the slice spacing
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
Progress = Callable[[int, int, str], None]  # (done, total, what); may raise to stop the reading


class SeveralSeriesError(VolumeError):
    """A folder holds more than one series; ``series`` lists them so the caller can ask which."""

    def __init__(self, folder: Path, series: list[SeriesInfo], advice: str = "choose one with --series UID"):
        self.folder, self.series = folder, series
        listed = "; ".join(f"{s.uid} ({s.description or 'no description'}, {s.count} images)" for s in series)
        super().__init__(f"{folder}: holds {len(series)} DICOM series; {advice}: {listed}")

    def with_advice(self, advice: str) -> SeveralSeriesError:
        """The same error with other advice (for commands that take one series per folder)."""
        return SeveralSeriesError(self.folder, self.series, advice)


@dataclass(frozen=True)
class SeriesInfo:
    """One series in a folder, as a chooser lists it."""

    uid: str
    description: str
    modality: str
    count: int
    number: int | None = None

    def label(self) -> str:
        number = f"#{self.number} " if self.number is not None else ""
        return f"{number}{self.description or 'no description'} ({self.modality}, {self.count} images)"


def dicom_files(folder: str | os.PathLike) -> list[Path]:
    """The DICOM files directly in ``folder`` (by the 'DICM' preamble or a .dcm name), hidden names skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VolumeError(f"{folder}: no such folder")
    return sorted(
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.is_file() and (p.suffix.lower() == ".dcm" or is_dicom(p))
    )


def holds_dicom(folder: str | os.PathLike) -> bool:
    """True when the folder itself (not a sub-folder) contains DICOM files."""
    try:
        return bool(dicom_files(folder))
    except (VolumeError, OSError):
        return False


def list_series(folder: str | os.PathLike, progress: Progress | None = None) -> list[SeriesInfo]:
    """The image series in ``folder`` (headers only), ordered by series number.

    ``progress(done, total, what)`` is called before each file's header is read.
    """
    return _series_infos(_group(_headers(Path(folder), progress)))


def _series_infos(groups: dict[str, list[tuple[Path, pydicom.Dataset]]]) -> list[SeriesInfo]:
    infos = []
    for uid, headers in groups.items():
        ds = headers[0][1]
        number = ds.get("SeriesNumber")
        infos.append(
            SeriesInfo(uid, str(ds.get("SeriesDescription", "")), str(ds.get("Modality", "")), len(headers), number)
        )
    return sorted(infos, key=lambda s: (s.number is None, s.number or 0, s.uid))


def load_dicom_series(folder: str | os.PathLike, series: str | None = None, progress: Progress | None = None) -> Volume:
    """Read one series from ``folder``; with several series present ``series`` (its UID) picks one.

    ``progress(done, total, what)`` is called before each file's header is read, then before each
    image's pixels are read.
    """
    folder = Path(folder)
    groups = _group(_headers(folder, progress))
    if series is None:
        if len(groups) > 1:
            raise SeveralSeriesError(folder, _series_infos(groups))
        series = next(iter(groups))
    elif series not in groups:
        raise VolumeError(f"{folder}: no series with UID {series} (found: {', '.join(groups)})")
    headers = groups[series]
    for path, ds in headers:
        _check_file(path, ds)
    stack, normal = _sorted_stack(headers)
    first_path, first = stack[0][1], stack[0][2]
    rows, columns = int(first.Rows), int(first.Columns)
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    for _, path, ds in stack:
        if (int(ds.Rows), int(ds.Columns)) != (rows, columns):
            raise VolumeError(f"{path}: {ds.Rows}x{ds.Columns} pixels, the series' first image has {rows}x{columns}")
        if not np.allclose([float(v) for v in ds.PixelSpacing], (row_spacing, column_spacing), rtol=1e-4):
            raise VolumeError(f"{path}: pixel spacing {list(ds.PixelSpacing)} differs from {first_path.name}'s")
    step = _slice_step(stack, first)
    array = np.empty((columns, rows, len(stack)), dtype=np.float32)
    for k, (_, path, ds) in enumerate(stack):
        if progress is not None:
            progress(k, len(stack), f"reading image {k + 1}/{len(stack)}")
        array[:, :, k] = _pixels(path, ds).T
    orientation = np.array([float(v) for v in first.ImageOrientationPatient])
    lps = np.eye(4)
    lps[:3, 0] = orientation[:3] * column_spacing
    lps[:3, 1] = orientation[3:] * row_spacing
    lps[:3, 2] = normal * step
    lps[:3, 3] = [float(v) for v in first.ImagePositionPatient]
    affine = np.eye(4)
    affine[:3] = LPS_TO_RAS @ lps[:3]
    image = nib.as_closest_canonical(nib.Nifti1Image(array, affine))
    return Volume(
        np.asarray(image.dataobj, dtype=np.float32), image.affine, _intensity(first), _provenance(folder, first)
    )


# -- reading ------------------------------------------------------------------------------------------


def _headers(folder: Path, progress: Progress | None = None) -> list[tuple[Path, pydicom.Dataset]]:
    """(path, header) of every image file in the folder; unreadable DICOM files name their cause."""
    files = dicom_files(folder)
    if not files:
        raise VolumeError(f"{folder}: no DICOM files here")
    headers = []
    for index, path in enumerate(files):
        if progress is not None:
            progress(index, len(files), f"reading header {index + 1}/{len(files)}")
        try:
            ds = pydicom.dcmread(path, defer_size=1024)  # large values (the pixels) are read when used
        except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as error:
            cause = first_line(error)
            raise VolumeError(f"{path}: not a readable DICOM file, truncated or damaged ({cause})") from None
        sop_class = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
        if "PixelData" not in ds:
            if "Image Storage" in getattr(sop_class, "name", "") or "Rows" in ds:
                raise VolumeError(f"{path}: truncated: an image without pixel data")
            continue  # a DICOMDIR or a non-image object (report, presentation state): not a slice
        if str(sop_class) == DICOMDIR_CLASS:
            continue
        if "SeriesInstanceUID" not in ds:
            raise VolumeError(f"{path}: lacks SeriesInstanceUID")
        headers.append((path, ds))
    if not headers:
        raise VolumeError(f"{folder}: no DICOM images here (only non-image objects)")
    return headers


def _group(headers: list[tuple[Path, pydicom.Dataset]]) -> dict[str, list[tuple[Path, pydicom.Dataset]]]:
    groups: dict[str, list] = {}
    for path, ds in headers:
        groups.setdefault(str(ds.SeriesInstanceUID), []).append((path, ds))
    return groups


def _check_file(path: Path, ds: pydicom.Dataset) -> None:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise VolumeError(f"{path}: a multi-frame image ({frames} frames); only single-frame series are supported")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise VolumeError(f"{path}: a colour image; only grey-scale series are supported")
    for keyword in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"):
        if keyword not in ds or not ds[keyword].value:
            raise VolumeError(f"{path}: lacks {keyword}, so its place in space is unknown")
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is not None and syntax.is_compressed:
        decoder = get_decoder(syntax)
        if decoder is None or not decoder.is_available:
            raise VolumeError(f"{path}: compressed as {syntax.name} and no decoder for it is installed")


def _sorted_stack(headers) -> tuple[list[tuple[float, Path, pydicom.Dataset]], np.ndarray]:
    """Slices sorted by their position along the normal; refuses mixed orientations."""
    first_path, first = headers[0]
    orientation = np.array([float(v) for v in first.ImageOrientationPatient])
    for path, ds in headers[1:]:
        other = np.array([float(v) for v in ds.ImageOrientationPatient])
        if not np.allclose(other, orientation, atol=ORIENTATION_TOLERANCE):
            raise VolumeError(
                f"{path}: orientation {_fmt(other)} differs from {first_path.name}'s {_fmt(orientation)} "
                "(mixed orientations in one series)"
            )
    normal = np.cross(orientation[:3], orientation[3:])
    if abs(np.linalg.norm(normal) - 1.0) > 1e-3:
        raise VolumeError(f"{first_path}: ImageOrientationPatient {_fmt(orientation)} is not two unit vectors at 90°")
    stack = sorted(
        ((float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient])), path, ds) for path, ds in headers),
        key=lambda item: item[0],
    )
    return stack, normal


def _slice_step(stack, first) -> float:
    """The one distance between neighbouring slices; refuses duplicates, gaps, uneven steps, tilt."""
    if len(stack) == 1:
        return float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)
    positions = np.array([d for d, _, _ in stack])
    steps = np.diff(positions)
    step = float(np.median(steps))
    for (_, p0, _), (d1, p1, _), gap in zip(stack, stack[1:], steps):
        if gap < 1e-3 * max(step, 1e-3):
            raise VolumeError(f"{p1}: duplicated position: {p0.name} lies at the same place ({d1:.3f} mm)")
    for (_, p0, _), (_, p1, _), gap in zip(stack, stack[1:], steps):
        missing = round(gap / step) - 1
        if missing >= 1 and abs(gap - (missing + 1) * step) <= SPACING_TOLERANCE * step:
            raise VolumeError(
                f"{p1}: {missing} missing slice(s) before it: a {gap:.3f} mm gap after {p0.name} "
                f"where the series steps {step:.3f} mm"
            )
        if abs(gap - step) > SPACING_TOLERANCE * step:
            raise VolumeError(f"{p1}: uneven spacing: {gap:.3f} mm after {p0.name}, the series steps {step:.3f} mm")
    # every position must lie on one line along the normal (no in-plane shift, i.e. no gantry tilt)
    origins = np.array([[float(v) for v in ds.ImagePositionPatient] for _, _, ds in stack])
    normal = np.cross(*np.array([float(v) for v in first.ImageOrientationPatient]).reshape(2, 3))
    expected = origins[0] + np.outer(positions - positions[0], normal)
    shift = np.linalg.norm(origins - expected, axis=1)
    worst = int(np.argmax(shift))
    if shift[worst] > max(1e-3, SPACING_TOLERANCE * step):
        raise VolumeError(
            f"{stack[worst][1]}: shifted {shift[worst]:.3f} mm in-plane from the line of the other slices "
            "(gantry tilt is not supported)"
        )
    return step


def _pixels(path: Path, ds: pydicom.Dataset) -> np.ndarray:
    """One image in physical values (rescale slope and intercept applied); its pixels are read now."""
    try:
        expected = int(ds.Rows) * int(ds.Columns) * int(ds.BitsAllocated) // 8
        syntax = ds.file_meta.get("TransferSyntaxUID")
        if (syntax is None or not syntax.is_compressed) and len(ds.get("PixelData", b"")) < expected:
            got = len(ds.get("PixelData", b""))
            raise VolumeError(f"{path}: truncated: {got} of {expected} bytes of pixel data")
        pixels = apply_rescale(ds.pixel_array, ds)
    except VolumeError:
        raise
    except Exception as error:  # pydicom and its decoders raise many types for damaged data
        raise VolumeError(f"{path}: cannot read the pixel data, truncated or damaged ({first_line(error)})") from None
    return np.asarray(pixels, dtype=np.float32)


def _intensity(ds: pydicom.Dataset):
    unit = str(ds.get("RescaleType", "")).upper()
    return CT_WINDOW if ds.get("Modality") == "CT" and unit in ("HU", "") else RAW


def _provenance(folder: Path, ds: pydicom.Dataset) -> dict:
    """The series' provenance: ours when its comments carry it, and where it was read from."""
    comments = str(ds.get("ImageComments", ""))
    provenance: dict = {}
    if "Provenance: " in comments:
        try:
            provenance = dict(json.loads(comments.split("Provenance: ", 1)[1]))
        except (ValueError, TypeError):
            provenance = {}
    provenance.pop("source_file", None)
    provenance["synthetic"] = comments.startswith("SYNTHETIC") or str(ds.get("SeriesDescription", "")).startswith(
        "SYNTHETIC"
    )
    provenance["source_file"] = str(folder)
    provenance["series_uid"] = str(ds.SeriesInstanceUID)
    return provenance


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
