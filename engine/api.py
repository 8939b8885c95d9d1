"""The engine's public API: what the desktop app, the benchmarks and scripts build on.

Everything a program outside ``engine`` needs is importable from here; the app imports the engine
only through this module (an import-linter contract in pyproject.toml checks it), so the modules
behind it can be reorganised without touching callers.
"""

from __future__ import annotations

from pathlib import Path

from .atomic import atomic_write
from .checkpoints import find_official_files, load_model, read_model_card, save_model
from .data.phantoms import PHANTOM_KINDS
from .demo import demo_models
from .device import DEVICE_CHOICES, available_devices, describe_device, resolve_device
from .dicom import save_dicom_series
from .dicom_read import SeriesInfo, SeveralSeriesError, list_series, load_dicom_series
from .directions import SIGMA_RANGE, Directions, move, move_along, sefa
from .encode import encode_scan, encoding_volumes, metrics_lines, prepare_for_model, scan_name
from .enums import Family, Part, PhantomKind, Precision
from .errors import CheckpointError, ConfigError, EngineError, VolumeError, first_line, user_message
from .explore import Explorer
from .gallery import (
    DEFAULT_MEMORY_BYTES,
    PLANES,
    Thumbnail,
    ThumbnailCache,
    ThumbnailMaker,
    ThumbnailSpec,
    contact_sheet,
    save_contact_sheet,
    window_image,
)
from .generate import GenerationOptions, SampleRequest, sample_volume, sample_volumes
from .interpolation import METHODS as INTERPOLATION_METHODS
from .interpolation import (
    PathFrame,
    check_frames,
    frame_stem,
    frames_for_steps,
    interpolation_requests,
    path_frames,
    path_label,
    path_point,
)
from .latent import seed_to_z
from .metrics.evaluate import EvaluationSettings, evaluate, format_table, write_report
from .metrics.seams import STEP_FLOOR, hagan_seam_period, plane_steps, seam_score, slab_boundaries
from .model import AnyModel, HAGANModel, SplitShuffleModel
from .model_input import PreparedScan, prepare_scan
from .nifti import is_nifti_path, load_nifti, save_nifti
from .precision import EXACT, allowed_precisions, fast_precision
from .reading import read_volume
from .training.config import FAMILIES, PRESETS_BY_FAMILY, TrainConfig, train_arguments
from .training.run_log import read_losses
from .volume import IntensityMapping, Volume, generated_affine

__all__ = [
    "Family",
    "Part",
    "PhantomKind",
    "Precision",
    "window_image",
    "save_contact_sheet",
    "contact_sheet",
    "ThumbnailSpec",
    "ThumbnailMaker",
    "ThumbnailCache",
    "Thumbnail",
    "PLANES",
    "DEFAULT_MEMORY_BYTES",
    "sefa",
    "move_along",
    "move",
    "Directions",
    "SIGMA_RANGE",
    "fast_precision",
    "allowed_precisions",
    "EXACT",
    "GenerationOptions",
    "prepare_scan",
    "PreparedScan",
    "metrics_lines",
    "STEP_FLOOR",
    "read_volume",
    "save_dicom_series",
    "load_dicom_series",
    "list_series",
    "SeveralSeriesError",
    "SeriesInfo",
    "package_root",
    "DEVICE_CHOICES",
    "FAMILIES",
    "PHANTOM_KINDS",
    "PRESETS_BY_FAMILY",
    "AnyModel",
    "CheckpointError",
    "ConfigError",
    "EngineError",
    "EvaluationSettings",
    "Explorer",
    "HAGANModel",
    "IntensityMapping",
    "SampleRequest",
    "SplitShuffleModel",
    "TrainConfig",
    "Volume",
    "VolumeError",
    "atomic_write",
    "available_devices",
    "demo_models",
    "describe_device",
    "encode_scan",
    "encoding_volumes",
    "evaluate",
    "find_official_files",
    "first_line",
    "format_table",
    "generated_affine",
    "hagan_seam_period",
    "is_nifti_path",
    "load_model",
    "load_nifti",
    "INTERPOLATION_METHODS",
    "PathFrame",
    "check_frames",
    "frame_stem",
    "frames_for_steps",
    "interpolation_requests",
    "path_frames",
    "path_label",
    "path_point",
    "plane_steps",
    "prepare_for_model",
    "read_losses",
    "read_model_card",
    "resolve_device",
    "sample_volume",
    "sample_volumes",
    "save_model",
    "save_nifti",
    "scan_name",
    "seam_score",
    "seed_to_z",
    "slab_boundaries",
    "train_arguments",
    "user_message",
    "write_report",
]


def package_root() -> Path:
    """The folder holding the ``engine`` package: a child process started there runs ``python -m engine``."""
    return Path(__file__).resolve().parent.parent
