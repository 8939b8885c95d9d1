"""Interpolation panel: a path through keyframe latents, a t slider, play/loop, and export of the sequence.

While the slider moves (or the path plays) the panel asks for PREVIEW latents, so only the anchor
is generated; when the slider is released, stands still for SETTLE_MS, or play stops, it asks for
FULL and the controller refines to full resolution. The panel never runs the model itself.
"""

from __future__ import annotations

import queue
from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.api import INTERPOLATION_METHODS, ConfigError, path_label, path_point, seed_to_z

from ..context import AppContext
from ..movie import burn_labels
from ..render.turntable import Turntable
from ..render.window_level import WindowLevel, default_window
from ..sequence import MOVIE_VIEWS, SequencePlan, export_sequence
from ..state import FULL, PREVIEW, Latent, LoadedModel
from ..workers import INFERENCE, Cancelled
from .latent_panel import MAX_SEED

STEPS = 1000  # slider positions along the whole path
SETTLE_MS = 150  # a slider held still this long counts as released: refine to full resolution
VIEW_NAMES = {"axial": "Axial slice", "coronal": "Coronal slice", "sagittal": "Sagittal slice", "3d": "Turning 3D view"}


class InterpolationPanel(QWidget):
    """Keyframes (seeds or the current latent), lerp/slerp, t slider, play/loop, NIfTI/GIF/MP4 export."""

    exported = Signal(object)  # sequence.SequenceResult, after an export finished

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self._shown: Latent | None = None  # the latent this panel last put in the state
        self._structure: tuple = ((), "slerp")  # keyframes and method the list shows
        self._play_position = 0.0
        self._export_ticket: int | None = None
        self._bridge: _FrameBridge | None = None
        self._build()
        self._settle_timer = QTimer(self, singleShot=True, interval=SETTLE_MS)
        self._settle_timer.timeout.connect(self._settle)
        self._play_timer = QTimer(self)
        self._play_timer.timeout.connect(self._tick)
        context.state.model_changed.connect(self._on_model)
        context.state.path_changed.connect(lambda _path: self._path_changed())
        context.jobs.job_finished.connect(self._on_job_finished)
        self._update_enabled()

    # -- widgets -------------------------------------------------------------------------------

    def _build(self) -> None:
        self.keyframe_list = QListWidget()
        self.keyframe_list.setToolTip("The path runs through these latents in order, in equal steps of t")
        self.keyframe_list.setMaximumHeight(110)
        self.seed_box = QSpinBox()
        self.seed_box.setRange(0, MAX_SEED)
        self.add_seed_button = QPushButton("Add seed")
        self.add_current_button = QPushButton("Add current")
        self.add_current_button.setToolTip("The latent the views show now: a seed, a bookmark or an encoded scan")
        self.up_button, self.down_button, self.remove_button = QPushButton("▲"), QPushButton("▼"), QPushButton("Remove")
        self.method_box = QComboBox()
        self.method_box.addItems(INTERPOLATION_METHODS)
        self.method_box.setToolTip("slerp keeps intermediate latents at a typical norm; lerp shrinks them")

        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, STEPS)
        self.slider.setToolTip("t along the whole path: anchor previews while dragging, full resolution on release")
        self.t_label = QLabel("t = 0.000")
        self.t_label.setMinimumWidth(self.t_label.fontMetrics().horizontalAdvance("t = 0.000") + 6)  # no relayout
        self.play_button = QPushButton("Play")
        self.loop_box = QCheckBox("Loop")
        self.fps_box = QSpinBox()
        self.fps_box.setRange(1, 60)
        self.fps_box.setValue(10)
        self.fps_box.setSuffix(" fps")
        self.frames_box = QSpinBox()
        self.frames_box.setRange(2, 2000)
        self.frames_box.setValue(30)
        self.frames_box.setToolTip("Frames along the whole path, both ends included: for play and for export")

        self.view_box = QComboBox()
        for view in MOVIE_VIEWS:
            self.view_box.addItem(VIEW_NAMES[view], view)
        self.nifti_button = QPushButton("NIfTI files…")
        self.dicom_button = QPushButton("DICOM series…")
        self.dicom_button.setToolTip("A DICOM series folder per frame, marked SYNTHETIC")
        self.movie_button = QPushButton("Movie…")
        self.movie_button.setToolTip("GIF or MP4 (by the file name) of the chosen view, marked SYNTHETIC")

        keys = QGroupBox("Keyframes")
        key_layout = QVBoxLayout(keys)
        key_layout.addWidget(self.keyframe_list)
        for widgets in (
            (self.seed_box, self.add_seed_button, self.add_current_button),
            (self.up_button, self.down_button, self.remove_button),
        ):
            row = QHBoxLayout()
            for widget in widgets:
                row.addWidget(widget)
            key_layout.addLayout(row)
        method_form = QFormLayout()
        method_form.addRow("Method", self.method_box)
        key_layout.addLayout(method_form)

        path = QGroupBox("Path")
        path_layout = QVBoxLayout(path)
        slider_row = QHBoxLayout()
        slider_row.addWidget(self.slider, 1)
        slider_row.addWidget(self.t_label)
        play_row = QHBoxLayout()
        for widget in (self.play_button, self.loop_box, self.fps_box):
            play_row.addWidget(widget)
        path_layout.addLayout(slider_row)
        path_layout.addLayout(play_row)
        frames_form = QFormLayout()
        frames_form.addRow("Frames", self.frames_box)
        path_layout.addLayout(frames_form)

        export = QGroupBox("Export the sequence")
        export_layout = QFormLayout(export)
        export_layout.addRow("Movie of", self.view_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.nifti_button)
        buttons.addWidget(self.dicom_button)
        buttons.addWidget(self.movie_button)
        export_layout.addRow(buttons)

        layout = QVBoxLayout(self)
        for group in (keys, path, export):
            layout.addWidget(group)
        layout.addStretch(1)

        self.add_seed_button.clicked.connect(lambda: self.add_seed(self.seed_box.value()))
        self.add_current_button.clicked.connect(self.add_current)
        self.remove_button.clicked.connect(self.remove_selected)
        self.up_button.clicked.connect(lambda: self.move_selected(-1))
        self.down_button.clicked.connect(lambda: self.move_selected(+1))
        self.keyframe_list.currentRowChanged.connect(lambda _row: self._update_enabled())
        self.method_box.currentTextChanged.connect(
            lambda method: self.context.state.set_path(replace(self.context.state.path, method=method))
        )
        self.slider.valueChanged.connect(self._on_slider)
        self.slider.sliderReleased.connect(self._settle)
        self.play_button.clicked.connect(self.toggle_play)
        self.fps_box.valueChanged.connect(lambda fps: self._play_timer.setInterval(round(1000 / fps)))
        self.nifti_button.clicked.connect(self._choose_nifti_folder)
        self.dicom_button.clicked.connect(self._choose_dicom_folder)
        self.movie_button.clicked.connect(self._choose_movie)

    # -- keyframes -------------------------------------------------------------------------------

    @property
    def keyframes(self) -> list[Latent]:
        """The path's keyframes: they live in the application state (``state.path``)."""
        return list(self.context.state.path.keyframes)

    def _set_keyframes(self, keyframes: list[Latent], select: int | None = None) -> None:
        self.context.state.set_path(replace(self.context.state.path, keyframes=tuple(keyframes)))
        if select is not None:
            self.keyframe_list.setCurrentRow(select)

    @property
    def method(self) -> str:
        return self.context.state.path.method

    @property
    def t(self) -> float:
        return self.slider.value() / STEPS

    def add_seed(self, seed: int) -> None:
        model = self.context.state.model
        if model is None:
            self.context.show_message("Open a model first: a seed's latent depends on its size")
            return
        self._add(Latent(seed_to_z(seed, model.card.config.latent_dim), f"seed {seed}", seed))

    def add_current(self) -> None:
        latent = self.context.state.latent
        if latent is None:
            self.context.show_message("No latent shown yet")
            return
        self._add(Latent(latent.z.detach().cpu().float().reshape(1, -1), latent.label, latent.seed))

    def _add(self, latent: Latent) -> None:
        self._set_keyframes([*self.keyframes, latent], select=len(self.keyframes))

    def remove_selected(self) -> None:
        row, keyframes = self.keyframe_list.currentRow(), self.keyframes
        if 0 <= row < len(keyframes):
            del keyframes[row]
            self._set_keyframes(keyframes, select=min(row, len(keyframes) - 1))

    def move_selected(self, step: int) -> None:
        row, keyframes = self.keyframe_list.currentRow(), self.keyframes
        other = row + step
        if 0 <= row < len(keyframes) and 0 <= other < len(keyframes):
            keyframes[row], keyframes[other] = keyframes[other], keyframes[row]
            self._set_keyframes(keyframes, select=other)

    def _path_changed(self) -> None:
        """Follow the state's path: list and method; if the views show a point of the path, show the
        new path's point at t."""
        path = self.context.state.path
        row = self.keyframe_list.currentRow()
        self.keyframe_list.blockSignals(True)
        self.keyframe_list.clear()
        self.keyframe_list.addItems([f"{i + 1}. {k.label}" for i, k in enumerate(path.keyframes)])
        self.keyframe_list.setCurrentRow(min(row, len(path.keyframes) - 1))
        self.keyframe_list.blockSignals(False)
        if self.method_box.currentText() != path.method:
            self.method_box.setCurrentText(path.method)
        if self.slider.value() != round(path.t * STEPS):  # t set from elsewhere (a workspace)
            self.slider.blockSignals(True)
            self.slider.setValue(round(path.t * STEPS))
            self.slider.blockSignals(False)
            self.t_label.setText(f"t = {path.t:.3f}")
        self._update_enabled()
        structure = (tuple((k.key, k.label) for k in path.keyframes), path.method)
        changed, self._structure = structure != self._structure, structure  # (a move of t is not a change)
        if changed and self._shown is not None and self.context.state.latent is self._shown:
            self.show_t(self.t, FULL)

    def _on_model(self, model: LoadedModel | None) -> None:
        """Seeds are redrawn at the new model's latent size; other keyframes stay only if they fit."""
        self.stop()
        if model is None:
            return
        size, kept = model.card.config.latent_dim, []
        for key in self.keyframes:
            if key.seed is not None:
                kept.append(Latent(seed_to_z(key.seed, size), key.label, key.seed))
            elif key.z.shape[-1] == size:
                kept.append(key)
        if len(kept) < len(self.keyframes):
            dropped = len(self.keyframes) - len(kept)
            self.context.show_message(f"Interpolation: {dropped} keyframe(s) do not fit this model's latent size")
        self._shown = None
        self._set_keyframes(kept)

    def _update_enabled(self) -> None:
        ready = len(self.keyframes) >= 2
        for widget in (self.slider, self.play_button, self.nifti_button, self.dicom_button, self.movie_button):
            widget.setEnabled(ready)
        row = self.keyframe_list.currentRow()
        self.remove_button.setEnabled(row >= 0)
        self.up_button.setEnabled(row > 0)
        self.down_button.setEnabled(0 <= row < len(self.keyframes) - 1)

    # -- the t slider and play --------------------------------------------------------------------

    def show_t(self, t: float, quality: str = FULL) -> None:
        """Put the path's latent at ``t`` in the state (PREVIEW: anchor only; FULL: every part)."""
        if len(self.keyframes) < 2:
            return
        self.context.state.set_path(replace(self.context.state.path, t=t))
        z = path_point([k.z for k in self.keyframes], t, self.method)
        self._shown = Latent(z, path_label([k.label for k in self.keyframes], self.method, t), None)
        self.context.state.set_latent(self._shown, quality)

    @Slot(int)
    def _on_slider(self, value: int) -> None:
        self.t_label.setText(f"t = {value / STEPS:.3f}")
        moving = self.slider.isSliderDown() or self._play_timer.isActive()
        self.show_t(value / STEPS, PREVIEW if moving else FULL)
        if self.slider.isSliderDown():
            self._settle_timer.start()  # held still while still pressed: refine anyway

    @Slot()
    def _settle(self) -> None:
        self._settle_timer.stop()
        if not self._play_timer.isActive():
            self.show_t(self.t, FULL)

    def toggle_play(self) -> None:
        if self._play_timer.isActive():
            self.stop()
            return
        if len(self.keyframes) < 2:
            return
        if self.slider.value() >= STEPS and not self.loop_box.isChecked():
            self.slider.setValue(0)
        self._play_position = float(self.slider.value())
        self._play_timer.start(round(1000 / self.fps_box.value()))
        self.play_button.setText("Stop")

    def stop(self) -> None:
        """Stop playing and refine the frame where it stopped."""
        if not self._play_timer.isActive():
            return
        self._play_timer.stop()
        self.play_button.setText("Play")
        self.show_t(self.t, FULL)

    @Slot()
    def _tick(self) -> None:
        position = self._play_position + STEPS / (self.frames_box.value() - 1)
        if position > STEPS + 1e-6:
            if not self.loop_box.isChecked():
                self.stop()
                return
            position = 0.0  # loop: wrap around to the first keyframe
        self._play_position = min(position, STEPS)
        self.slider.setValue(round(self._play_position))

    # -- export --------------------------------------------------------------------------------

    def _choose_nifti_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the NIfTI frames")
        if folder:
            self.export(nifti_folder=folder)

    def _choose_dicom_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the DICOM series (one per frame)")
        if folder:
            self.export(dicom_folder=folder)

    def _choose_movie(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the movie", "interpolation.gif", "GIF animation (*.gif);;MP4 video (*.mp4)"
        )
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
            keyframes=tuple(k.z for k in self.keyframes),
            names=tuple(k.label for k in self.keyframes),
            method=self.method,
            frames=frames or self.frames_box.value(),
            truncation=state.truncation,
            nifti_folder=Path(nifti_folder) if nifti_folder else None,
            dicom_folder=Path(dicom_folder) if dicom_folder else None,
            movie=Path(movie) if movie else None,
            view=view,
            window=state.window,
            crosshair=tuple(float(c) for c in state.crosshair),
            fps=float(self.fps_box.value()),
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
            bridge = _FrameBridge(self._make_turntable(state.window), plan.frames, self)
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

    def _make_turntable(self, window: WindowLevel | None):
        state = self.context.state
        modality = state.model.card.modality if state.model else ""

        def make(volume) -> Turntable:
            return Turntable(
                state.render_mode,
                window or default_window(volume, modality),
                state.volume_preset,
                state.iso_value,
                modality,
            )

        return make

    @Slot(int, str)
    def _on_job_finished(self, ticket: int, _outcome: str) -> None:
        if ticket == self._export_ticket and self._bridge is not None:
            self._bridge.close()
            self._bridge = None

    def shutdown(self) -> None:
        """Stop the timers and the off-screen 3D renderer (called by the main window on close)."""
        self._play_timer.stop()
        self._settle_timer.stop()
        if self._bridge is not None:
            self._bridge.close()


