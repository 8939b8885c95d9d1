"""Exporting an interpolation sequence: N volumes along a keyframe path, as NIfTI files, DICOM series or a movie.

The frames, their latents and their file names are the engine's (``path_frames``, ``frame_stem``), as
``python -m engine interpolate`` makes them. Qt-free: ``export_sequence`` runs as a job on the inference
thread and reports through the job's ``progress(done, total, text)`` (which raises to cancel). Movie
frames are slices made here, or come from ``render_frame`` (the 3D turntable, rendered on the UI
thread by the panel).
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
    Part,
    SampleRequest,
    Volume,
    check_frames,
    frame_stem,
    path_frames,
    path_label,
    sample_volumes,
    save_dicom_series,
    save_nifti,
)

from .movie import SLICE_AXES, movie_kind, slice_frame, write_movie
from .render.window_level import WindowLevel, default_window

MOVIE_VIEWS = (*SLICE_AXES, "3d")  # what a movie can show: one slice through the crosshair, or a turning 3D view
RenderFrame = Callable[[Volume, int, str], np.ndarray]  # (volume, frame index, caption) -> RGB frame


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
    prefix: str = "frame"  # file names: frame0007_full.nii.gz, ...
    precision: str = "fp32"  # exact unless the user chose otherwise (the Model panel's export precision)

    def check(self) -> None:
        """Refuse a plan that cannot work, with the reason, before any generation starts."""
        check_frames(len(self.keyframes), self.frames)
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
    """Generate ``plan.frames`` full volumes along the path; write each as NIfTI, DICOM and/or a movie frame."""
    plan.check()
    if plan.movie is not None and plan.view == "3d" and render_frame is None:
        raise ConfigError("a 3D movie needs a renderer for its frames")
    count = plan.frames
    points = path_frames(list(plan.keyframes), count, plan.method)
    origins = [path_label(plan.names, plan.method, point.t) for point in points]
    requests = [
        SampleRequest(None, Part.FULL, truncation=plan.truncation, latent=point.z, origin=origin)
        for point, origin in zip(points, origins)
    ]
    steps = 2 * count if plan.movie is not None else count  # a movie: each frame made, then each encoded
    files, frames, window = [], [], plan.window
    volumes = sample_volumes(model, requests, GenerationOptions(precision=plan.precision))
    for index, t in ((point.index, point.t) for point in points):
        progress(index, steps, f"Interpolation frame {index + 1}/{count}")
        volume = next(volumes)
        name = frame_stem(index, count, Part.FULL, plan.prefix)
        if plan.nifti_folder is not None:
            description = f"SYNTHETIC {plan.method} t={t:.4f}"
            files.append(save_nifti(volume, Path(plan.nifti_folder) / f"{name}.nii.gz", description))
        if plan.dicom_folder is not None:
            files.append(save_dicom_series(volume, Path(plan.dicom_folder) / name, plan.modality))
        if plan.movie is not None:
            caption = f"{index + 1}/{count}  t={t:.3f}"
            if plan.view == "3d":
                frames.append(render_frame(volume, index, caption))
            else:
                window = window or default_window(volume, plan.modality)
                frames.append(slice_frame(volume, plan.view, plan.crosshair, window, caption))
    movie = None
    if plan.movie is not None:
        encoding = lambda done, total, text: progress(count + done, count + total, text)  # noqa: E731 - one line
        movie = write_movie(plan.movie, frames, plan.fps, encoding)  # the bar goes on from the generated frames
    progress(steps, steps, "Interpolation exported")
    return SequenceResult(files, movie, count)
