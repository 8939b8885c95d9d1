"""The hierarchy view: low-resolution anchor | high-resolution slab | full reconstruction, linked.

All three panes live in the same millimetre frame (the engine gives every part its affine), so
one crosshair and one set of cameras serve them all. The slab slider moves in steps of 4 voxels
(G^A's feature grid) and the slab is drawn as a box on the anchor and on the full volume.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSlider, QSplitter, QVBoxLayout, QWidget

from engine.api import Part, generated_affine

from ..render.window_level import beyond_training_range, default_window
from ..state import PREVIEW, AppState, LoadedModel
from .pane import Probe, VolumePane
from .render_queue import PAINT_WAIT_TURNS

TITLES = {
    Part.ANCHOR: "Low-resolution anchor (G^L)",
    Part.SLAB: "High-resolution sub-volume (G^H on one slab)",
    Part.FULL: "Full reconstruction (G^H on all features)",
}
NO_HIERARCHY = (
    "This model family ({family}) has no {part}: it generates the whole volume in one piece. "
    "The full volume is on the right."
)
WINDOW_DRAG_PIXELS = 250  # dragging this many pixels changes the window by its own width
FRAME_MS = 16  # between the panes of one delivery: each gets its own paint


def model_edges(model: LoadedModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The full volume's first and last voxel edges in mm (RAS), and its affine, from the model card."""
    affine = generated_affine(model.resolution, model.card.spacing_mm, Part.FULL)
    spacing = np.abs(np.diag(affine)[:3])
    first = affine[:3, 3] - spacing / 2
    return first, affine[:3, 3] + spacing * (model.resolution - 0.5), affine


