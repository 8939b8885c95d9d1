"""A real scan as a model takes it: preprocessed by the model card's record, checked, with its foreground.

The card's ``preprocessing`` record says how the training data was made (modality, window or
percentiles, foreground rule, blank-slice trim, orientation, geometry and spacing). ``encode``,
``evaluate --real`` and the app's Encode panel all call ``prepare_scan``, so a scan is always
preprocessed the way the model's training data was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from .card import CT_WINDOW, ModelCard
from .data.preprocess import (
    PreprocessSettings,
    axis_lengths,
    foreground_threshold,
    read_canonical,
    to_network_cube,
)
from .dicom_read import Progress as DicomProgress
from .enums import PHANTOM_KINDS
from .errors import ConfigError, VolumeError
from .volume import Volume

NEARLY_CONSTANT_SPREAD = 0.02  # network units: 1% of the [-1, 1] range
NEARLY_CONSTANT_SHARE = 0.005  # refuse when fewer voxels than this share stand out from the median
SATURATION_WARNING = 0.05  # warn when more voxels than this sit at the top of the window
FOREGROUND_WARNING = 0.01  # warn when less of the volume than this is foreground


def official_preprocessing(resolution: int, modality: str = "ct", window: tuple[float, float] | None = None) -> dict:
    """The reference HA-GAN preprocessing: a window ([-1024, 600] HU for CT), blank axial slices
    trimmed, every axis stretched to S^3."""
    window = window or (CT_WINDOW.low, CT_WINDOW.high)
    return PreprocessSettings(modality, window, resolution, trim_blank=True).to_dict()


def card_preprocessing(card: ModelCard) -> PreprocessSettings:
    """The preprocessing a model was trained with, at its resolution, from its card.

    In order: the card's ``preprocessing`` record; the record of older cards trained on a
    preprocessed folder (``training.data.preprocessing``); phantom-trained cards (their window,
    resampled to the card's spacing); otherwise the card's window, stretched to the cube.
    """
    size = card.config.resolution
    for record in (card.preprocessing, _training_record(card)):
        if isinstance(record, dict) and "modality" in record:
            try:
                return PreprocessSettings.from_dict({**record, "size": size})
            except (ConfigError, KeyError, TypeError, ValueError):
                pass  # an unusable record: try the next source
    modality = "ct" if card.modality == "ct" or card.intensity.unit.upper() == "HU" else "mri"
    window = (card.intensity.low, card.intensity.high)
    data = card.training.get("data") if isinstance(card.training, dict) else None
    if isinstance(data, dict) and data.get("kind") in PHANTOM_KINDS:
        return PreprocessSettings(modality, window, size, resample="spacing", spacing_mm=tuple(card.spacing_mm))
    return PreprocessSettings(modality, window=window, size=size)


def _training_record(card: ModelCard):
    data = card.training.get("data") if isinstance(card.training, dict) else None
    return data.get("preprocessing") if isinstance(data, dict) else None


@dataclass
class PreparedScan:
    """A scan in the model's input form, (1, 1, S, S, S) float32 in [-1, 1], (D, H, W) = (k, j, i)."""

    volume: torch.Tensor
    foreground: torch.Tensor  # bool, same shape: voxels above the foreground threshold
    settings: PreprocessSettings
    window: tuple[float, float]  # physical values mapped to -1 and +1 for this scan
    warnings: list[str] = field(default_factory=list)

    def record(self) -> dict:
        """What was done, for a report."""
        return {**self.settings.to_dict(), "window_used": list(self.window)}


def foreground_mask(volume: torch.Tensor | np.ndarray, fraction: float | None = None) -> torch.Tensor:
    """Foreground voxels of a network-range volume, by the same rule as the preprocessing."""
    array = volume.detach().float().cpu().numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume)
    threshold = foreground_threshold(array) if fraction is None else foreground_threshold(array, fraction)
    return torch.from_numpy(array > threshold)


def prepare_scan(
    source: Volume | str | os.PathLike,
    card: ModelCard,
    strict: bool = True,
    series: str | None = None,
    progress: DicomProgress | None = None,
) -> PreparedScan:
    """Read (a NIfTI path, or a DICOM series folder with ``series`` picking one of several) or take
    (a Volume in physical units) a scan and preprocess it for ``card``; ``progress(done, total, what)``
    follows the reading of a DICOM series, header by header and image by image.

    A VolumeError names the file and the cause; with ``strict`` a nearly constant result is one
    (it would encode to a blank volume and score well for nothing). Inputs far from the training
    range give one-line ``warnings``.
    """
    settings = card_preprocessing(card)
    # a DICOM folder's errors name the file themselves
    where = "" if isinstance(source, Volume) or Path(source).is_dir() else f"{source}: "
    try:
        if isinstance(source, Volume):
            image = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(source.array, np.float32), source.affine))
            array, spacing = np.asarray(image.dataobj, dtype=np.float32), axis_lengths(image.affine)
        else:
            canonical = read_canonical(source, series, progress)
            array, spacing = canonical.array, canonical.spacing
        cube, details = to_network_cube(array, spacing, settings)
        warnings = _check(cube, details["window"], strict)
    except VolumeError as error:
        if not where:  # keeps the error's own type (a DICOM folder holding several series, ...)
            raise
        raise VolumeError(f"{where}{error}") from None
    volume = torch.from_numpy(np.ascontiguousarray(cube, dtype=np.float32))[None, None]
    mask = foreground_mask(cube, settings.foreground_fraction)[None, None]
    return PreparedScan(volume, mask, settings, tuple(details["window"]), [f"{where}{w}" for w in warnings])


def _check(cube: np.ndarray, window: list[float], strict: bool) -> list[str]:
    """Refuse a nearly constant input; warnings for one far from the training range."""
    median = float(np.median(cube))
    standing_out = float(np.mean(np.abs(cube - median) > NEARLY_CONSTANT_SPREAD))
    low, high = window
    if standing_out < NEARLY_CONSTANT_SHARE and strict:
        raise VolumeError(
            f"after preprocessing (window [{low:g}, {high:g}]) the volume is nearly constant: "
            f"{100 * standing_out:.2f}% of voxels differ from {median:.3f} by more than {NEARLY_CONSTANT_SPREAD}; "
            "its intensities do not match the model's training range"
        )
    warnings = []
    saturated = float(np.mean(cube >= 0.999))
    if saturated > SATURATION_WARNING:
        warnings.append(
            f"{100 * saturated:.1f}% of voxels sit at the top of the window [{low:g}, {high:g}]: "
            "the intensities lie far above the model's training range"
        )
    foreground = float(np.mean(cube > foreground_threshold(cube)))
    if foreground < FOREGROUND_WARNING:
        warnings.append(f"only {100 * foreground:.2f}% of voxels are foreground after preprocessing")
    return warnings
