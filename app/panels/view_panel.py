"""Viewing panel: window/level presets and values, 3D mode, volume-rendering preset, isosurface level."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..context import AppContext
from ..render.scene3d import volume_presets
from ..render.window_level import WindowLevel, modality_key, window_presets
from ..state import RENDER_MODES

MODE_NAMES = {"volume": "Volume rendering", "isosurface": "Isosurface", "mip": "Maximum intensity projection"}


class ViewPanel(QWidget):
    """Edits the state's window and 3D settings; follows the state when the window is dragged."""

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        state = context.state
        self.preset_box = QComboBox()
        self.preset_box.setToolTip("Window/level presets (resources/presets/viewing.json)")
        self.width_box, self.level_box = QDoubleSpinBox(), QDoubleSpinBox()
        for box in (self.width_box, self.level_box):
            box.setRange(-1e6, 1e6)
            box.setDecimals(3)
            box.setKeyboardTracking(False)
        self.width_box.setMinimum(1e-3)
        self.apply_button = QPushButton("Apply")
        self.mode_box = QComboBox()
        for mode in RENDER_MODES:
            self.mode_box.addItem(MODE_NAMES[mode], mode)
        self.volume_preset_box = QComboBox()
        self.iso_box = QDoubleSpinBox()
        self.iso_box.setRange(-1e6, 1e6)
        self.iso_box.setKeyboardTracking(False)
        self.iso_box.setToolTip("Isosurface level in the model's units")

        window_row = QHBoxLayout()
        window_row.addWidget(self.width_box)
        window_row.addWidget(self.level_box)
        form = QFormLayout()
        form.addRow("Window preset", self.preset_box)
        form.addRow("Width / level", window_row)
        form.addRow("3D view", self.mode_box)
        form.addRow("Rendering preset", self.volume_preset_box)
        form.addRow("Isosurface level", self.iso_box)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addStretch(1)
        self._presets = []

        self.preset_box.activated.connect(self._apply_preset)
        self.width_box.valueChanged.connect(self._apply_values)
        self.level_box.valueChanged.connect(self._apply_values)
        self.mode_box.currentIndexChanged.connect(self._apply_mode)
        self.volume_preset_box.currentIndexChanged.connect(self._apply_mode)
        self.iso_box.valueChanged.connect(self._apply_mode)
        state.window_changed.connect(self._show_window)
        state.model_changed.connect(self._on_model)
        state.volumes_changed.connect(self._on_volumes)

    def _on_model(self, model) -> None:
        self.preset_box.clear()
        if model is None:
            return
        self._presets = window_presets(modality_key(model.card.intensity, model.card.modality))
        for preset in self._presets:
            label = preset.name if preset.auto else f"{preset.name} (W{preset.width:g} L{preset.level:g})"
            self.preset_box.addItem(label)
        self._fill_volume_presets = True

    def _on_volumes(self, volumes: dict) -> None:
        if not getattr(self, "_fill_volume_presets", False) or not volumes:
            return
        self._fill_volume_presets = False
        volume = volumes.get("full") or next(iter(volumes.values()))
        model = self.context.state.model
        self.volume_preset_box.blockSignals(True)
        self.volume_preset_box.clear()
        for preset in volume_presets(volume, model.card.modality if model else ""):
            self.volume_preset_box.addItem(preset["name"])
        self.volume_preset_box.blockSignals(False)

    def _apply_preset(self, index: int) -> None:
        if not 0 <= index < len(self._presets):
            return
        volumes = self.context.state.volumes
        volume = volumes.get("full") or volumes.get("anchor")
        self.context.state.set_window(self._presets[index].window_for(volume))

    def _apply_values(self) -> None:
        self.context.state.set_window(WindowLevel(self.width_box.value(), self.level_box.value()))

    def _show_window(self, window: WindowLevel) -> None:
        for box, value in ((self.width_box, window.width), (self.level_box, window.level)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)

    def _apply_mode(self) -> None:
        mode = self.mode_box.currentData()
        iso = self.iso_box.value() if self.iso_box.value() != 0 else None
        self.context.state.set_render_mode(mode, max(0, self.volume_preset_box.currentIndex()), iso)
