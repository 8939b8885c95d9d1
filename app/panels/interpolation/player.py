"""Moving along the path: a t slider, play/loop at a frame rate, and the frame count (play and export).

While the slider moves (or the path plays) the player asks for PREVIEW latents, so only the anchor
is generated; when the slider is released, stands still for SETTLE_MS, or play stops, it asks for
FULL and the controller refines to full resolution. The player never runs the model itself.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.api import INTERPOLATION_METHODS, path_label, path_point

from ...context import AppContext
from ...state import FULL, PREVIEW, Latent, LatentPath

STEPS = 1000  # slider positions along the whole path
SETTLE_MS = 150  # a slider held still this long counts as released: refine to full resolution


class PathPlayer(QGroupBox):
    """The t slider, Play/Stop, Loop, frames per second and the frames along the whole path."""

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__("Path", parent)
        self.context = context
        self._shown: Latent | None = None  # the latent this player last put in the state
        self._structure: tuple = ((), INTERPOLATION_METHODS[0])  # keyframes and method last followed
        self._play_position = 0.0
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, STEPS)
        self.slider.setToolTip("t along the whole path: anchor previews while dragging, full resolution on release")
        self.t_label = QLabel("t = 0.000")
        self.t_label.setMinimumWidth(self.t_label.fontMetrics().horizontalAdvance("t = 0.000") + 6)  # no relayout
        self.play_button = QPushButton("Play")
        self.loop_box = QCheckBox("Loop")
        self.fps_box = QSpinBox()
        self.fps_box.setRange(1, 60)
        self.fps_box.setValue(10)
        self.fps_box.setSuffix(" fps")
        self.frames_box = QSpinBox()
        self.frames_box.setRange(2, 2000)
        self.frames_box.setValue(30)
        self.frames_box.setToolTip("Frames along the whole path, both ends included: for play and for export")

        layout = QVBoxLayout(self)
        slider_row = QHBoxLayout()
        slider_row.addWidget(self.slider, 1)
        slider_row.addWidget(self.t_label)
        play_row = QHBoxLayout()
        for widget in (self.play_button, self.loop_box, self.fps_box):
            play_row.addWidget(widget)
        layout.addLayout(slider_row)
        layout.addLayout(play_row)
        frames_form = QFormLayout()
        frames_form.addRow("Frames", self.frames_box)
        layout.addLayout(frames_form)

        self._settle_timer = QTimer(self, singleShot=True, interval=SETTLE_MS)
        self._settle_timer.timeout.connect(self._settle)
        self._play_timer = QTimer(self)
        self._play_timer.timeout.connect(self._tick)
        self.slider.valueChanged.connect(self._on_slider)
        self.slider.sliderReleased.connect(self._settle)
        self.play_button.clicked.connect(self.toggle_play)
        self.fps_box.valueChanged.connect(lambda fps: self._play_timer.setInterval(round(1000 / fps)))

    @property
    def t(self) -> float:
        return self.slider.value() / STEPS

    def set_ready(self, ready: bool) -> None:
        """A path needs two keyframes before it can be moved along."""
        self.slider.setEnabled(ready)
        self.play_button.setEnabled(ready)

    def follow(self, path: LatentPath) -> None:
        """Take t from the state's path; if the views show a point of the path, show the new path's point at t."""
        if self.slider.value() != round(path.t * STEPS):  # t set from elsewhere (a workspace)
            self.slider.blockSignals(True)
            self.slider.setValue(round(path.t * STEPS))
            self.slider.blockSignals(False)
            self.t_label.setText(f"t = {path.t:.3f}")
        structure = (tuple((k.key, k.label) for k in path.keyframes), path.method)
        changed, self._structure = structure != self._structure, structure  # (a move of t is not a change)
        if changed and self._shown is not None and self.context.state.latent is self._shown:
            self.show_t(self.t, FULL)

    def forget_shown(self) -> None:
        """A new model: the latent shown last is no longer a point of this player's path."""
        self._shown = None

    def show_t(self, t: float, quality: str = FULL) -> None:
        """Put the path's latent at ``t`` in the state (PREVIEW: anchor only; FULL: every part)."""
        path = self.context.state.path
        if len(path.keyframes) < 2:
            return
        self.context.state.set_path(replace(path, t=t))
        z = path_point([k.z for k in path.keyframes], t, path.method)
        self._shown = Latent(z, path_label([k.label for k in path.keyframes], path.method, t), None)
        self.context.state.set_latent(self._shown, quality)

    @Slot(int)
    def _on_slider(self, value: int) -> None:
        self.t_label.setText(f"t = {value / STEPS:.3f}")
        moving = self.slider.isSliderDown() or self._play_timer.isActive()
        self.show_t(value / STEPS, PREVIEW if moving else FULL)
        if self.slider.isSliderDown():
            self._settle_timer.start()  # held still while still pressed: refine anyway

    @Slot()
    def _settle(self) -> None:
        self._settle_timer.stop()
        if not self._play_timer.isActive():
            self.show_t(self.t, FULL)

    def toggle_play(self) -> None:
        if self._play_timer.isActive():
            self.stop()
            return
        if len(self.context.state.path.keyframes) < 2:
            return
        if self.slider.value() >= STEPS and not self.loop_box.isChecked():
            self.slider.setValue(0)
        self._play_position = float(self.slider.value())
        self._play_timer.start(round(1000 / self.fps_box.value()))
        self.play_button.setText("Stop")

    def stop(self) -> None:
        """Stop playing and refine the frame where it stopped."""
        if not self._play_timer.isActive():
            return
        self._play_timer.stop()
        self.play_button.setText("Play")
        self.show_t(self.t, FULL)

    @Slot()
    def _tick(self) -> None:
        position = self._play_position + STEPS / (self.frames_box.value() - 1)
        if position > STEPS + 1e-6:
            if not self.loop_box.isChecked():
                self.stop()
                return
            position = 0.0  # loop: wrap around to the first keyframe
        self._play_position = min(position, STEPS)
        self.slider.setValue(round(self._play_position))

    def shutdown(self) -> None:
        self._play_timer.stop()
        self._settle_timer.stop()
