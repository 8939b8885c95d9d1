"""The path's keyframes: seeds or the latent the views show, in order, and the method between them.

The keyframes live in the application state (``state.path``); this box edits them and follows them.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.api import INTERPOLATION_METHODS, seed_to_z

from ...context import AppContext
from ...state import Latent, LatentPath, LoadedModel
from ..latent_panel import MAX_SEED


class KeyframeEditor(QGroupBox):
    """Add a seed or the current latent (a bookmark, an encoded scan), reorder, remove; lerp or slerp."""

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__("Keyframes", parent)
        self.context = context
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

        layout = QVBoxLayout(self)
        layout.addWidget(self.keyframe_list)
        for widgets in (
            (self.seed_box, self.add_seed_button, self.add_current_button),
            (self.up_button, self.down_button, self.remove_button),
        ):
            row = QHBoxLayout()
            for widget in widgets:
                row.addWidget(widget)
            layout.addLayout(row)
        method_form = QFormLayout()
        method_form.addRow("Method", self.method_box)
        layout.addLayout(method_form)

        self.add_seed_button.clicked.connect(lambda: self.add_seed(self.seed_box.value()))
        self.add_current_button.clicked.connect(self.add_current)
        self.remove_button.clicked.connect(self.remove_selected)
        self.up_button.clicked.connect(lambda: self.move_selected(-1))
        self.down_button.clicked.connect(lambda: self.move_selected(+1))
        self.keyframe_list.currentRowChanged.connect(lambda _row: self.update_buttons())
        self.method_box.currentTextChanged.connect(
            lambda method: self.context.state.set_path(replace(self.context.state.path, method=method))
        )

    @property
    def keyframes(self) -> list[Latent]:
        """The path's keyframes: they live in the application state (``state.path``)."""
        return list(self.context.state.path.keyframes)

    def set_keyframes(self, keyframes: list[Latent], select: int | None = None) -> None:
        self.context.state.set_path(replace(self.context.state.path, keyframes=tuple(keyframes)))
        if select is not None:
            self.keyframe_list.setCurrentRow(select)

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
        self.set_keyframes([*self.keyframes, latent], select=len(self.keyframes))

    def remove_selected(self) -> None:
        row, keyframes = self.keyframe_list.currentRow(), self.keyframes
        if 0 <= row < len(keyframes):
            del keyframes[row]
            self.set_keyframes(keyframes, select=min(row, len(keyframes) - 1))

    def move_selected(self, step: int) -> None:
        row, keyframes = self.keyframe_list.currentRow(), self.keyframes
        other = row + step
        if 0 <= row < len(keyframes) and 0 <= other < len(keyframes):
            keyframes[row], keyframes[other] = keyframes[other], keyframes[row]
            self.set_keyframes(keyframes, select=other)

    def follow(self, path: LatentPath) -> None:
        """Show the state's path: its keyframes in the list (keeping the selected row) and its method."""
        row = self.keyframe_list.currentRow()
        self.keyframe_list.blockSignals(True)
        self.keyframe_list.clear()
        self.keyframe_list.addItems([f"{i + 1}. {k.label}" for i, k in enumerate(path.keyframes)])
        self.keyframe_list.setCurrentRow(min(row, len(path.keyframes) - 1))
        self.keyframe_list.blockSignals(False)
        if self.method_box.currentText() != path.method:
            self.method_box.setCurrentText(path.method)

    def refit(self, model: LoadedModel) -> None:
        """Seeds are redrawn at the new model's latent size; other keyframes stay only if they fit."""
        size, kept = model.card.config.latent_dim, []
        for key in self.keyframes:
            if key.seed is not None:
                kept.append(Latent(seed_to_z(key.seed, size), key.label, key.seed))
            elif key.z.shape[-1] == size:
                kept.append(key)
        if len(kept) < len(self.keyframes):
            dropped = len(self.keyframes) - len(kept)
            self.context.show_message(f"Interpolation: {dropped} keyframe(s) do not fit this model's latent size")
        self.set_keyframes(kept)

    def update_buttons(self) -> None:
        row = self.keyframe_list.currentRow()
        self.remove_button.setEnabled(row >= 0)
        self.up_button.setEnabled(row > 0)
        self.down_button.setEnabled(0 <= row < len(self.keyframes) - 1)
