"""A status line for panels that live in scrolling docks."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget


class StatusLabel(QLabel):
    """Word-wrapped, 3 lines high, without height-for-width.

    A height-for-width child makes the dock's QScrollArea size the panel by every child's size
    hint (far taller than the dock), and QLabel turns height-for-width back on with each setText.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(text, parent)
        self.setWordWrap(True)
        self.setMinimumHeight(3 * self.fontMetrics().lineSpacing())

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt's name
        return False
