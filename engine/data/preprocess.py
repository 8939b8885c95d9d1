"""Preprocessing: folders of NIfTI files or DICOM series -> compact float16 arrays in network layout plus a manifest.

Each volume is reoriented to RAS, mapped to [-1, 1] (CT: a HU window; MRI: robust percentiles of the
foreground voxels, see ``foreground_threshold``), optionally trimmed of blank axial end slices,
resampled to S^3 with a Gaussian anti-aliasing prefilter wherever an axis shrinks (each axis
stretched to the cube, or resampled to a fixed spacing and centre-cropped/padded: ``resample``),
and written as ``<name>.npy`` of shape (D, H, W).
``manifest.json`` records the settings, per-file geometry and the intensity mapping for a model card.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from tqdm import tqdm

from .. import __version__
from ..atomic import atomic_write
from ..card import CT_WINDOW
from ..dicom_read import Progress as DicomProgress
from ..dicom_read import SeveralSeriesError, load_dicom_series
from ..errors import ConfigError, VolumeError, first_line
from ..nifti import NIFTI_SUFFIXES, check_nifti_header, is_nifti_path
from ..reading import find_volume_sources

MANIFEST = "manifest.json"
FORMAT = "engine-preprocessed/1"
DEFAULT_SIZE = 128
SIZE_RANGE = (4, 1024)
MRI_PERCENTILES = (0.5, 99.5)
FOREGROUND_FRACTION = 0.1  # foreground: above min + 10% of the way to the 99.5th percentile
RESAMPLE_MODES = ("stretch", "spacing")
MANIFEST_INTERVAL_S = 30.0  # a partial manifest is saved this often, so an interrupted run can resume


@dataclass(frozen=True)
class PreprocessSettings:
    """What preprocessing does; the same settings give the same arrays, on disk or on the fly."""

    modality: str = "ct"
    window: tuple[float, float] | None = None  # physical values of -1 and +1; None for MRI: percentiles
    size: int = DEFAULT_SIZE
    trim_blank: bool = False
    percentiles: tuple[float, float] = MRI_PERCENTILES
    # "stretch": every axis of the field of view onto the cube (aspect not kept, as HA-GAN's own
    # preprocessing); "spacing": resample to ``spacing_mm``, then centre-crop/pad to the cube.
    resample: str = "stretch"
    spacing_mm: tuple[float, float, float] | None = None  # along RAS i, j, k; needed by "spacing"
    # Training data's foreground percentiles (``percentiles``) in physical units, for arbitrary-unit
    # inputs (MRI) to a window-trained model: inputs are first rescaled so theirs match.
    reference: tuple[float, float] | None = None
    foreground_fraction: float = FOREGROUND_FRACTION

    def __post_init__(self) -> None:
        if self.modality not in ("ct", "mri"):
            raise ConfigError(f"modality must be 'ct' or 'mri', got '{self.modality}'")
        if not isinstance(self.size, int) or not SIZE_RANGE[0] <= self.size <= SIZE_RANGE[1]:
            raise ConfigError(f"size must be an integer from {SIZE_RANGE[0]} to {SIZE_RANGE[1]}, got {self.size}")
        window = self.window
        if window is None and self.modality == "ct":
            window = (CT_WINDOW.low, CT_WINDOW.high)
        if window is not None:
            low, high = (float(v) for v in window)
            if not (np.isfinite([low, high]).all() and high > low):
                raise ConfigError(f"window [{low:g}, {high:g}] must be finite with LOW < HIGH")
            window = (low, high)
        object.__setattr__(self, "window", window)
        low, high = (float(p) for p in self.percentiles)
        if not 0.0 <= low < high <= 100.0:
            raise ConfigError(f"percentiles ({low:g}, {high:g}) must satisfy 0 <= low < high <= 100")
        object.__setattr__(self, "percentiles", (low, high))
        if self.resample not in RESAMPLE_MODES:
            raise ConfigError(f"resample must be one of {', '.join(RESAMPLE_MODES)}, got '{self.resample}'")
        if self.spacing_mm is not None:
            spacing = tuple(float(v) for v in self.spacing_mm)
            if len(spacing) != 3 or not all(np.isfinite(v) and v > 0 for v in spacing):
                raise ConfigError(f"spacing_mm must be 3 positive numbers, got {self.spacing_mm}")
            object.__setattr__(self, "spacing_mm", spacing)
        elif self.resample == "spacing":
            raise ConfigError("resample 'spacing' needs spacing_mm")
        if self.reference is not None:
            ref_low, ref_high = (float(v) for v in self.reference)
            if not (np.isfinite([ref_low, ref_high]).all() and ref_high > ref_low):
                raise ConfigError(f"reference percentile values ({ref_low:g}, {ref_high:g}) must be finite, low < high")
            object.__setattr__(self, "reference", (ref_low, ref_high))
        if not 0.0 <= float(self.foreground_fraction) < 1.0:
            raise ConfigError(f"foreground_fraction must lie in [0, 1), got {self.foreground_fraction}")

    @property
    def uses_percentiles(self) -> bool:
        return self.window is None

    def intensity(self) -> dict:
        """The intensity mapping for a model card: physical values of network -1 and +1."""
        if self.uses_percentiles:
            lo, hi = self.percentiles
            return {"low": 0.0, "high": 1.0, "unit": "", "kind": "percentile", "percentiles": [lo, hi]}
        unit = "HU" if self.modality == "ct" else ""
        return {"low": self.window[0], "high": self.window[1], "unit": unit, "kind": "window"}

    def to_dict(self) -> dict:
        return {
            "modality": self.modality,
            "size": self.size,
            "window": "percentile" if self.uses_percentiles else list(self.window),
            "percentiles": list(self.percentiles) if self.uses_percentiles else None,
            "trim_blank": self.trim_blank,
            "orientation": "RAS",
            "layout": "DHW",
            "dtype": "float16",
            "resample": "gaussian prefilter sigma=(factor-1)/2 where shrinking, then linear",
            "geometry": self.resample,
            "spacing_mm": list(self.spacing_mm) if self.spacing_mm else None,
            "foreground": self.foreground_rule(),
            "reference_values": list(self.reference) if self.reference else None,
        }

    def foreground_rule(self) -> str:
        return f"above min + {self.foreground_fraction:g} x (99.5th percentile - min)"

    @classmethod
    def from_dict(cls, values: dict) -> PreprocessSettings:
        window = values.get("window")
        return cls(
            modality=str(values["modality"]),
            window=None if window in (None, "percentile") else tuple(window),
            size=int(values["size"]),
            trim_blank=bool(values.get("trim_blank", False)),
            percentiles=tuple(values.get("percentiles") or MRI_PERCENTILES),
            resample=str(values.get("geometry") or "stretch"),
            spacing_mm=tuple(values["spacing_mm"]) if values.get("spacing_mm") else None,
            reference=tuple(values["reference_values"]) if values.get("reference_values") else None,
            foreground_fraction=_fraction(values.get("foreground")),
        )


def _fraction(rule) -> float:
    """The fraction of a recorded foreground rule ('above min + 0.1 x ...'); old records: the default."""
    try:
        return float(str(rule).split("+")[1].split("x")[0])
    except (IndexError, ValueError):
        return FOREGROUND_FRACTION


# -- one volume -----------------------------------------------------------------------------------


@dataclass
class CanonicalVolume:
    """A volume read from disk and reoriented to RAS; spacing is along the canonical i, j, k."""

    array: np.ndarray
    spacing: tuple[float, float, float]
    source_shape: tuple[int, ...]
    source_spacing: tuple[float, float, float]
    source_orientation: str


def read_canonical(
    path: str | os.PathLike, series: str | None = None, progress: DicomProgress | None = None
) -> CanonicalVolume:
    """Read a 3-D NIfTI file (scaling applied) or a DICOM series folder and reorient it to RAS.

    A VolumeError gives the cause. ``progress`` follows a DICOM series' reading (see ``load_dicom_series``).
    """
    if Path(path).is_dir():
        volume = load_dicom_series(path, series, progress)
        array, affine = volume.array, volume.affine
    else:
        try:
            image = nib.load(str(path))
        except FileNotFoundError:
            raise VolumeError("no such file") from None
        except Exception as error:  # nibabel raises many types for damaged files
            raise VolumeError(f"not a readable NIfTI file ({first_line(error)})") from None
        check_nifti_header(image, "")  # size, affine and data type, before the data is read
        try:
            array = image.get_fdata(dtype=np.float32)  # applies scl_slope / scl_inter
            affine = np.asarray(image.affine, dtype=np.float64)
        except Exception as error:
            raise VolumeError(f"not a readable NIfTI file ({first_line(error)})") from None
    source_shape = tuple(int(n) for n in array.shape)
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise VolumeError(f"a single 3-D volume is needed, this image has shape {source_shape}")
    if min(array.shape) < 2:
        raise VolumeError(f"a volume needs at least 2 voxels along every axis, this one has shape {source_shape}")
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise VolumeError(f"{bad} voxels are NaN or infinite")
    low, high = float(array.min()), float(array.max())
    if low == high:
        raise VolumeError(f"every voxel has the same value ({low:g})")
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise VolumeError("the affine is degenerate (not invertible)")
    canonical = nib.as_closest_canonical(nib.Nifti1Image(array, affine))
    return CanonicalVolume(
        array=np.asarray(canonical.dataobj, dtype=np.float32),
        spacing=axis_lengths(canonical.affine),
        source_shape=source_shape,
        source_spacing=axis_lengths(affine),
        source_orientation="".join(nib.aff2axcodes(affine)),
    )


def axis_lengths(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along each array axis."""
    return tuple(float(s) for s in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))


