"""The Interpolation panel: a path through keyframe latents, a t slider with play/loop, and its export.

The path lives in the application state (``state.path``); the three parts edit it, move along it
and export it, and the panel keeps them in step with the state and the model.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ...context import AppContext
from ...state import Latent, LatentPath, LoadedModel
from .export import SequenceExport
from .keyframes import KeyframeEditor
from .player import PathPlayer


class InterpolationPanel(QWidget):
    """Keyframes (seeds or the current latent), lerp/slerp, t slider, play/loop, NIfTI/DICOM/GIF/MP4 export."""

    exported = Signal(object)  # sequence.SequenceResult, after an export finished

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.keys = KeyframeEditor(context)
        self.player = PathPlayer(context)
        self.exporter = SequenceExport(context, self.player)
        layout = QVBoxLayout(self)
        for part in (self.keys, self.player, self.exporter):
            layout.addWidget(part)
        layout.addStretch(1)
        self.exporter.exported.connect(self.exported)
        context.state.model_changed.connect(self._on_model)
        context.state.path_changed.connect(self._path_changed)
        self._update_enabled()

    @property
    def keyframes(self) -> list[Latent]:
        return self.keys.keyframes

    def add_seed(self, seed: int) -> None:
        self.keys.add_seed(seed)

    def export(
        self,
        nifti_folder: str | Path | None = None,
        movie: str | Path | None = None,
        dicom_folder: str | Path | None = None,
        view: str | None = None,
        frames: int | None = None,
    ) -> int | None:
        """Export ``frames`` volumes along the path as a job; returns its ticket (None if refused)."""
        return self.exporter.export(nifti_folder, movie, dicom_folder, view, frames)

    def _path_changed(self, path: LatentPath) -> None:
        self.keys.follow(path)
        self.player.follow(path)
        self._update_enabled()

    def _on_model(self, model: LoadedModel | None) -> None:
        self.player.stop()
        if model is not None:
            self.player.forget_shown()
            self.keys.refit(model)

    def _update_enabled(self) -> None:
        ready = len(self.keyframes) >= 2
        self.player.set_ready(ready)
        self.exporter.set_ready(ready)
        self.keys.update_buttons()

    def shutdown(self) -> None:
        """Stop the timers and the off-screen 3D renderer (called by the main window on close)."""
        self.player.shutdown()
        self.exporter.shutdown()
