"""What a training run shows while it goes: its loss curves (pyqtgraph) and its newest preview slices."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from ...training_process import LossHistory

PREVIEW_SIZE = 128
# distinct on white (Tableau 10): one colour per loss curve
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")


class TrainResults(QWidget):
    """One curve per logged loss over the iterations, and the middle slices of the newest preview."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.history = LossHistory()
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.previews: dict[str, QLabel] = {}
        self.plot = pg.PlotWidget()
        self.plot.setBackground("w")
        self.plot.setLabel("bottom", "iteration")
        self.plot.setLabel("left", "loss")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.addLegend(offset=(-10, 10))
        self.preview_title = QLabel("Preview slices appear every 'Preview every' iterations")
        self.preview_grid = QGridLayout()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.preview_title)
        layout.addLayout(self.preview_grid)

    def show_history(self, history: LossHistory) -> None:
        """Replace the curves by ``history`` (a new run: an empty one; an existing run: its losses so far)."""
        self.history = history
        self.plot.clear()
        self.curves.clear()
        self._draw_curves()

    def add_losses(self, iteration: int, losses: dict[str, float]) -> None:
        self.history.add(iteration, losses)
        self._draw_curves()

    def _draw_curves(self) -> None:
        for i, (name, (steps, values)) in enumerate(self.history.curves.items()):
            curve = self.curves.get(name)
            if curve is None:
                pen = pg.mkPen(COLOURS[i % len(COLOURS)], width=1.5)
                curve = self.curves[name] = self.plot.plot(name=name, pen=pen)
            curve.setData(steps, values)

    def show_previews(self, event: dict) -> None:
        """The newest middle slices the child wrote (tiny PNGs: reading them here costs nothing)."""
        for i, (name, path) in enumerate(event.get("images", {}).items()):
            label = self.previews.get(name)
            if label is None:
                label = self.previews[name] = QLabel()
                label.setFixedSize(PREVIEW_SIZE, PREVIEW_SIZE)
                label.setAlignment(Qt.AlignmentFlag.AlignCenter)
                label.setStyleSheet("background: black")
                self.preview_grid.addWidget(label, 0, i)
                self.preview_grid.addWidget(QLabel(name.replace("_", " ")), 1, i, Qt.AlignmentFlag.AlignHCenter)
            pixmap = QPixmap(path)
            if not pixmap.isNull():
                label.setPixmap(
                    pixmap.scaled(
                        PREVIEW_SIZE,
                        PREVIEW_SIZE,
                        Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.FastTransformation,  # nearest: voxels stay visible
                    )
                )
        self.preview_title.setText(f"Middle slices at iteration {event.get('iteration')}")
