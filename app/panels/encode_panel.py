"""Encode a real scan: preprocess it as the model was trained, encode to z, rebuild it, compare.

The scan is a NIfTI file or a DICOM series folder (several series in one folder: the user picks one).
HA-GAN models with encoders map a scan to a latent z (engine.encode). The panel shows the
preprocessed original | the full reconstruction from z | their difference, with PSNR and SSIM over
the volume and inside the foreground next to a blank and a mean-valued constant volume, and
"Use as latent" makes z the current latent (so it can become an interpolation endpoint).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QPushButton, QSplitter, QVBoxLayout, QWidget

from engine.api import (
    SeveralSeriesError,
    encode_scan,
    encoding_volumes,
    metrics_lines,
    prepare_scan,
    scan_name,
)

from ..context import AppContext
from ..render.window_level import WindowLevel, centred_window, default_window
from ..settings import recent_files, remember_file
from ..state import Latent, LoadedModel
from ..views.pane import VolumePane
from ..views.render_queue import take_turns
from ..volume_files import choose_series
from ..workers import INFERENCE
from .status_label import StatusLabel

DIFFERENCE_CMAP = "RdBu_r"
RECENT_KEY = "recent/scans"
WIDE = 1000  # pixels: from this panel width on, the three panes sit side by side instead of stacked
NIFTI_FILES = "NIfTI volumes (*.nii *.nii.gz);;All files (*)"
TITLES = {
    "original": "Original (preprocessed for the model)",
    "reconstruction": "Reconstruction G(E(x))",
    "difference": "Difference: reconstruction − original",
}


def encode_file(model, path: str, progress, series: str | None = None) -> tuple[str, object, dict]:
    """The job: read and preprocess the scan (a DICOM folder: ``series`` picks one of several), encode,
    reconstruct; returns (name, Encoding, Volumes)."""
    name = scan_name(path)
    progress(0, 3, f"{name}: reading and preprocessing")
    prepared = prepare_scan(path, model.card, series=series, progress=progress)
    progress(1, 3, f"{name}: encoding and reconstructing")
    encoding = encode_scan(model, prepared)
    progress(2, 3, f"{name}: comparing")
    return name, encoding, encoding_volumes(model, encoding, name)


class EncodePanel(QWidget):
    """Open a NIfTI or a DICOM series, see original | reconstruction | difference with PSNR/SSIM, use z
    as the latent."""

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.encoded: tuple[str, object, LoadedModel] | None = None  # (name, Encoding, model it belongs to)
        self._showing = None  # the Encoding being drawn, pane by pane (show_encoding)
        self.open_button = QPushButton("Open NIfTI…")
        self.open_button.setToolTip("A real scan (.nii / .nii.gz) to encode with this model's encoders")
        self.dicom_button = QPushButton("Open DICOM series…")
        self.dicom_button.setToolTip("A real scan as a folder of DICOM images, to encode with this model's encoders")
        self.use_button = QPushButton("Use as latent")
        self.use_button.setToolTip("Show the reconstruction's latent in the views; interpolation can start from it")
        self.use_button.setEnabled(False)
        self.status = StatusLabel()
        self.metrics = StatusLabel()  # wraps: long metric lines must not widen the docked panel
        self.metrics.setMinimumHeight(0)  # empty until a scan is encoded
        self.metrics.setStyleSheet("font-weight: bold;")
        self.metrics.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.panes = {part: VolumePane(title) for part, title in TITLES.items()}
        for pane in self.panes.values():
            if pane is not self.panes["original"]:
                pane.share_cameras(self.panes["original"])
        self.panes["difference"].set_colormap(DIFFERENCE_CMAP)
        self.panes["difference"].set_3d_visible(False)

        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.dicom_button)
        buttons.addWidget(self.use_button)
        buttons.addStretch(1)
        self.splitter = splitter = QSplitter(Qt.Orientation.Vertical)
        for pane in self.panes.values():
            splitter.addWidget(pane)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.metrics)
        layout.addWidget(splitter, 1)

        state = context.state
        self.open_button.clicked.connect(self.choose_file)
        self.dicom_button.clicked.connect(self.choose_dicom_folder)
        self.use_button.clicked.connect(self.use_as_latent)
        for pane in self.panes.values():
            pane.picked.connect(state.set_crosshair)
            pane.camera_moved.connect(self._render_panes)
        state.model_changed.connect(self._on_model)
        state.crosshair_changed.connect(self._on_crosshair)
        state.window_changed.connect(self._on_window)
        self._on_model(state.model)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        wide = self.width() >= WIDE  # a docked panel is narrow: panes above each other
        self.splitter.setOrientation(Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical)

    # -- state -> panel ----------------------------------------------------------------------------

    def _on_model(self, model: LoadedModel | None) -> None:
        self.encoded = self._showing = None
        self.use_button.setEnabled(False)
        self.metrics.setText("")
        self.metrics.setMinimumHeight(0)
        able = model is not None and model.model.has_encoders
        self.open_button.setEnabled(able)
        self.dicom_button.setEnabled(able)
        if model is None:
            text = "Open a model with encoders, then a scan (NIfTI or DICOM series) to encode."
        elif not able:
            text = f"{model.name} has no encoders (E and Sub_E): it cannot encode a scan."
        else:
            about = f"{model.name} ({model.resolution}³, {model.card.modality})"
            text = f"Open a scan (NIfTI or DICOM series) to encode with {about}."
        self.status.setText(text)
        for pane in self.panes.values():
            pane.modality = model.card.modality if model else ""
            pane.show_message(text)

    def _on_crosshair(self, position) -> None:
        for pane in self.panes.values():
            pane.crosshair = np.asarray(position, dtype=float)
            if pane.grid is not None:
                pane.set_crosshair(position)

    def _on_window(self, window: WindowLevel) -> None:
        for part in ("original", "reconstruction"):
            if self.panes[part].grid is not None and window is not None:
                self.panes[part].set_window(window)

    def _render_panes(self) -> None:
        for pane in self.panes.values():
            pane.render()

    # -- encode ------------------------------------------------------------------------------------

    def choose_file(self) -> None:
        recent = recent_files(RECENT_KEY)
        start = str(Path(recent[0]).parent) if recent else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open a scan to encode", start, NIFTI_FILES)
        if path:
            self.open_path(path)

    def choose_dicom_folder(self) -> None:
        recent = recent_files(RECENT_KEY)
        start = str(Path(recent[0]).parent) if recent else ""
        folder = QFileDialog.getExistingDirectory(self, "Open a DICOM series to encode (a folder of images)", start)
        if folder:
            self.open_dicom_folder(folder)

    def open_dicom_folder(self, folder: str) -> None:
        """Encode a DICOM series folder (one job: headers, images, encoding); a folder holding several
        series asks which one first."""
        self.open_path(folder)

    def _can_encode(self) -> bool:
        model = self.context.state.model
        if model is None or not model.model.has_encoders:
            self.context.report_error("the current model has no encoders: it cannot encode a scan")
            return False
        return True

    def open_path(self, path: str, series: str | None = None) -> None:
        """Encode a NIfTI file or a DICOM series folder (``series``: which of several) on the model's
        thread; the panes fill in when it is done."""
        if not self._can_encode():
            return
        model = self.context.state.model
        path = str(path)
        self.status.setText(f"Encoding {Path(path).name}…")

        def work(progress):
            try:
                return encode_file(model.model, path, progress, series)
            except SeveralSeriesError as several:
                return several.series  # read the headers only: the user picks one

        def done(result) -> None:
            if self.context.state.model is not model:
                return  # a different model was opened meanwhile
            if isinstance(result, list):
                self._choose_series(path, result)
                return
            remember_file(path, RECENT_KEY)
            self.show_encoding(*result, model)

        self.context.jobs.submit(
            "encode",
            f"Encoding {Path(path).name}",
            work,
            done,
            self._failed,
            pool=INFERENCE,
        )

    def _choose_series(self, folder: str, found) -> None:
        uid = choose_series(self, found)
        if uid is not None:
            self.open_path(folder, uid)
        else:
            self.status.setText(f"No series chosen in {Path(folder).name}: nothing was encoded.")

    def _failed(self, message: str) -> None:
        self.status.setText(f"Could not encode: {message}")
        self.context.report_error(message)

    def show_encoding(self, name: str, encoding, volumes: dict, model: LoadedModel) -> None:
        """Show the three volumes, one pane per turn of the event loop (each after the previous pane's
        paint), and the round-trip metrics with the last; a newer encoding or model drops the rest."""
        self._showing, self.encoded = encoding, None
        self.use_button.setEnabled(False)
        state = self.context.state
        window = state.window or default_window(volumes["original"], model.card.modality)

        def show(part: str) -> None:
            pane, volume = self.panes[part], volumes.get(part)
            if volume is None:
                pane.show_message("No reconstruction: a conditional model needs a class.")
                return
            pane.crosshair = self.context.state.crosshair
            pane.set_volume(volume, centred_window(volume.array) if part == "difference" else window)

        def shown() -> None:
            self._showing = None
            self.encoded = (name, encoding, model)
            m = encoding.metrics
            lines = metrics_lines(m) if m else []
            self.metrics.setText("\n".join(lines))
            self.metrics.setMinimumHeight(2 * len(lines) * self.metrics.fontMetrics().lineSpacing())  # room to wrap
            self.metrics.setToolTip("On [0, 1] data (range 1). blank: a constant background; mean: the original's mean")
            text = f"Encoded {name}: z has {encoding.z.shape[-1]} values. 'Use as latent' shows it."
            self.status.setText(" ".join([*(f"Warning: {w}" for w in encoding.warnings), text]))
            self.use_button.setEnabled(True)

        def wanted() -> bool:
            return self._showing is encoding and self.context.state.model is model

        steps = [(pane, lambda part=part: show(part)) for part, pane in self.panes.items()]
        take_turns(self, list(self.panes.values()), steps, wanted, shown)

    def use_as_latent(self) -> None:
        """Make the encoded z the current latent (label 'encoded <name>')."""
        if self.encoded is None:
            return
        name, encoding, model = self.encoded
        if self.context.state.model is not model:
            self.context.report_error("this latent belongs to another model; encode the scan again")
            return
        self.context.state.set_latent(Latent(encoding.z.clone(), f"encoded {name}", None))

    def shutdown(self) -> None:
        """Close the VTK views while their GL context lives (MainWindow.closeEvent calls this)."""
        for pane in self.panes.values():
            pane.close_view()
