"""Viewing panel: window/level presets and values, 3D mode, volume-rendering preset, isosurface level."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QVBoxLayout,
    QWidget,
)

from engine.api import Part

from ..context import AppContext
from ..render.scene3d import isosurface_value, volume_presets
from ..render.window_level import WindowLevel, modality_key, window_presets
from ..state import RENDER_MODES, RenderMode

MODE_NAMES = {
    RenderMode.VOLUME: "Volume rendering",
    RenderMode.ISOSURFACE: "Isosurface",
    RenderMode.MIP: "Maximum intensity projection",
}
PRESET_KEYS = "12345"  # key n chooses the n-th window/level preset of the list shown


class ViewPanel(QWidget):
    """Edits the state's window and 3D settings and follows the state when something else changes them
    (a drag in a view, a key, a workspace)."""

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        state = context.state
        self.preset_box = QComboBox()
        self.preset_box.setToolTip("Window/level presets (resources/presets/viewing.json); keys 1–5")
        self.width_box, self.level_box = QDoubleSpinBox(), QDoubleSpinBox()
        for box in (self.width_box, self.level_box):
            box.setRange(-1e6, 1e6)
            box.setDecimals(3)
            box.setKeyboardTracking(False)
        self.width_box.setMinimum(1e-3)
        self.mode_box = QComboBox()
        self.mode_box.setToolTip("The 3D view of every pane (M: the next one)")
        for mode in RENDER_MODES:
            self.mode_box.addItem(MODE_NAMES[mode], mode)
        self.volume_preset_box = QComboBox()
        self.iso_box = QDoubleSpinBox()
        self.iso_box.setRange(-1e6, 1e6)
        self.iso_box.setKeyboardTracking(False)
        self.iso_box.setToolTip("Isosurface level in the volume's physical units")
        self.iso_default = QCheckBox("Preset default")
        self.iso_default.setToolTip("The rendering preset's level (CT: bone); untick to choose any level, 0 included")
        self.iso_default.setChecked(True)
        self.iso_box.setEnabled(False)

        window_row = QHBoxLayout()
        window_row.addWidget(self.width_box)
        window_row.addWidget(self.level_box)
        iso_row = QHBoxLayout()
        iso_row.addWidget(self.iso_box, 1)
        iso_row.addWidget(self.iso_default)
        form = QFormLayout()
        form.addRow("Window preset", self.preset_box)
        form.addRow("Width / level", window_row)
        form.addRow("3D view", self.mode_box)
        form.addRow("Rendering preset", self.volume_preset_box)
        form.addRow("Isosurface level", iso_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addStretch(1)
        self._presets = []
        self._iso_volume = None  # the volume the level box speaks for
        self._default_level: float | None = None  # its preset's level
        self._refill = False  # the preset lists wait for the next volumes (their kind: the model's or a file's)

        self.preset_box.activated.connect(self.choose_preset)
        self.width_box.valueChanged.connect(self._apply_values)
        self.level_box.valueChanged.connect(self._apply_values)
        self.mode_box.activated.connect(lambda _index: self._apply_mode())
        self.volume_preset_box.activated.connect(lambda _index: self._apply_mode())
        self.iso_box.valueChanged.connect(lambda _value: self._apply_iso())
        self.iso_default.toggled.connect(lambda _on: self._apply_iso())
        state.window_changed.connect(self._show_window)
        state.model_changed.connect(lambda _model: self._wait_for_volumes())
        state.source_changed.connect(lambda _path: self._wait_for_volumes())
        state.volumes_changed.connect(self._on_volumes)
        state.render_mode_changed.connect(lambda _mode: self._show_mode())
        for number, key in enumerate(PRESET_KEYS):
            self._shortcut(key, lambda number=number: self.choose_preset(number))
        self._shortcut("M", self.next_mode)

    def _shortcut(self, key: str, slot) -> None:
        shortcut = QShortcut(QKeySequence(key), self.context.window)
        shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(slot)

    # -- what the lists offer -----------------------------------------------------------------------

    def _wait_for_volumes(self) -> None:
        self.preset_box.clear()
        self._presets = []
        self._refill = True

    def _on_volumes(self, volumes: dict) -> None:
        volume = volumes.get(Part.FULL) or next(iter(volumes.values()), None)
        if volume is None:
            return
        if self._refill:
            self._refill = False
            self._fill_presets(volume)
        self._show_iso(volume)

    def _kind(self, volume) -> tuple[str, str]:
        """(preset list key, modality) of what is shown: a file's own units, else the model's card."""
        state = self.context.state
        if state.file_source or state.model is None:
            return modality_key(volume.intensity), ""
        card = state.model.card
        return modality_key(card.intensity, card.modality), card.modality

    def _fill_presets(self, volume) -> None:
        key, modality = self._kind(volume)
        self._presets = window_presets(key)
        self.preset_box.clear()
        for preset in self._presets:
            label = preset.name if preset.auto else f"{preset.name} (W{preset.width:g} L{preset.level:g})"
            self.preset_box.addItem(label)
        self.volume_preset_box.clear()
        for preset in volume_presets(volume, modality):
            self.volume_preset_box.addItem(preset["name"])
        self._show_mode()

    def _show_iso(self, volume) -> None:
        """The level box speaks the volume's units and shows the preset's level while that is chosen."""
        if volume is self._iso_volume:  # (previews change the anchor only)
            return
        self._iso_volume = volume
        unit = volume.intensity.unit
        self.iso_box.blockSignals(True)
        self.iso_box.setSuffix(f" {unit}" if unit else "")
        self.iso_box.setDecimals(0 if unit == "HU" else 3)
        self.iso_box.blockSignals(False)
        self._default_level = isosurface_value(volume, self._kind(volume)[1])
        self._show_mode()

    # -- window --------------------------------------------------------------------------------------

    def choose_preset(self, index: int) -> None:
        """Apply the ``index``-th window/level preset of the list (keys 1–5); no such preset: nothing."""
        if not 0 <= index < len(self._presets):
            return
        self.preset_box.setCurrentIndex(index)
        volumes = self.context.state.volumes
        volume = volumes.get(Part.FULL) or volumes.get(Part.ANCHOR)
        self.context.state.set_window(self._presets[index].window_for(volume))

    def _apply_values(self) -> None:
        self.context.state.set_window(WindowLevel(self.width_box.value(), self.level_box.value()))

    def _show_window(self, window: WindowLevel | None) -> None:
        if window is None:
            return
        for box, value in ((self.width_box, window.width), (self.level_box, window.level)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)

    # -- 3D ------------------------------------------------------------------------------------------

    def next_mode(self) -> None:
        """M: volume rendering → isosurface → maximum intensity projection → volume rendering."""
        state = self.context.state
        state.set_render_mode(RENDER_MODES[(RENDER_MODES.index(state.render_mode) + 1) % len(RENDER_MODES)])

    def _apply_mode(self) -> None:
        self.context.state.set_render_mode(self.mode_box.currentData(), max(0, self.volume_preset_box.currentIndex()))

    def _apply_iso(self) -> None:
        default = self.iso_default.isChecked()
        self.iso_box.setEnabled(not default)
        self.context.state.set_iso_value(None if default else self.iso_box.value())

    def _show_mode(self) -> None:
        """Follow the state (a key, a workspace) without sending its values back."""
        state = self.context.state
        for widget, index in (
            (self.mode_box, RENDER_MODES.index(state.render_mode)),
            (self.volume_preset_box, min(state.volume_preset, self.volume_preset_box.count() - 1)),
        ):
            widget.blockSignals(True)
            widget.setCurrentIndex(index)
            widget.blockSignals(False)
        level = self._default_level if state.iso_value is None else state.iso_value
        self.iso_default.blockSignals(True)
        self.iso_box.blockSignals(True)
        self.iso_default.setChecked(state.iso_value is None)
        if level is not None:
            self.iso_box.setValue(level)
        self.iso_box.setEnabled(state.iso_value is not None)
        self.iso_default.blockSignals(False)
        self.iso_box.blockSignals(False)