def map_intensity(array: np.ndarray, settings: PreprocessSettings) -> tuple[np.ndarray, tuple[float, float]]:
    """Physical values -> [-1, 1] (clipped); returns the array and the (low, high) actually used."""
    if settings.uses_percentiles:
        low, high = foreground_percentiles(array, settings.percentiles, settings.foreground_fraction)
    else:
        low, high = settings.window
        if settings.reference is not None and settings.modality == "mri":
            # arbitrary units: the window applies once the input's foreground matches the training data's
            found = foreground_percentiles(array, settings.percentiles, settings.foreground_fraction)
            scale = (found[1] - found[0]) / (settings.reference[1] - settings.reference[0])
            low = found[0] + (low - settings.reference[0]) * scale
            high = found[0] + (high - settings.reference[0]) * scale
    out = np.subtract(array, np.float32(low), dtype=np.float32)
    out *= np.float32(2.0 / (high - low))
    out -= np.float32(1.0)
    np.clip(out, -1.0, 1.0, out=out)
    if out.min() == out.max():
        side = "below" if out.flat[0] <= -1 else "above"
        raise VolumeError(f"every voxel lies {side} the intensity window [{low:g}, {high:g}]")
    return out, (float(low), float(high))


def foreground_threshold(array: np.ndarray, fraction: float = FOREGROUND_FRACTION) -> float:
    """The level above which a voxel is foreground: min + ``fraction`` of the way to the 99.5th percentile.

    Background noise (MRI), values like 1e-45 and air stay below it; anatomy lies above it.
    """
    low = float(array.min())
    return low + fraction * (float(np.percentile(array, 99.5)) - low)


