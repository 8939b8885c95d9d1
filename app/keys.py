"""Keyboard shortcuts: the list Help ▸ Keys shows, and the rule that gives keys to the field being edited.

View shortcuts are plain keys (Up, R, N, 1, M, ...). While a text field, a spin box or a list has
the focus those keys belong to it: Up in the seed box steps the seed, N typed in a name stays in the
name. Keys with Ctrl or Alt (Ctrl+D, Ctrl+Shift+S) and Esc work everywhere.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLineEdit,
    QPlainTextEdit,
    QTableWidget,
    QTableWidgetItem,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

# (keys as QKeySequence writes them, what they do); Help ▸ Keys lists them in this order
SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("Up", "next axial slice"),
    ("Down", "previous axial slice"),
    ("R", "reset the view"),
    ("Shift+R", "reset all views"),
    ("N", "next seed"),
    ("P", "previous seed"),
    ("1", "first window/level preset of the modality (Viewing panel)"),
    ("2", "second window/level preset"),
    ("3", "third window/level preset"),
    ("4", "fourth window/level preset"),
    ("5", "fifth window/level preset"),
    ("M", "next 3D mode: volume rendering, isosurface, maximum intensity projection"),
    ("Ctrl+D", "bookmark the latent shown"),
    ("Ctrl+O", "open a model"),
    ("Ctrl+Shift+O", "open a volume (NIfTI)"),
    ("Ctrl+Shift+S", "save a screenshot"),
    ("Esc", "cancel the running job"),
    ("Ctrl+Q", "quit"),
)
MOUSE = (
    ("Click (slice)", "move the crosshair"),
    ("Left drag (slice)", "window/level: right widens, up brightens"),
    ("Wheel (slice)", "next / previous slice"),
    ("Sliders under a pane", "axial (k), coronal (j), sagittal (i) slice by voxel index"),
    ("Left drag (3D)", "rotate"),
    ("Right drag, wheel (3D)", "zoom"),
    ("Middle drag", "pan"),
)

TEXT_INPUTS = (QLineEdit, QAbstractSpinBox, QTextEdit, QPlainTextEdit, QAbstractItemView)  # every plain key
ARROW_INPUTS = (QComboBox, QAbstractSlider)  # only the keys that move them
ARROWS = {
    Qt.Key.Key_Up,
    Qt.Key.Key_Down,
    Qt.Key.Key_Left,
    Qt.Key.Key_Right,
    Qt.Key.Key_PageUp,
    Qt.Key.Key_PageDown,
    Qt.Key.Key_Home,
    Qt.Key.Key_End,
}
MODIFIER = Qt.KeyboardModifier
GLOBAL_MODIFIERS = MODIFIER.ControlModifier | MODIFIER.AltModifier | MODIFIER.MetaModifier


def field_wants(widget: QObject, event: QKeyEvent) -> bool:
    """True when ``widget`` (the focus) should get this key instead of a window shortcut."""
    if event.modifiers() & GLOBAL_MODIFIERS or event.key() == Qt.Key.Key_Escape:
        return False
    if isinstance(widget, QComboBox) and widget.isEditable():
        return True
    if isinstance(widget, TEXT_INPUTS):
        return True
    return isinstance(widget, ARROW_INPUTS) and event.key() in ARROWS


class FieldKeys(QObject):
    """Application event filter: a key the focused field uses goes to the field, not to a shortcut.

    Qt asks the focus widget first (a ShortcutOverride event); accepting it hands the key press to
    the widget and the shortcut stays quiet.
    """

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        overriding = event.type() == QEvent.Type.ShortcutOverride and isinstance(watched, QWidget)
        if overriding and field_wants(watched, event):
            event.accept()
            return True
        return False


def keys_dialog(parent: QWidget) -> QDialog:
    """Help ▸ Keys: every shortcut and mouse action in a table (not modal)."""
    dialog = QDialog(parent)
    dialog.setWindowTitle("Keys and mouse")
    rows = [*SHORTCUTS, ("", ""), *MOUSE]
    table = QTableWidget(len(rows), 2)
    table.setHorizontalHeaderLabels(["Key", "Action"])
    table.verticalHeader().hide()
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    for row, (keys, action) in enumerate(rows):
        table.setItem(row, 0, QTableWidgetItem(keys))
        table.setItem(row, 1, QTableWidgetItem(action))
    table.resizeColumnsToContents()
    table.resizeRowsToContents()
    table.horizontalHeader().setStretchLastSection(True)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.close)
    layout = QVBoxLayout(dialog)
    layout.addWidget(table)
    layout.addWidget(buttons)
    width = table.columnWidth(0) + table.columnWidth(1) + table.verticalScrollBar().sizeHint().width() + 40
    height = table.horizontalHeader().height() + sum(table.rowHeight(r) for r in range(table.rowCount())) + 80
    dialog.resize(width, min(height, 720))  # every action readable without scrolling sideways
    return dialog