class _FrameBridge(QObject):
    """Lets the export job (a worker thread) have 3D frames rendered on the UI thread, one at a time.

    VTK's OpenGL must stay on the thread that owns the app's GL contexts; the job emits a request,
    waits for the frame (checking for Cancel), and the UI thread renders between its other events.
    """

    wanted = Signal(object, int, str)  # volume, frame index, caption

    def __init__(self, make_turntable, count: int, parent: QObject):
        super().__init__(parent)
        self._make, self._count = make_turntable, count
        self._turntable: Turntable | None = None
        self._answers: queue.Queue = queue.Queue()
        self._closed = False
        self.wanted.connect(self._render, Qt.ConnectionType.QueuedConnection)

    def request(self, volume, index: int, caption: str, progress) -> np.ndarray:
        """Worker thread: the RGB frame of ``volume``, rendered by the UI thread."""
        self.wanted.emit(volume, index, caption)
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
    def _render(self, volume, index: int, caption: str) -> None:
        if self._closed:
            self._answers.put(Cancelled())
            return
        try:
            if self._turntable is None:
                self._turntable = self._make(volume)
            rgb = self._turntable.frame(volume, 360.0 * index / self._count)
            self._answers.put(burn_labels(rgb, caption))
        except Exception as error:  # reaches the job, which reports it as its one-line error
            self._answers.put(error)

    def close(self) -> None:
        self._closed = True
        if self._turntable is not None:
            self._turntable.close()
            self._turntable = None
