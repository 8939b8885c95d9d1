"""Exporting an interpolation sequence: N volumes along a keyframe path, as NIfTI files and/or a movie.

Qt-free: ``export_sequence`` runs as a job on the inference thread and reports through the job's
``progress(done, total, text)`` (which raises to cancel). Movie frames are slices made here, or
come from ``render_frame`` (the 3D turntable, rendered on the UI thread by the panel).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.api import (
    ConfigError,
    GenerationOptions,
    SampleRequest,
    Volume,
    path_points,
    sample_volumes,
    save_dicom_series,
    save_nifti,
)

from .movie import SLICE_AXES, movie_kind, slice_frame, write_movie
from .render.window_level import WindowLevel, default_window

MOVIE_VIEWS = (*SLICE_AXES, "3d")  # what a movie can show: one slice through the crosshair, or a turning 3D view
RenderFrame = Callable[[Volume, int, str], np.ndarray]  # (volume, frame index, caption) -> RGB frame


def path_label(names: list[str] | tuple[str, ...], method: str, t: float) -> str:
    """Where a point on the path came from, e.g. ``slerp t=0.250 (seed 1 → seed 2)``."""
    return f"{method} t={t:.3f} ({' → '.join(names)})"


def frame_name(stem: str, index: int, count: int) -> str:
    """Zero-padded so that the files sort in frame order: ``interpolation_007.nii.gz``."""
    return f"{stem}_{index:0{max(3, len(str(count - 1)))}d}.nii.gz"


@dataclass(frozen=True)
class SequencePlan:
    """What to export: the path (keyframe latents before truncation), the frame count and the targets."""

    keyframes: tuple[torch.Tensor, ...] = field(compare=False)
    names: tuple[str, ...]
    method: str
    frames: int
    truncation: float = 1.0
    nifti_folder: Path | None = None
    dicom_folder: Path | None = None  # a DICOM series folder per frame inside it
    movie: Path | None = None
    view: str = "axial"  # one of MOVIE_VIEWS
    window: WindowLevel | None = None  # None: the modality's default for the first frame
    crosshair: tuple[float, float, float] = (0.0, 0.0, 0.0)
    fps: float = 10.0
    modality: str = ""
    stem: str = "interpolation"
    precision: str = "fp32"  # exact unless the user chose otherwise (the Model panel's export precision)

    def check(self) -> None:
        """Refuse a plan that cannot work, with the reason, before any generation starts."""
        if len(self.keyframes) < 2:
            raise ConfigError("an interpolation needs at least two keyframes")
        if self.frames < 2:
            raise ConfigError(f"a sequence needs at least 2 frames, got {self.frames}")
        if self.nifti_folder is None and self.dicom_folder is None and self.movie is None:
            raise ConfigError("choose a folder for NIfTI files or DICOM series, or a movie file")
        for folder in (self.nifti_folder, self.dicom_folder):
            if folder is not None and not Path(folder).is_dir():
                raise ConfigError(f"{folder}: no such folder")
        if self.movie is not None:
            movie_kind(self.movie)
            if not Path(self.movie).parent.is_dir():
                raise ConfigError(f"{Path(self.movie).parent}: no such folder")
        if self.view not in MOVIE_VIEWS:
            raise ConfigError(f"unknown movie view '{self.view}'; choose one of {', '.join(MOVIE_VIEWS)}")


@dataclass
class SequenceResult:
    files: list[Path]
    movie: Path | None
    frames: int


def export_sequence(model, plan: SequencePlan, progress, render_frame: RenderFrame | None = None) -> SequenceResult:
    """Generate ``plan.frames`` full volumes along the path; write each as NIfTI and/or a movie frame."""
    plan.check()
    if plan.movie is not None and plan.view == "3d" and render_frame is None:
        raise ConfigError("a 3D movie needs a renderer for its frames")
    count = plan.frames
    times = [i / (count - 1) for i in range(count)]
    requests = [
        SampleRequest(None, "full", truncation=plan.truncation, latent=z, origin=path_label(plan.names, plan.method, t))
        for z, t in zip(path_points(list(plan.keyframes), count, plan.method), times)
    ]
    steps = count + (plan.movie is not None)
    files, frames, window = [], [], plan.window
    volumes = sample_volumes(model, requests, GenerationOptions(precision=plan.precision))
    for index, t in enumerate(times):
        progress(index, steps, f"Interpolation frame {index + 1}/{count}")
        volume = next(volumes)
        if plan.nifti_folder is not None:
            path = Path(plan.nifti_folder) / frame_name(plan.stem, index, count)
            files.append(save_nifti(volume, path, f"SYNTHETIC {plan.method} t={t:.4f}"))
        if plan.dicom_folder is not None:
            series = Path(plan.dicom_folder) / frame_name(plan.stem, index, count).removesuffix(".nii.gz")
            files.append(save_dicom_series(volume, series, plan.modality))
        if plan.movie is not None:
            caption = f"{index + 1}/{count}  t={t:.3f}"
            if plan.view == "3d":
                frames.append(render_frame(volume, index, caption))
            else:
                window = window or default_window(volume, plan.modality)
                frames.append(slice_frame(volume, plan.view, plan.crosshair, window, caption))
    movie = None
    if plan.movie is not None:
        progress(count, steps, f"Writing {Path(plan.movie).name}")
        movie = write_movie(plan.movie, frames, plan.fps)
    progress(steps, steps, "Interpolation exported")
    return SequenceResult(files, movie, count)
