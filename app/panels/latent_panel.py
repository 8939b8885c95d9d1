"""Latent panel: which latent the views show (seed, random, previous/next, truncation)."""

from __future__ import annotations

import random

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QDoubleSpinBox, QFormLayout, QHBoxLayout, QPushButton, QSpinBox, QVBoxLayout, QWidget

from engine.latent import seed_to_z

from ..context import AppContext
from ..state import Latent, LoadedModel

MAX_SEED = 2**31 - 1


class LatentPanel(QWidget):
    """Seed box (reproducible: the same seed gives the same volume anywhere) and truncation."""

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.seed_box = QSpinBox()
        self.seed_box.setRange(0, MAX_SEED)
        self.seed_box.setToolTip("z = randn(latent_dim) from a CPU generator seeded with this number")
        self.seed_box.setKeyboardTracking(False)  # typing 123 asks for one volume, not three
        self.previous_button = QPushButton("◀")
        self.next_button = QPushButton("▶")
        self.random_button = QPushButton("Random")
        self.previous_button.setToolTip("Previous seed (P)")
        self.next_button.setToolTip("Next seed (N)")
        self.truncation_box = QDoubleSpinBox()
        self.truncation_box.setRange(0.0, 2.0)
        self.truncation_box.setSingleStep(0.1)
        self.truncation_box.setValue(1.0)
        self.truncation_box.setKeyboardTracking(False)
        self.truncation_box.setToolTip("Scale z toward 0: below 1 trades variety for typical-looking volumes")

        seeds = QHBoxLayout()
        for widget in (self.previous_button, self.seed_box, self.next_button, self.random_button):
            seeds.addWidget(widget)
        form = QFormLayout()
        form.addRow("Seed", seeds)
        form.addRow("Truncation", self.truncation_box)
        self.layout_ = QVBoxLayout(self)
        self.layout_.addLayout(form)
        self.layout_.addStretch(1)

        self.seed_box.valueChanged.connect(self._show_seed)
        self.previous_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(+1))
        self.random_button.clicked.connect(lambda: self.seed_box.setValue(random.randint(0, MAX_SEED)))
        self.truncation_box.valueChanged.connect(context.state.set_truncation)
        context.state.truncation_changed.connect(self._on_truncation)
        context.state.model_changed.connect(self._on_model)
        window = context.window
        for key, step in (("N", +1), ("P", -1)):
            shortcut = QShortcut(QKeySequence(key), window)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(lambda step=step: self.step(step))

    def set_seed(self, seed: int) -> None:
        """Show this seed (also when it is the seed in the box already)."""
        if self.seed_box.value() == seed:
            self._show_seed(seed)
        else:
            self.seed_box.setValue(seed)

    def step(self, delta: int) -> None:
        self.seed_box.setValue(min(MAX_SEED, max(0, self.seed_box.value() + delta)))

    def _show_seed(self, seed: int) -> None:
        model = self.context.state.model
        if model is None:
            return
        z = seed_to_z(seed, model.card.config.latent_dim)
        self.context.state.set_latent(Latent(z, f"seed {seed}", seed))

    def _on_model(self, model: LoadedModel | None) -> None:
        if model is not None:
            self._show_seed(self.seed_box.value())  # the new model's latent size may differ

    def _on_truncation(self, value: float) -> None:
        if self.truncation_box.value() != value:
            self.truncation_box.setValue(value)
