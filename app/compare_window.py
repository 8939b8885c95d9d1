"""A/B comparison: two latents side by side, and their difference with a colour bar.

A and B are seeds, or the latent the main views show (a bookmark, an encoded scan, a moved latent);
B can come from a second model file of the same size (the same seed under two models).
The three panes share cameras and follow the application's crosshair; the probe line gives A, B
and A − B at the crosshair. The difference is drawn in diverging colours, symmetric about 0.
The window is made on first use (Tools > Compare A/B…).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.api import AnyModel, SampleRequest, Volume, load_model, sample_volume, seed_to_z

from .context import AppContext
from .panels.artifact_panel import DIFFERENCE_CMAP, difference_window
from .render.window_level import WindowLevel, default_window
from .state import Latent, LoadedModel
from .views.render_queue import take_turns
from .workers import INFERENCE

MAX_SEED = 2**31 - 1


def difference(a: Volume, b: Volume) -> Volume:
    """A − B voxel by voxel, in A's geometry and units, marked synthetic."""
    provenance = {"synthetic": True, "operation": "difference A - B", "a": a.provenance, "b": b.provenance}
    return Volume(a.array - b.array, a.affine, a.intensity, provenance)


class ColourBar(QWidget):
    """The difference colours from -w/2 (blue) through 0 (white) to +w/2 (red), with their values."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.bar = QLabel()
        self.low, self.high = QLabel(""), QLabel("")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.low)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.high)

    def set_range(self, half: float, unit: str) -> None:
        picture = QPixmap(240, 14)
        gradient = QLinearGradient(0, 0, 240, 0)
        gradient.setColorAt(0.0, QColor(5, 48, 97))  # RdBu_r's ends and middle
        gradient.setColorAt(0.5, QColor(247, 247, 247))
        gradient.setColorAt(1.0, QColor(103, 0, 31))
        painter = QPainter(picture)
        painter.fillRect(picture.rect(), gradient)
        painter.end()
        self.bar.setPixmap(picture)
        self.low.setText(f"{-half:.4g} {unit}".strip())
        self.high.setText(f"+{half:.4g} {unit}".strip())


class CompareWindow(QWidget):
    """A | B | A − B for two latents of the loaded model."""

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        from .views.pane import VolumePane  # VTK: loaded when the window is first made

        self.context = context
        self.setWindowTitle("Compare A/B — SYNTHETIC volumes")
        self.resize(1400, 800)
        self.latents: dict[str, Latent | None] = {"a": None, "b": None}
        self.volumes: dict[str, Volume] = {}
        self._showing: dict[str, Volume] | None = None  # volumes being drawn, pane by pane (show_volumes)
        self.seed_boxes, self.current_buttons = {}, {}
        controls = QHBoxLayout()
        for side in ("a", "b"):
            box = QSpinBox()
            box.setRange(0, MAX_SEED)
            box.setKeyboardTracking(False)
            button = QPushButton(f"{side.upper()} = shown latent")
            button.setToolTip("The latent the main window shows now (a bookmark, an encoded scan, a moved latent)")
            box.valueChanged.connect(lambda seed, side=side: self.set_seed(side, seed))
            button.clicked.connect(lambda _checked=False, side=side: self.use_current(side))
            controls.addWidget(QLabel(f"{side.upper()}: seed"))
            controls.addWidget(box)
            controls.addWidget(button)
            self.seed_boxes[side], self.current_buttons[side] = box, button
        self.model_b: LoadedModel | None = None  # None: B comes from the main window's model too
        self.model_b_button = QPushButton("B under: the same model")
        self.model_b_button.setToolTip("Generate B with another model file of the same size (one seed, two models)")
        self.model_b_button.clicked.connect(self._choose_model_b)
        controls.addWidget(self.model_b_button)
        self.compare_button = QPushButton("Compare")
        controls.addWidget(self.compare_button)
        controls.addStretch(1)
        self.panes = {"a": VolumePane("A"), "b": VolumePane("B"), "difference": VolumePane("Difference A − B")}
        self.panes["difference"].set_colormap(DIFFERENCE_CMAP)
        self.panes["difference"].set_3d_visible(False)
        for name in ("b", "difference"):
            self.panes[name].share_cameras(self.panes["a"])
        splitter = QSplitter(Qt.Orientation.Horizontal)
        for pane in self.panes.values():
            splitter.addWidget(pane)
            pane.picked.connect(context.state.set_crosshair)
        splitter.setSizes([1000, 1000, 1000])
        self.colour_bar = ColourBar()
        self.probe = QLabel("")
        self.probe.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        bottom = QHBoxLayout()
        bottom.addWidget(self.probe, 1)
        bottom.addWidget(QLabel("A − B"))
        bottom.addWidget(self.colour_bar)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(splitter, 1)
        layout.addLayout(bottom)
        self.compare_button.clicked.connect(self.compare)
        context.state.crosshair_changed.connect(self._on_crosshair)
        context.state.window_changed.connect(self._on_window)
        context.state.model_changed.connect(lambda _model: self._set_defaults())
        self._set_defaults()

    def _set_defaults(self) -> None:
        for side, box in self.seed_boxes.items():
            self.set_seed(side, box.value())

    def set_seed(self, side: str, seed: int) -> None:
        model = self.context.state.model
        if model is not None:
            self.latents[side] = Latent(seed_to_z(seed, model.card.config.latent_dim), f"seed {seed}", seed)

    def use_current(self, side: str) -> None:
        latent = self.context.state.latent
        if latent is not None:
            self.latents[side] = latent
            self.current_buttons[side].setText(f"{side.upper()} = {latent.label}"[:40])

    def _choose_model_b(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model for B", "", "Model files (*.safetensors)")
        if path:
            self.set_model_b(path)

    def set_model_b(self, path: str | None) -> int | None:
        """Load the model that makes B (a job); None goes back to the main window's model."""
        if path is None:
            self.model_b = None
            self.model_b_button.setText("B under: the same model")
            return None

        def done(model: AnyModel) -> None:
            self.model_b = LoadedModel(model, str(path))
            self.model_b_button.setText(f"B under: {Path(path).name}"[:48])  # the file: card names can repeat

        main = self.context.state.model
        device = main.model.device if main is not None else "cpu"  # B runs where A runs: same speed, same numerics
        return self.context.jobs.submit(
            "compare-model", f"Loading {Path(path).name}", lambda _progress: load_model(path, device=device), done,
            self.context.report_error, INFERENCE,
        )  # fmt: skip

    def compare(self) -> int | None:
        """Generate A and B (full volumes) as a job; the panes fill when both are done."""
        state = self.context.state
        a, b = self.latents["a"], self.latents["b"]
        if state.model is None or a is None or b is None:
            self.context.report_error("Open a model and choose A and B first")
            return None
        model, truncation = state.model.model, state.truncation
        model_b = self.model_b.model if self.model_b is not None else model
        if model_b is not model:  # the same seed under two models: both must make volumes on one grid
            if model_b.config.resolution != model.config.resolution:
                self.context.report_error(
                    f"B's model makes {model_b.config.resolution}³ volumes, A's {model.config.resolution}³: "
                    "choose models of the same size"
                )
                return None
            if b.seed is None and model_b.config.latent_dim != model.config.latent_dim:
                self.context.report_error("B is not a seed and B's model has another latent size: choose a seed for B")
                return None
            if b.seed is not None:
                b = Latent(seed_to_z(b.seed, model_b.config.latent_dim), b.label, b.seed)

        def work(progress):
            made = {}
            for number, (side, latent, net) in enumerate((("a", a, model), ("b", b, model_b))):
                progress(number, 2, f"Compare: {side.upper()} = {latent.label}")
                request = SampleRequest(latent.seed, latent=latent.z, truncation=truncation, origin=latent.label)
                made[side] = sample_volume(net, request)
            made["difference"] = difference(made["a"], made["b"])
            return made

        return self.context.jobs.submit(
            "compare", f"Comparing {a.label} with {b.label}", work, self.show_volumes, self.context.report_error,
            INFERENCE,
        )  # fmt: skip

    def show_volumes(self, volumes: dict[str, Volume]) -> None:
        """Fill the three panes, one per turn of the event loop (each after the previous pane's paint);
        ``volumes`` is set with the last one. A newer comparison arriving meanwhile drops the rest."""
        self._showing = volumes
        state = self.context.state
        modality = state.model.card.modality if state.model else ""
        window = state.window or default_window(volumes["a"], modality)
        spread = difference_window(volumes["difference"])

        def show(name: str) -> None:
            self.panes[name].crosshair = self.context.state.crosshair
            self.panes[name].set_volume(volumes[name], spread if name == "difference" else window, reset_camera=True)

        def shown() -> None:
            self._showing = None
            self.volumes = volumes
            self.panes["a"].setToolTip(volumes["a"].provenance.get("latent_origin", ""))
            self.panes["a"].header.setText(f"A: {self.latents['a'].label}")
            self.panes["b"].header.setText(f"B: {self.latents['b'].label}")
            self.colour_bar.set_range(spread.width / 2, volumes["a"].intensity.unit)
            self._update_probe()

        steps = [(pane, lambda name=name: show(name)) for name, pane in self.panes.items()]
        take_turns(self, list(self.panes.values()), steps, lambda: self._showing is volumes, shown)

    def _on_crosshair(self, position) -> None:
        for pane in self.panes.values():
            pane.crosshair = np.asarray(position, dtype=float)
            if pane.grid is not None:
                pane.set_crosshair(position)
        self._update_probe()

    def _on_window(self, window: WindowLevel) -> None:
        for name in ("a", "b"):
            if self.panes[name].grid is not None and window is not None:
                self.panes[name].set_window(window)

    def probe_values(self) -> dict[str, float]:
        """A, B and A − B at the crosshair."""
        return {name: pane.grid.value(self.context.state.crosshair) for name, pane in self.panes.items() if pane.grid}

    def _update_probe(self) -> None:
        values = self.probe_values()
        if len(values) == 3:
            unit = self.volumes["a"].intensity.unit
            position = ", ".join(f"{c:.1f}" for c in self.context.state.crosshair)
            a, b, d = values["a"], values["b"], values["difference"]
            self.probe.setText(f"at ({position}) mm:  A {a:.1f}  B {b:.1f}  A − B {d:.1f} {unit}".rstrip())

    def close_views(self) -> None:
        self._showing = None
        for pane in self.panes.values():
            pane.close_view()