class HierarchyView(QWidget):
    """Three VolumePanes plus the slab slider and the window warning; listens to the state only."""

    rendered = Signal(object)  # the set of parts just shown

    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.panes = {part: VolumePane(title, slice_sliders=True) for part, title in TITLES.items()}
        self._queued: dict[str, object] = {}  # part -> volume waiting for its turn (see _draw_next)
        self._drawn: set[str] = set()
        self._draw_scheduled = False
        self._paint_waits = 0  # turns the next pane has waited for the previous one's paint
        self.anchor, self.slab, self.full = (self.panes[p] for p in (Part.ANCHOR, Part.SLAB, Part.FULL))
        for part, pane in self.panes.items():
            pane.name = part  # what the probe line calls it
        for pane in (self.anchor, self.slab):
            pane.share_cameras(self.full)

        self.slab_slider = QSlider(Qt.Orientation.Horizontal)
        self.slab_slider.setToolTip("First slice of the slab along S, in steps of 4 voxels")
        self.slab_slider.setEnabled(False)
        self.slab_label = QLabel("slab —")
        # below the probe line, in a line of its own that is always there: showing or hiding the
        # warning must not resize the panes (a resize re-renders all of them)
        self.warning = QLabel("")
        self.warning.setStyleSheet("color: #b35900; font-weight: bold; padding: 0 4px;")
        self.warning.setFixedHeight(self.warning.fontMetrics().lineSpacing() + 4)
        self.warning.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

        slab_column = QWidget()
        column = QVBoxLayout(slab_column)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.slab, 1)
        slider_row = QHBoxLayout()
        slider_row.addWidget(QLabel("Slab"))
        slider_row.addWidget(self.slab_slider, 1)
        slider_row.addWidget(self.slab_label)
        column.addLayout(slider_row)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.anchor)
        splitter.addWidget(slab_column)
        splitter.addWidget(self.full)
        for index in range(3):
            splitter.setStretchFactor(index, 1)
        splitter.setSizes([1000, 1000, 1000])  # equal thirds, whatever the panes' contents ask for
        self.splitter = splitter
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter, 1)
        # One probe line for all panes (3D Slicer's data probe): the point under the mouse and the
        # crosshair, each with position, voxel and value, and the window. Two fixed lines, so
        # that it never wraps, and the panes never resize as the mouse moves.
        self.probe_line = QLabel("")
        self.probe_line.setTextFormat(Qt.TextFormat.PlainText)
        self.probe_line.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.probe_line.setStyleSheet("font-family: monospace; padding: 2px 4px;")
        self.probe_line.setFixedHeight(self.probe_line.fontMetrics().lineSpacing() * 2 + 6)
        layout.addWidget(self.probe_line)
        layout.addWidget(self.warning)
        self._mouse_probe: Probe | None = None

        self.slab_slider.valueChanged.connect(lambda value: state.set_slab_start(value * 4))
        for pane in self.panes.values():
            pane.picked.connect(state.set_crosshair)
            pane.window_dragged.connect(self._drag_window)
            pane.slice_stepped.connect(self._step_axis)
            pane.slice_chosen.connect(self._choose_slice)
            pane.camera_moved.connect(self.render_all)
            pane.probed.connect(self._on_probe)
        state.model_changed.connect(self._on_model)
        state.volumes_changed.connect(self._on_volumes)
        state.window_changed.connect(self._on_window)
        state.crosshair_changed.connect(self._on_crosshair)
        state.slab_changed.connect(self._on_slab)
        state.render_mode_changed.connect(self._on_render_mode)
        state.layout_changed.connect(self._on_layout)
        state.source_changed.connect(self._on_source)
        self._on_model(None)

    # -- state -> panes ------------------------------------------------------------------------------

    def _on_model(self, model: LoadedModel | None) -> None:
        self.state.window = None  # the next volume brings its own default window
        self._queued.clear()
        if model is None:
            for pane in self.panes.values():
                pane.frame_bounds = None
                pane.show_message("No model loaded — File > Open model…")
            self._show_probe()
            return
        frame = self.model_frame()
        for pane in self.panes.values():
            pane.modality = model.card.modality
            pane.frame_bounds = frame  # anchor, slab and full share cameras: all fit the whole volume
            pane.show_message(f"Generating with {model.name}…")
        self.slab.set_context(None)
        hierarchical = model.hierarchical
        self.slab_slider.setEnabled(hierarchical)
        self._show_source()
        if hierarchical:
            steps = (model.resolution - model.slab_thickness) // 4
            self.slab_slider.blockSignals(True)
            self.slab_slider.setRange(0, steps)
            self.slab_slider.setValue(self.state.slab_start // 4)
            self.slab_slider.blockSignals(False)
            self._show_slab_box()
        else:
            family = model.card.family
            self.anchor.show_message(NO_HIERARCHY.format(family=family, part="low-resolution anchor"))
            self.slab.show_message(NO_HIERARCHY.format(family=family, part="slabs (sub-volumes)"))
            self.slab_label.setText("no slabs")

    def _on_source(self, path: str) -> None:
        """A volume from a file: the full pane names the file, has no slab box and windows by the file's
        units; the model's parts bring back its title, box and modality."""
        self._show_source()
        if path:
            self.full.set_box("slab", None)
        elif self.state.model is not None:
            self._show_slab_box()

    def _show_source(self) -> None:
        model, path = self.state.model, self.state.file_source
        if path:
            self.full.header.setText(f"{Path(path).name} (opened from a file)")
            self.full.modality = ""
        elif model is not None:
            title = TITLES[Part.FULL] if model.hierarchical else f"Full volume ({model.card.family} generator)"
            self.full.header.setText(title)
            self.full.modality = model.card.modality

    def _on_volumes(self, volumes: dict) -> None:
        if self.state.window is None and volumes:
            first = volumes.get(Part.FULL) or next(iter(volumes.values()))
            modality = self.state.model.card.modality if self.state.model else ""
            self.state.set_window(default_window(first, modality))  # panes without a volume skip it
        for part, pane in self.panes.items():
            volume = volumes.get(part)
            if volume is None and Part.FULL in volumes and Part.ANCHOR not in volumes and Part.SLAB not in volumes:
                hierarchical = self.state.model is None or self.state.model.hierarchical
                if hierarchical or part == Part.FULL:  # (a one-piece model's panes say so already)
                    pane.show_message(f"{TITLES[part]}: not part of a volume opened from a file")
                self._queued.pop(part, None)
                continue
            if volume is None or (pane.volume is volume):
                continue
            # the model's parts share the model's frame; a volume from a file has its own
            pane.frame_bounds = self.model_frame() if Part.ANCHOR in volumes or Part.SLAB in volumes else None
            self._queued[part] = volume
        self._schedule_draw()

    def _schedule_draw(self, delay_ms: int = 0) -> None:
        if self._queued and not self._draw_scheduled:
            self._draw_scheduled = True
            QTimer.singleShot(delay_ms, self, self._draw_next)  # dropped if the view is gone

    def _draw_next(self) -> None:
        """Draw one waiting pane per turn of the event loop; ``rendered`` follows the last one.

        Three panes drawn in one go block the UI thread for the sum of their renders (about 200 ms
        on a software renderer); one at a time, each after the previous pane's paint (a fixed delay
        let the next scene run before that paint, in the same stall), timers and input get a turn in between.
        """
        self._draw_scheduled = False
        if not self._queued:
            return
        part = next(iter(self._queued))
        # another pane has not painted yet: its render comes first (this pane's own waiting paint
        # will show the new scene too)
        others = [pane for name, pane in self.panes.items() if name != part]
        if any(pane.paint_pending for pane in others) and self._paint_waits < PAINT_WAIT_TURNS:
            self._paint_waits += 1
            self._schedule_draw(FRAME_MS)
            return
        self._paint_waits = 0
        pane = self.panes[part]
        pane.crosshair = self.state.crosshair
        pane.set_interactive(self.state.quality == PREVIEW)
        volume = self._queued.pop(part)
        # the slab is seen within the full volume (its coronal and sagittal views); set with the slab
        # itself when both come, so that the slab pane renders once
        if part == Part.SLAB:
            self.slab.set_context(self.state.volumes.get(Part.FULL))
        elif part == Part.FULL:
            self.slab.set_context(volume)
        pane.set_volume(volume, self.state.window)
        self._drawn.add(part)
        if self._queued:
            self._schedule_draw(FRAME_MS)  # after this pane's paint: one render per turn
        else:
            drawn, self._drawn = self._drawn, set()
            self._show_probe()
            self.rendered.emit(drawn)

    def _on_window(self, window) -> None:
        for pane in self.panes.values():
            if pane.grid is not None:
                pane.set_window(window)
        self._show_warning()
        self._show_probe()

    def _show_warning(self) -> None:
        model, window = self.state.model, self.state.window
        text = beyond_training_range(window, model.card.intensity) if model and window else ""
        self.warning.setText(f"⚠ {text}" if text else "")
        self.warning.setToolTip(text)

    def _on_crosshair(self, position) -> None:
        for pane in self.panes.values():
            pane.set_crosshair(position)
        self._show_probe()

    def _on_slab(self, start: int) -> None:
        if self.slab_slider.value() != start // 4:
            self.slab_slider.blockSignals(True)
            self.slab_slider.setValue(start // 4)
            self.slab_slider.blockSignals(False)
        self._show_slab_box()

    def _on_render_mode(self, mode: str) -> None:
        for pane in self.panes.values():
            pane.set_render_mode(mode, self.state.volume_preset, self.state.iso_value)

    def _on_layout(self, layout: str) -> None:
        stacked = layout == "stacked"
        self.splitter.setOrientation(Qt.Orientation.Vertical if stacked else Qt.Orientation.Horizontal)
        self.splitter.setSizes([1000, 1000, 1000])

    def model_frame(self) -> tuple | None:
        """The model's whole volume in mm (voxel edges): what every pane's cameras fit."""
        model = self.state.model
        if model is None:
            return None
        first, last, _affine = model_edges(model)
        return (first[0], last[0], first[1], last[1], first[2], last[2])

    def slab_bounds(self) -> tuple | None:
        """The slab's extent in mm (voxel edges), from the model card's geometry."""
        model = self.state.model
        if model is None or not model.hierarchical:
            return None
        first, last, affine = model_edges(model)
        spacing = np.abs(np.diag(affine)[:3])
        start, thickness = self.state.slab_start, model.slab_thickness
        k0 = affine[2, 3] + spacing[2] * (start - 0.5)
        k1 = affine[2, 3] + spacing[2] * (start + thickness - 0.5)
        return (first[0], last[0], first[1], last[1], k0, k1)

    def _show_slab_box(self) -> None:
        bounds = self.slab_bounds()
        model = self.state.model
        if bounds is not None:
            start = self.state.slab_start
            self.slab_label.setText(f"k {start}–{start + model.slab_thickness - 1}")
        for pane in (self.anchor,) if self.state.file_source else (self.anchor, self.full):
            pane.set_box("slab", bounds)

    # -- probe line ----------------------------------------------------------------------------------

    def _on_probe(self, probe: Probe | None) -> None:
        self._mouse_probe = probe
        self._show_probe()

    def _show_probe(self) -> None:
        """Line 1: the point under the mouse; line 2: the crosshair (in the full volume) and the window."""
        mouse = self._mouse_probe
        first = f"Mouse      {mouse.pane} {mouse.view}: {mouse.describe()}" if mouse else "Mouse      —"
        pane = next((p for p in (self.full, self.slab, self.anchor) if p.grid is not None), None)
        if pane is None:
            self.probe_line.setText(f"{first}\nCrosshair  —")
            return
        crosshair = pane.probe(self.state.crosshair)
        window = self.state.window.label(crosshair.unit) if self.state.window else ""
        self.probe_line.setText(f"{first}\nCrosshair  {pane.name}: {crosshair.describe()}   ·   {window}")

    # -- panes -> state ------------------------------------------------------------------------------

    def _drag_window(self, dx: float, dy: float) -> None:
        window = self.state.window
        if window is not None:
            self.state.set_window(window.dragged(dx, dy, max(window.width, 1e-3) / WINDOW_DRAG_PIXELS))

    def _step_axis(self, axis: int, step: int) -> None:
        grid = self.full.grid or self.slab.grid or self.anchor.grid
        if grid is None:
            return
        position = self.state.crosshair.copy()
        position[axis] += step * grid.spacing[axis]
        low, high = grid.bounds[2 * axis], grid.bounds[2 * axis + 1]
        position[axis] = min(max(position[axis], low), high)
        self.state.set_crosshair(position)

    def _choose_slice(self, axis: int, position_mm: float) -> None:
        position = self.state.crosshair.copy()
        position[axis] = position_mm
        self.state.set_crosshair(position)

    def step_slice(self, step: int) -> None:
        """Keyboard: the axial slice up or down by one voxel."""
        self._step_axis(2, step)

    def reset_cameras(self) -> None:
        """Every view of every pane (Shift+R)."""
        for pane in (self.full, self.slab, self.anchor):
            if pane.grid is not None:
                pane.reset_cameras()  # cameras are shared: the first pane with a volume sets them
                break
        self.render_all()

    def reset_view(self) -> None:
        """The view under the mouse (R); anywhere else, every view. Panes share cameras, so the same
        plane of the other panes follows."""
        for pane in self.panes.values():
            view = pane.view_under_mouse() if pane.grid is not None else None
            if view is not None:
                pane.reset_cameras([view])
                self.render_all()
                return
        self.reset_cameras()

    def render_all(self) -> None:
        for pane in self.panes.values():
            pane.render()

    def close_views(self) -> None:
        """Finalize every pane's VTK scene; volumes still on their way are never drawn."""
        self._queued.clear()
        for pane in self.panes.values():
            pane.close_view()
