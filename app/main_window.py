"""The main window: a seed dock, the slice view and a status bar; heavy work goes to app.workers."""

from __future__ import annotations

import os
import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from pyvistaqt import QtInteractor

from engine.device import describe_device
from engine.model import HAGANModel
from engine.volume import Volume

from .render.slices import show_placeholder, show_volume
from .render.window_level import default_window
from .workers import Jobs, one_line

PLACEHOLDER = "No model loaded — File > Open model…"
MAX_SEED = 2**31 - 1
OFFICIAL_RESOLUTIONS = ["128", "256"]


class MainWindow(QMainWindow):
    """Shows the full generated volume of one seed as three orthogonal slices."""

    volume_shown = Signal(int)  # seed, after its frame was rendered
    error_reported = Signal(str)  # one-line cause

    def __init__(self, interactive: bool = True, parent: QWidget | None = None):
        super().__init__(parent)
        self.interactive = interactive  # False: errors are only signalled, no dialog
        self.model: HAGANModel | None = None
        self.model_name = ""
        self.shown_seed: int | None = None
        self._geometry: tuple | None = None
        self._started = 0.0

        self.setWindowTitle("GAN Volume Explorer")
        self.resize(1200, 800)
        self.plotter = QtInteractor(self, auto_update=False)
        self.plotter.add_axes(xlabel="R", ylabel="A", zlabel="S", color="white")
        self.setCentralWidget(self.plotter)

        self.jobs = Jobs(self)
        self.jobs.model_loaded.connect(self._on_model_loaded)
        self.jobs.volume_ready.connect(self._on_volume_ready)
        self.jobs.failed.connect(self.report_error)

        self._build_menu()
        self._build_seed_dock()
        self.model_label = QLabel("No model")
        self.statusBar().addPermanentWidget(self.model_label)
        self._set_controls_enabled(False)
        show_placeholder(self.plotter, PLACEHOLDER)

    # -- building ---------------------------------------------------------------------------

    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu("&File")
        self.open_action = QAction("&Open model…", self, shortcut=QKeySequence.StandardKey.Open)
        self.open_action.triggered.connect(self.open_model_dialog)
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        menu.addAction(self.open_action)
        menu.addSeparator()
        menu.addAction(quit_action)

    def _build_seed_dock(self) -> None:
        self.seed_box = QSpinBox(minimum=0, maximum=MAX_SEED, keyboardTracking=False)
        self.seed_box.setToolTip("Seed of the latent vector (reproducible)")
        self.seed_box.valueChanged.connect(self.request_volume)
        self.previous_button = QPushButton("Previous")
        self.next_button = QPushButton("Next")
        self.previous_button.clicked.connect(lambda: self.seed_box.stepBy(-1))
        self.next_button.clicked.connect(lambda: self.seed_box.stepBy(1))

        buttons = QHBoxLayout()
        buttons.addWidget(self.previous_button)
        buttons.addWidget(self.next_button)
        layout = QVBoxLayout()
        layout.addWidget(QLabel("Seed"))
        layout.addWidget(self.seed_box)
        layout.addLayout(buttons)
        layout.addStretch(1)
        panel = QWidget()
        panel.setLayout(layout)

        dock = QDockWidget("Latent", self)
        dock.setObjectName("latent_dock")
        dock.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        dock.setWidget(panel)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)

    def _set_controls_enabled(self, enabled: bool) -> None:
        for widget in (self.seed_box, self.previous_button, self.next_button):
            widget.setEnabled(enabled)

    # -- actions ----------------------------------------------------------------------------

    @Slot()
    def open_model_dialog(self) -> None:
        """Ask for a model file (and the resolution of official HA-GAN files), then load it."""
        path, _ = QFileDialog.getOpenFileName(
            self, "Open model", "", "Model files (*.safetensors *.pth);;All files (*)"
        )
        if not path:
            return
        resolution = None
        if Path(path).suffix != ".safetensors":
            question = "Official HA-GAN files do not record their resolution:"
            choice, ok = QInputDialog.getItem(self, "Resolution", question, OFFICIAL_RESOLUTIONS, 0, False)
            if not ok:
                return
            resolution = int(choice)
        self.open_model(path, resolution)

    def open_model(self, path: str | os.PathLike, resolution: int | None = None) -> None:
        """Load a model in the background; its first volume follows when it is ready."""
        self.statusBar().showMessage(f"Loading {Path(path).name}…")
        self.jobs.load(path, resolution)

    @Slot()
    def request_volume(self) -> None:
        """Generate the current seed's volume in the background (newer requests win)."""
        if self.model is None:
            return
        seed = self.seed_box.value()
        self.statusBar().showMessage(f"Generating seed {seed}…")
        self._started = time.perf_counter()
        self.jobs.generate(self.model, seed)

    @Slot(str)
    def report_error(self, message: str) -> None:
        """Show a one-line cause: status bar, signal, and a dialog when interactive."""
        self.statusBar().showMessage(f"Error: {message}")
        self.error_reported.emit(message)
        if self.interactive:
            QMessageBox.critical(self, "Error", message)

    # -- results ----------------------------------------------------------------------------

    @Slot(object, str)
    def _on_model_loaded(self, model: HAGANModel, path: str) -> None:
        card = model.card
        self.model, self.model_name, self._geometry = model, card.name or Path(path).stem, None
        summary = f"{card.modality.upper()} {card.config.resolution}³"
        self.model_label.setText(f"{self.model_name} · {summary} · {describe_device(model.device)}")
        self.setWindowTitle(f"{self.model_name} — GAN Volume Explorer")
        self._set_controls_enabled(True)
        self.request_volume()

    @Slot(int, object)
    def _on_volume_ready(self, seed: int, volume: Volume) -> None:
        try:
            window = default_window(volume)
            geometry = (volume.array.shape, volume.affine.tobytes())
            size = "×".join(map(str, volume.array.shape))
            spacing = "×".join(f"{s:g}" for s in volume.spacing)
            caption = f"{self.model_name} · seed {seed} · {window.label(volume.intensity.unit)} · {size} @ {spacing} mm"
            show_volume(self.plotter, volume, window, caption, reset_camera=geometry != self._geometry)
        except Exception as error:  # a bad volume must not take the window down
            self.report_error(f"cannot show seed {seed}: {one_line(error)}")
            return
        self._geometry, self.shown_seed = geometry, seed
        self.statusBar().showMessage(f"Seed {seed} ready ({time.perf_counter() - self._started:.1f} s)")
        self.volume_shown.emit(seed)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.jobs.shutdown()
        self.plotter.close()
        super().closeEvent(event)
