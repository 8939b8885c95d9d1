"""Directions panel: one slider per SeFa direction (±3σ) moving the current latent, names, and sweeps.

The latent shown when the sliders were last at rest is the base; the panel shows
base + Σ α_k·n_k. While a slider moves it asks for PREVIEW latents (anchor only); on release, or
when the slider stands still for SETTLE_MS, for FULL. A latent set elsewhere (a seed, a bookmark,
the gallery) becomes the new base and the sliders go back to 0. A sweep exports the frames from
-3σ to +3σ along one direction as NIfTI files or a movie, like an interpolation.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.api import SIGMA_RANGE, ConfigError, Directions, move, move_along, sefa

from ..context import AppContext
from ..direction_names import DirectionNames
from ..movie import SLICE_AXES
from ..sequence import SequencePlan, export_sequence
from ..settings import user_data_dir
from ..state import FULL, PREVIEW, Latent, LoadedModel
from ..workers import INFERENCE
from .movie_dialog import choose_movie

STEPS_PER_SIGMA = 100  # slider positions per σ
SETTLE_MS = 150
DEFAULT_COUNT = 6


class DirectionsPanel(QWidget):
    """K sliders over the strongest SeFa directions of the loaded model."""

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.directions: Directions | None = None
        self.names = DirectionNames(user_data_dir() / "directions.json")
        if self.names.problem:  # after the window is up, so the dialog has a parent to sit on
            QTimer.singleShot(0, lambda message=self.names.problem: context.report_error(message))
        self.base: Latent | None = None  # the latent the sliders move
        self._shown: Latent | None = None  # the latent this panel last put in the state
        self.sliders: list[QSlider] = []
        self.name_edits: list[QLineEdit] = []
        self._value_labels: list[QLabel] = []
        self._build()
        self._settle_timer = QTimer(self, singleShot=True, interval=SETTLE_MS)
        self._settle_timer.timeout.connect(lambda: self._show(FULL))
        context.state.model_changed.connect(self._on_model)
        context.state.latent_changed.connect(self._on_latent)

    def _build(self) -> None:
        self.intro = QLabel("Open a model to see its directions.")
        self.intro.setWordWrap(True)
        self.count_box = QSpinBox()
        self.count_box.setRange(1, 20)
        self.count_box.setValue(DEFAULT_COUNT)
        self.count_box.setKeyboardTracking(False)
        self.reset_button = QPushButton("All to 0")
        self.reset_button.setToolTip("Back to the latent the sliders started from")
        self.grid = QGridLayout()
        self.grid.setColumnStretch(2, 1)
        rows = QGroupBox("Directions (SeFa: strongest first, share of the first layer's response)")
        rows.setLayout(self.grid)

        self.sweep_box = QComboBox()
        self.view_box = QComboBox()
        self.view_box.addItems(list(SLICE_AXES))
        self.frames_box = QSpinBox()
        self.frames_box.setRange(3, 301)
        self.frames_box.setValue(13)
        self.nifti_button = QPushButton("NIfTI files…")
        self.movie_button = QPushButton("Movie…")
        self.movie_button.setToolTip("GIF or MP4 of the chosen slice, -3σ to +3σ, marked SYNTHETIC")
        sweep = QGroupBox("Sweep one direction (-3σ to +3σ)")
        form = QFormLayout(sweep)
        form.addRow("Direction", self.sweep_box)
        form.addRow("Movie of", self.view_box)
        form.addRow("Frames", self.frames_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.nifti_button)
        buttons.addWidget(self.movie_button)
        form.addRow(buttons)

        top = QHBoxLayout()
        top.addWidget(QLabel("Directions"))
        top.addWidget(self.count_box)
        top.addStretch(1)
        top.addWidget(self.reset_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addLayout(top)
        layout.addWidget(rows)
        layout.addWidget(sweep)
        layout.addStretch(1)

        self.count_box.valueChanged.connect(lambda _count: self._compute())
        self.reset_button.clicked.connect(self.reset)
        self.nifti_button.clicked.connect(self._choose_nifti)
        self.movie_button.clicked.connect(self._choose_movie)
        self._update_enabled()

    # -- directions ------------------------------------------------------------------------------

    def _model_key(self) -> str:
        model = self.context.state.model
        return "" if model is None else model.card.content_hash or model.path

    def _on_model(self, model: LoadedModel | None) -> None:
        latent = self.context.state.latent  # (the latent panel may have shown the new model's seed already)
        fits = model is not None and latent is not None and latent.z.shape[-1] == model.card.config.latent_dim
        self.directions, self.base, self._shown = None, latent if fits else None, None
        self._fill_rows()
        if model is not None:
            self._compute()

    def _compute(self) -> None:
        """SeFa of the loaded model, on the inference thread (milliseconds for the demo models)."""
        model = self.context.state.model
        if model is None:
            return
        count = min(self.count_box.value(), model.card.config.latent_dim)

        def done(directions: Directions) -> None:
            self.directions = directions
            self._fill_rows()
            if self._shown is not None and self._shown is not self.base:
                self._show(FULL)  # new sliders start at 0: the views go back to the starting latent

        self.context.jobs.submit(
            "directions",
            "Finding latent directions",
            lambda _p: sefa(model.model, count),
            done,
            self.context.report_error,
            INFERENCE,
        )

    def _fill_rows(self) -> None:
        while self.grid.count():
            widget = self.grid.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.sliders, self.name_edits, self._value_labels = [], [], []
        self.sweep_box.clear()
        directions = self.directions
        if directions is None:
            self.intro.setText("Open a model to see its directions." if self.context.state.model is None else "…")
            self._update_enabled()
            return
        self.intro.setText(
            f"Sliders move the shown latent along the {len(directions)} directions that change the generator's "
            f"first layer ({directions.layer}) most: ±3σ keeps it as typical as a random one."
        )
        names = self.names.names(self._model_key())
        for k, share in enumerate(directions.shares):
            name = QLineEdit(names.get(k, ""))
            name.setPlaceholderText(f"direction {k + 1}")
            name.setToolTip("Name this direction (kept for this model)")
            name.editingFinished.connect(lambda k=k, edit=name: self.rename(k, edit.text()))
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(-round(SIGMA_RANGE * STEPS_PER_SIGMA), round(SIGMA_RANGE * STEPS_PER_SIGMA))
            slider.setToolTip("α along this unit direction, in σ of the latent: anchor preview while dragging")
            slider.valueChanged.connect(self._on_slider)
            slider.sliderReleased.connect(lambda: self._show(FULL))
            value = QLabel("+0.00σ")
            value.setMinimumWidth(value.fontMetrics().horizontalAdvance("+0.00σ") + 6)
            self.grid.addWidget(name, k, 0)
            self.grid.addWidget(QLabel(f"{100 * share:.1f}%"), k, 1)
            self.grid.addWidget(slider, k, 2)
            self.grid.addWidget(value, k, 3)
            self.sliders.append(slider)
            self.name_edits.append(name)
            self._value_labels.append(value)
            self.sweep_box.addItem(self.direction_name(k), k)
        self._update_enabled()

    def direction_name(self, k: int) -> str:
        text = self.name_edits[k].text().strip() if k < len(self.name_edits) else ""
        return text or f"direction {k + 1}"

    def rename(self, k: int, name: str) -> None:
        try:
            self.names.rename(self._model_key(), k, name)
        except OSError as error:
            if k < len(self.name_edits):  # the field shows the name that is kept
                self.name_edits[k].setText(self.names.names(self._model_key()).get(k, ""))
            self.context.report_error(f"{self.names.path}: cannot save direction names ({error.strerror or error})")
        if k < self.sweep_box.count():
            self.sweep_box.setItemText(k, self.direction_name(k))

    def _update_enabled(self) -> None:
        ready = self.directions is not None and self.context.state.latent is not None
        for widget in (self.reset_button, self.nifti_button, self.movie_button, *self.sliders):
            widget.setEnabled(ready)

    # -- moving the latent ------------------------------------------------------------------------

    @property
    def alphas(self) -> list[float]:
        return [slider.value() / STEPS_PER_SIGMA for slider in self.sliders]

    def set_alpha(self, k: int, alpha: float) -> None:
        """Move slider ``k`` to α (in σ); the views show the moved latent at full resolution."""
        self.sliders[k].setValue(round(alpha * STEPS_PER_SIGMA))

    def _on_latent(self, latent: Latent, _quality: str) -> None:
        if latent is self._shown:
            return
        self.base, self._shown = latent, None  # a latent from elsewhere: the sliders start from it
        for slider, label in zip(self.sliders, self._value_labels):
            slider.blockSignals(True)
            slider.setValue(0)
            slider.blockSignals(False)
            label.setText("+0.00σ")
        self._update_enabled()

    @Slot(int)
    def _on_slider(self, _value: int) -> None:
        for alpha, label in zip(self.alphas, self._value_labels):
            label.setText(f"{alpha:+.2f}σ")
        moving = any(slider.isSliderDown() for slider in self.sliders)
        self._show(PREVIEW if moving else FULL)
        if moving:
            self._settle_timer.start()

    def _show(self, quality: str) -> None:
        if quality == FULL:
            self._settle_timer.stop()
        base, directions = self.base, self.directions
        if base is None or directions is None:
            return
        alphas = self.alphas
        if not any(alphas):
            self._shown = base  # exactly the starting latent again
        else:
            steps = " ".join(f"{a:+.2f}σ {self.direction_name(k)}" for k, a in enumerate(alphas) if a)
            self._shown = Latent(move_along(base.z, directions, alphas), f"{base.label} {steps}", None)
        self.context.state.set_latent(self._shown, quality)

    def reset(self) -> None:
        for slider in self.sliders:
            slider.blockSignals(True)
            slider.setValue(0)
            slider.blockSignals(False)
        self._on_slider(0)

    # -- sweeps ----------------------------------------------------------------------------------

    def _choose_nifti(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the sweep's NIfTI frames")
        if folder:
            self.export_sweep(nifti_folder=folder)

    def _choose_movie(self) -> None:
        path = choose_movie(self, "Save the sweep", "sweep.gif")
        if path:
            self.export_sweep(movie=path)

    def export_sweep(
        self, k: int | None = None, nifti_folder: str | Path | None = None, movie: str | Path | None = None
    ) -> int | None:
        """Frames from -3σ to +3σ along direction ``k`` from the shown latent, as a job; returns its ticket."""
        state, directions = self.context.state, self.directions
        if state.model is None or directions is None or state.latent is None:
            self.context.report_error("Open a model and show a latent before exporting a sweep")
            return None
        k = self.sweep_box.currentData() if k is None else k
        z = state.latent.z.detach().cpu().float().reshape(1, -1)
        vector, name = directions.vectors[k], self.direction_name(k)
        ends = (move(z, vector, -SIGMA_RANGE), move(z, vector, SIGMA_RANGE))
        plan = SequencePlan(
            keyframes=ends,
            names=(f"{state.latent.label} -3σ {name}", f"+3σ {name}"),
            method="lerp",  # a straight line: frame i is z + α_i·n with α evenly spaced in [-3, 3]
            frames=self.frames_box.value(),
            truncation=state.truncation,
            nifti_folder=Path(nifti_folder) if nifti_folder else None,
            movie=Path(movie) if movie else None,
            view=self.view_box.currentText(),
            window=state.window,
            crosshair=tuple(float(c) for c in state.crosshair),
            modality=state.model.card.modality,
            prefix="sweep",
        )
        try:
            plan.check()
        except ConfigError as error:
            self.context.report_error(str(error))
            return None
        model = state.model.model

        def done(result) -> None:
            self.context.show_message(f"Exported {result.frames} sweep frames to {result.movie or nifti_folder}")

        return self.context.jobs.submit(
            "export-sweep",
            f"Exporting a sweep along {name}",
            lambda progress: export_sequence(model, plan, progress),
            done,
            self.context.report_error,
            INFERENCE,
        )