def foreground_percentiles(
    array: np.ndarray, percentiles: tuple[float, float], fraction: float = FOREGROUND_FRACTION
) -> tuple[float, float]:
    """Percentiles of the foreground voxels (``foreground_threshold``; all voxels if under 1% are foreground)."""
    foreground = array[array > foreground_threshold(array, fraction)]
    if foreground.size < max(2, array.size // 100):
        foreground = array.ravel()
    low, high = (float(v) for v in np.percentile(foreground, percentiles))
    if not high > low:
        raise VolumeError(f"the foreground is constant between percentiles {percentiles[0]:g} and {percentiles[1]:g}")
    return low, high


def trim_blank_slices(array: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Drop the runs of axial planes (constant k) at either end that lie entirely at -1."""
    blank = array.max(axis=(0, 1)) <= -1.0
    keep = np.flatnonzero(~blank)
    if keep.size == 0:
        raise VolumeError("every axial slice is blank")
    first, last = int(keep[0]), int(keep[-1])
    return array[:, :, first : last + 1], (first, array.shape[2] - 1 - last)


def resample(array: np.ndarray, size: int) -> np.ndarray:
    """(i, j, k) -> (size, size, size): Gaussian prefilter along shrinking axes, then linear interpolation."""
    from scipy import ndimage  # here: scipy takes longer to import than many commands take to run

    factors = np.asarray(array.shape, dtype=np.float64) / size
    sigma = np.maximum(factors - 1.0, 0.0) / 2.0
    if sigma.any():
        array = ndimage.gaussian_filter(array, sigma, mode="nearest")
    if array.shape == (size,) * 3:
        out = np.array(array, dtype=np.float32)
    else:
        # grid_mode: voxels are cells, so the field of view maps onto the field of view exactly
        out = ndimage.zoom(array, 1.0 / factors, order=1, mode="nearest", grid_mode=True, prefilter=False)
    if out.shape != (size,) * 3:
        raise VolumeError(f"resampling gave shape {out.shape} instead of {(size,) * 3}")
    return np.clip(out, -1.0, 1.0, out=out)


def resample_to_spacing(array: np.ndarray, spacing: tuple, target: tuple, size: int) -> np.ndarray:
    """(i, j, k) network values at ``spacing`` -> (size, size, size) at ``target`` mm.

    Resampled (Gaussian prefilter where an axis shrinks, then linear), then a size^3 field of view
    centred on the foreground's centre of mass is cut out, padded with -1 (network background)
    where it reaches past the scan: the anatomy sits centred, as in data made at a fixed spacing.
    """
    from scipy import ndimage

    factors = np.asarray(target, dtype=np.float64) / np.asarray(spacing, dtype=np.float64)
    shape = np.maximum(np.rint(np.asarray(array.shape) / factors).astype(int), 1)
    sigma = np.maximum(factors - 1.0, 0.0) / 2.0
    if sigma.any():
        array = ndimage.gaussian_filter(array, sigma, mode="nearest")
    if tuple(shape) != array.shape:
        zoom = shape / np.asarray(array.shape)
        array = ndimage.zoom(array, zoom, order=1, mode="nearest", grid_mode=True, prefilter=False)
    foreground = array > foreground_threshold(array)
    centre = ndimage.center_of_mass(foreground) if foreground.any() else (np.asarray(array.shape) - 1) / 2
    out = np.full((size,) * 3, -1.0, dtype=np.float32)
    source, placed = [], []
    for n, middle in zip(array.shape, centre):
        offset = int(round(middle - (size - 1) / 2))  # source index of the output's first voxel
        first, last = max(offset, 0), min(offset + size, n)
        source.append(slice(first, last))
        placed.append(slice(first - offset, last - offset))
    out[tuple(placed)] = array[tuple(source)]
    return np.clip(out, -1.0, 1.0, out=out)


def to_network_cube(
    array: np.ndarray, spacing: tuple[float, float, float], settings: PreprocessSettings
) -> tuple[np.ndarray, dict]:
    """A RAS array in physical units -> ((D, H, W) float32 in [-1, 1], details): the one preprocessing.

    Intensity mapping, optional blank-slice trim, then the geometry of ``settings.resample``.
    Training data, ``encode``, ``evaluate --real`` and the app all go through here.
    """
    network, window = map_intensity(array, settings)
    trimmed = (0, 0)
    if settings.trim_blank:
        network, trimmed = trim_blank_slices(network)
    fov = np.asarray(network.shape) * np.asarray(spacing)
    if settings.resample == "spacing":
        cube = resample_to_spacing(network, spacing, settings.spacing_mm, settings.size)
        output_spacing = np.asarray(settings.spacing_mm)
    else:
        cube = resample(network, settings.size)
        output_spacing = fov / settings.size
    details = {
        "window": list(window),
        "trimmed": trimmed,
        "output_spacing": [round(float(s), 6) for s in output_spacing],
    }
    return np.ascontiguousarray(cube.transpose(2, 1, 0)), details


def preprocess_volume(path: str | os.PathLike, settings: PreprocessSettings) -> tuple[np.ndarray, dict]:
    """One NIfTI file -> (float32 (D, H, W) array in [-1, 1], its manifest details); bare-cause VolumeError."""
    try:
        volume = read_canonical(path)
    except SeveralSeriesError as error:
        raise error.with_advice("keep one series per folder") from None
    canonical_shape = list(volume.array.shape)
    network, details = to_network_cube(volume.array, volume.spacing, settings)
    volume.array = None  # free the physical copy early
    window, trimmed = details["window"], details["trimmed"]
    info = {
        "original_shape": list(volume.source_shape),
        "original_spacing": [round(s, 6) for s in volume.source_spacing],
        "original_orientation": volume.source_orientation,
        "canonical_shape": canonical_shape,
        "output_shape": [settings.size] * 3,
        "output_spacing": details["output_spacing"],  # along RAS i, j, k
        "window": list(window),
        "percentiles": list(settings.percentiles) if settings.uses_percentiles else None,
        "trimmed_slices": {"inferior": trimmed[0], "superior": trimmed[1]},
    }
    return network, info


def preprocess_file(path: str | os.PathLike, settings: PreprocessSettings) -> tuple[np.ndarray, dict]:
    """Like preprocess_volume, but the VolumeError names the file."""
    try:
        return preprocess_volume(path, settings)
    except VolumeError as error:
        # a DICOM folder's errors name the file themselves
        raise VolumeError(str(error) if Path(path).is_dir() else f"{path}: {error}") from None


def nifti_header_problem(path: str | os.PathLike) -> str | None:
    """A cheap check reading only the header: the cause why the file is unusable, or None."""
    try:
        image = nib.load(str(path))
        shape = tuple(int(n) for n in image.shape)
    except FileNotFoundError:
        return "no such file"
    except Exception as error:
        return f"not a readable NIfTI file ({first_line(error)})"
    try:
        check_nifti_header(image, "")
    except VolumeError as error:
        return str(error)
    core = shape
    while len(core) > 3 and core[-1] == 1:
        core = core[:-1]
    if len(core) != 3:
        return f"a single 3-D volume is needed, this image has shape {shape}"
    if min(core) < 2:
        return f"a volume needs at least 2 voxels along every axis, this one has shape {shape}"
    return None


def nominal_spacing(path: str | os.PathLike, size: int) -> tuple[float, float, float]:
    """Output spacing (field of view / size along RAS i, j, k) from the header alone, before trimming."""
    image = nib.load(str(path))
    ornt = nib.io_orientation(image.affine)
    fov_file = np.asarray(image.shape[:3], dtype=np.float64) * np.asarray(axis_lengths(image.affine))
    fov = np.empty(3)
    fov[ornt[:, 0].astype(int)] = fov_file
    return tuple(round(float(f) / size, 6) for f in fov)


# -- folders --------------------------------------------------------------------------------------


def strip_suffix(name: str) -> str:
    """``a.b.nii.gz`` -> ``a.b``; also strips ``.npy``."""
    for suffix in (*NIFTI_SUFFIXES, ".npy"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_nifti_files(root: str | os.PathLike) -> list[Path]:
    """Every .nii / .nii.gz file under root (recursively, hidden names skipped), in a stable order."""
    root = Path(root)
    found = [
        path
        for path in root.rglob("*")
        if is_nifti_path(path.name)
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    ]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def output_names(files: list[Path], root: str | os.PathLike) -> list[str]:
    """File name without .nii/.nii.gz; names found in several folders get their relative path joined by '__'."""
    stems = [strip_suffix(f.name) for f in files]
    counts = Counter(stems)
    names = [
        stem if counts[stem] == 1 else "__".join((*f.relative_to(root).parent.parts, stem))
        for f, stem in zip(files, stems)
    ]
    clashes = [n for n, c in Counter(names).items() if c > 1]
    if clashes:
        raise ConfigError(f"several input files map to the output name '{clashes[0]}'")
    return names


@dataclass(frozen=True)
class _Task:
    source: Path
    relative: str
    name: str
    target: Path
    settings: PreprocessSettings


@dataclass
class PreprocessReport:
    """What a folder run did; ``count`` volumes are listed in ``manifest``."""

    out: Path
    manifest: Path | None
    written: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source path, one-line cause)
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.written) + len(self.reused)


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def preprocess_folder(
    input_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    settings: PreprocessSettings,
    workers: int | None = None,
    progress: bool = True,
) -> PreprocessReport:
    """Preprocess every NIfTI file and DICOM series folder under input_dir into out_dir; skip and report bad ones.

    Outputs whose source and settings match the existing manifest are kept (resume). The manifest is
    written only when at least one volume is usable; check ``report.count``.
    """
    started = time.perf_counter()
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if not input_dir.is_dir():
        raise ConfigError(f"{input_dir}: no such folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: exists and is not a folder")
    files = find_volume_sources(input_dir)
    if not files:
        raise ConfigError(f"no usable volumes in {input_dir} (no .nii or .nii.gz files, no DICOM series folders)")
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [
        _Task(f.resolve(), f.relative_to(input_dir).as_posix(), name, out_dir / f"{name}.npy", settings)
        for f, name in zip(files, output_names(files, input_dir))
    ]
    report = PreprocessReport(out_dir, None)
    entries = _reusable(out_dir, settings, tasks)
    report.reused = sorted(entries)
    todo = [t for t in tasks if t.name not in entries]
    manifest = _ManifestWriter(out_dir, input_dir, settings)
    try:
        for result in _run(todo, workers, len(tasks), len(entries), progress):
            if "error" in result:
                report.skipped.append((result["source"], result["error"]))
            else:
                entries[result["name"]] = result
                report.written.append(result["name"])
            manifest.maybe_write(entries, report.skipped)
    finally:
        if entries:
            complete = len(entries) + len(report.skipped) == len(tasks)
            report.manifest = manifest.write(entries, report.skipped, complete)
    report.skipped.sort()
    report.written.sort()
    report.seconds = time.perf_counter() - started
    return report


def _run(tasks: list[_Task], workers: int, total: int, done: int, progress: bool) -> Iterator[dict]:
    """Results of the tasks in completion order, in worker processes when workers > 1."""
    bar_options = dict(total=total, initial=done, unit="vol", desc="preprocessing", file=sys.stderr)
    if workers == 1 or len(tasks) <= 1:
        with tqdm(disable=not progress, **bar_options) as bar:
            for task in tasks:
                yield _process(task)
                bar.update()
        return
    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)))
    try:
        # submit before the bar exists: worker processes start before tqdm's monitor thread does
        futures = {pool.submit(_process, task): task for task in tasks}
        with tqdm(disable=not progress, **bar_options) as bar:
            for future in as_completed(futures):
                yield _result(future, futures[future])
                bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _result(future, task: _Task) -> dict:
    try:
        return future.result()
    except BrokenProcessPool:
        return {"source": str(task.source), "error": "the worker process died (out of memory?)"}


def _process(task: _Task) -> dict:
    """Preprocess and write one file: its manifest entry, or {'source', 'error'} with a one-line cause."""
    try:
        network, info = preprocess_volume(task.source, task.settings)
        save_npy(task.target, network.astype(np.float16))
        stat = task.source.stat()
    except VolumeError as error:
        return {"source": str(task.source), "error": str(error)}
    except Exception as error:  # anything else about one file must not stop the others
        return {"source": str(task.source), "error": f"{type(error).__name__}: {first_line(error)}"}
    return {
        "name": task.name,
        "file": task.target.name,
        "source": str(task.source),
        "source_relative": task.relative,
        "source_size": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
        **info,
    }


def save_npy(path: Path, array: np.ndarray) -> None:
    """np.save to a temporary name, then rename: a crash never leaves a half-written array."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)

    atomic_write(path, write)


def _reusable(out_dir: Path, settings: PreprocessSettings, tasks: list[_Task]) -> dict[str, dict]:
    """Entries of an earlier run with the same settings whose source is unchanged and output intact."""
    try:
        manifest = read_manifest(out_dir)
    except ConfigError:
        return {}
    if manifest.get("settings") != settings.to_dict():
        return {}
    previous = {e.get("name"): e for e in manifest.get("files", []) if isinstance(e, dict)}
    kept = {}
    for task in tasks:
        entry = previous.get(task.name)
        if entry is not None and _unchanged(entry, task):
            kept[task.name] = entry
    return kept


def _unchanged(entry: dict, task: _Task) -> bool:
    try:
        stat = task.source.stat()
        if (entry["source"], entry["source_size"], entry["source_mtime_ns"]) != (
            str(task.source),
            stat.st_size,
            stat.st_mtime_ns,
        ):
            return False
        array = np.load(task.target, mmap_mode="r", allow_pickle=False)
        return array.shape == (task.settings.size,) * 3 and array.dtype == np.float16
    except (OSError, ValueError, KeyError, TypeError):
        return False


class _ManifestWriter:
    """Writes manifest.json atomically: at the end, and every MANIFEST_INTERVAL_S while running."""

    def __init__(self, out_dir: Path, input_dir: Path, settings: PreprocessSettings) -> None:
        self.out_dir, self.input_dir, self.settings = out_dir, input_dir, settings
        self.last = time.monotonic()

    def maybe_write(self, entries: dict[str, dict], skipped: list[tuple[str, str]]) -> None:
        if time.monotonic() - self.last >= MANIFEST_INTERVAL_S:
            self.write(entries, skipped, complete=False)

    def write(self, entries: dict[str, dict], skipped: list[tuple[str, str]], complete: bool) -> Path:
        settings = self.settings
        manifest = {
            "format": FORMAT,
            "engine_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "complete": complete,
            "input": str(self.input_dir.resolve()),
            "modality": settings.modality,
            "size": settings.size,
            "window": "percentile" if settings.uses_percentiles else list(settings.window),
            "intensity": settings.intensity(),
            "settings": settings.to_dict(),
            "count": len(entries),
            "files": [entries[name] for name in sorted(entries)],
            "skipped": [{"source": s, "cause": c} for s, c in sorted(skipped)],
        }
        path = self.out_dir / MANIFEST
        text = json.dumps(manifest, indent=1)
        atomic_write(path, lambda tmp: tmp.write_text(text))
        self.last = time.monotonic()
        return path


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of a preprocessed folder; ConfigError when it is missing or not ours."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: unreadable manifest ({first_line(error)})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a preprocessing manifest (format '{FORMAT}' expected)")
    if not isinstance(manifest.get("files"), list) or not isinstance(manifest.get("settings"), dict):
        raise ConfigError(f"{path}: manifest lacks 'files' or 'settings'")
    return manifest


# -- command line ---------------------------------------------------------------------------------


def register(commands) -> argparse.ArgumentParser:
    """Add the ``preprocess`` subcommand to an argparse subparsers object."""
    parser = commands.add_parser(
        "preprocess",
        help="NIfTI folder -> float16 training arrays (RAS, [-1, 1], S^3) plus manifest.json",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--input", required=True, help="folder searched recursively for .nii / .nii.gz files and DICOM series folders"
    )
    parser.add_argument("--out", required=True, help="folder for <name>.npy arrays and manifest.json")
    parser.add_argument("--modality", required=True, choices=("ct", "mri"))
    parser.add_argument(
        "--window",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="physical values mapped to -1 and +1, clipped (CT default -1024 600 HU; "
        f"MRI default: percentiles {MRI_PERCENTILES[0]:g} and {MRI_PERCENTILES[1]:g} of the non-zero voxels)",
    )
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"output cube edge S (default {DEFAULT_SIZE})")
    parser.add_argument(
        "--trim-blank", action="store_true", help="drop blank axial slices (entirely at -1) at both ends first"
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default min(4, CPU count))")
    parser.set_defaults(run=run_preprocess)
    return parser


def run_preprocess(args: argparse.Namespace) -> int:
    """The ``preprocess`` command: exit code 0 when at least one volume is usable."""
    settings = PreprocessSettings(
        modality=args.modality,
        window=tuple(args.window) if args.window else None,
        size=args.size,
        trim_blank=args.trim_blank,
    )
    report = preprocess_folder(args.input, args.out, settings, args.workers, progress=True)
    if report.skipped:
        print(f"{len(report.skipped)} file(s) skipped:", file=sys.stderr)
        for source, cause in report.skipped:
            print(f"  {source}: {cause}", file=sys.stderr)
    if not report.count:
        raise ConfigError(f"no usable volumes in {args.input}")
    print(
        f"{report.count} volume(s) in {report.out} ({len(report.written)} written, {len(report.reused)} reused, "
        f"{len(report.skipped)} skipped) in {report.seconds:.1f} s",
        file=sys.stderr,
    )
    return 0
