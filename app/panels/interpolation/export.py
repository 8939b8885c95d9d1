"""Exporting the sequence along the path: NIfTI files, DICOM series, or a movie of a slice or a turning 3D view.

The export runs as a job on the inference thread (``sequence.export_sequence``); 3D movie frames are
prepared there too (grid, isosurface) and rendered on the UI thread, one at a time, through ``_FrameBridge``.
"""

from __future__ import annotations

import queue
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QPushButton, QWidget

from engine.api import ConfigError

from ...context import AppContext
from ...movie import burn_labels
from ...render.turntable import Turntable, TurntableScene, TurntableStyle
from ...sequence import MOVIE_VIEWS, SequencePlan, export_sequence
from ...state import FULL
from ...workers import INFERENCE, Cancelled
from ..movie_dialog import choose_movie
from .player import PathPlayer

VIEW_NAMES = {"axial": "Axial slice", "coronal": "Coronal slice", "sagittal": "Sagittal slice", "3d": "Turning 3D view"}


class SequenceExport(QGroupBox):
    """The movie's view and the NIfTI / DICOM / movie buttons; the frame count and rate are the player's."""

    exported = Signal(object)  # sequence.SequenceResult, after an export finished

    def __init__(self, context: AppContext, player: PathPlayer, parent: QWidget | None = None):
        super().__init__("Export the sequence", parent)
        self.context, self.player = context, player
        self._export_ticket: int | None = None
        self._bridge: _FrameBridge | None = None
        self.view_box = QComboBox()
        for view in MOVIE_VIEWS:
            self.view_box.addItem(VIEW_NAMES[view], view)
        self.nifti_button = QPushButton("NIfTI files…")
        self.dicom_button = QPushButton("DICOM series…")
        self.dicom_button.setToolTip("A DICOM series folder per frame, marked SYNTHETIC")
        self.movie_button = QPushButton("Movie…")
        self.movie_button.setToolTip("GIF or MP4 (by the file name) of the chosen view, marked SYNTHETIC")

        layout = QFormLayout(self)
        layout.addRow("Movie of", self.view_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.nifti_button)
        buttons.addWidget(self.dicom_button)
        buttons.addWidget(self.movie_button)
        layout.addRow(buttons)

        self.nifti_button.clicked.connect(self._choose_nifti_folder)
        self.dicom_button.clicked.connect(self._choose_dicom_folder)
        self.movie_button.clicked.connect(self._choose_movie)
        context.jobs.job_finished.connect(self._on_job_finished)

    def set_ready(self, ready: bool) -> None:
        for button in (self.nifti_button, self.dicom_button, self.movie_button):
            button.setEnabled(ready)

    def _choose_nifti_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the NIfTI frames")
        if folder:
            self.export(nifti_folder=folder)

    def _choose_dicom_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the DICOM series (one per frame)")
        if folder:
            self.export(dicom_folder=folder)

    def _choose_movie(self) -> None:
        path = choose_movie(self, "Save the movie", "interpolation.gif")
        if path:
            self.export(movie=path)

    def export(
        self,
        nifti_folder: str | Path | None = None,
        movie: str | Path | None = None,
        dicom_folder: str | Path | None = None,
        view: str | None = None,
        frames: int | None = None,
    ) -> int | None:
        """Export ``frames`` volumes along the path as a job; returns its ticket (None if refused)."""
        state = self.context.state
        if state.model is None:
            self.context.report_error("Open a model before exporting an interpolation")
            return None
        view = view or self.view_box.currentData()
        plan = SequencePlan(
            keyframes=tuple(k.z for k in state.path.keyframes),
            names=tuple(k.label for k in state.path.keyframes),
            method=state.path.method,
            frames=frames or self.player.frames_box.value(),
            truncation=state.truncation,
            nifti_folder=Path(nifti_folder) if nifti_folder else None,
            dicom_folder=Path(dicom_folder) if dicom_folder else None,
            movie=Path(movie) if movie else None,
            view=view,
            window=state.window,
            crosshair=tuple(float(c) for c in state.crosshair),
            fps=float(self.player.fps_box.value()),
            modality=state.model.card.modality,
            precision=self.context.generation.precision_for(FULL),
        )
        try:
            plan.check()
        except ConfigError as error:
            self.context.report_error(str(error))
            return None
        model = state.model.model
        bridge = None
        if plan.movie is not None and plan.view == "3d":
            modality = state.model.card.modality
            style = TurntableStyle(state.render_mode, state.window, state.volume_preset, state.iso_value, modality)
            bridge = _FrameBridge(style, plan.frames, self)
        self._bridge = bridge

        def work(progress):
            render = None if bridge is None else (lambda v, i, c: bridge.request(v, i, c, progress))
            return export_sequence(model, plan, progress, render)

        def done(result) -> None:
            where = result.movie or plan.nifti_folder or plan.dicom_folder
            self.context.show_message(f"Exported {result.frames} interpolation frames to {where}")
            self.exported.emit(result)

        label = f"Exporting {plan.frames} interpolation frames"
        self._export_ticket = self.context.jobs.submit(
            "export-interpolation", label, work, done, self.context.report_error, pool=INFERENCE
        )
        return self._export_ticket

    @Slot(int, str)
    def _on_job_finished(self, ticket: int, _outcome: str) -> None:
        if ticket == self._export_ticket and self._bridge is not None:
            self._bridge.close()
            self._bridge = None

    def shutdown(self) -> None:
        """Close the off-screen 3D renderer of a running export."""
        if self._bridge is not None:
            self._bridge.close()


class _FrameBridge(QObject):
    """Lets the export job (a worker thread) have 3D frames rendered on the UI thread, one at a time.

    VTK's OpenGL must stay on the thread that owns the app's GL contexts; the job prepares the frame's
    data (grid, isosurface), emits a request, waits for the frame (checking for Cancel), and the UI
    thread only draws and renders it, between its other events.
    """

    wanted = Signal(object, int, str)  # TurntableScene, frame index, caption

    def __init__(self, style: TurntableStyle, count: int, parent: QObject):
        super().__init__(parent)
        self._style, self._count = style, count
        self._turntable: Turntable | None = None
        self._answers: queue.Queue = queue.Queue()
        self._closed = False
        self.wanted.connect(self._render, Qt.ConnectionType.QueuedConnection)

    def request(self, volume, index: int, caption: str, progress) -> np.ndarray:
        """Worker thread: the RGB frame of ``volume``, rendered by the UI thread."""
        self.wanted.emit(self._style.scene(volume), index, caption)
        while True:
            if progress.cancelled:
                raise Cancelled
            try:
                answer = self._answers.get(timeout=0.05)
            except queue.Empty:
                continue
            if isinstance(answer, BaseException):
                raise answer
            return answer

    @Slot(object, int, str)
    def _render(self, scene: TurntableScene, index: int, caption: str) -> None:
        if self._closed:
            self._answers.put(Cancelled())
            return
        try:
            if self._turntable is None:
                self._turntable = Turntable()
            rgb = self._turntable.frame(scene, 360.0 * index / self._count)
            self._answers.put(burn_labels(rgb, caption))
        except Exception as error:  # reaches the job, which reports it as its one-line error
            self._answers.put(error)

    def close(self) -> None:
        self._closed = True
        if self._turntable is not None:
            self._turntable.close()
            self._turntable = None
