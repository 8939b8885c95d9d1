"""One pane: a volume as axial, coronal and sagittal slices plus a 3D view, with a title and readout.

The pane shows what it is told (volume, window, crosshair, boxes, 3D mode) and reports what the
user does in it (a click at a position in mm, a window/level drag, a slice step, a camera move,
the point under the mouse) as signals. It never edits application state itself; the hierarchy
view wires it to the state.

Drawing: pyvista's own renders are switched off (``suppress_rendering``), so building a scene of
many actors costs no render; the pane is drawn only in its paint, which ``render()`` asks for once
per change through the render queue. Changes that keep the grid (a new seed, a slab box moved, a
new window) update the actors' data in place; cameras change only when the framed extent changes
or the user resets them.
"""

from __future__ import annotations

import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import shiboken6
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QSizePolicy, QSlider, QVBoxLayout, QWidget
from pyvistaqt import QtInteractor
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera

from engine.api import Volume

from ..render.overlays import ScaleBar, color_bar, text_label
from ..render.scene3d import (
    INTERACTIVE_UPDATE_RATE,
    STILL_UPDATE_RATE,
    add_3d,
    add_surface,
    isosurface,
    isosurface_value,
    rendering_grid,
    volume_presets,
)
from ..render.slices import BACKGROUND, FILE_LABEL, SYNTHETIC_LABEL, Grid, box_lines, crosshair_lines, plane_lines
from ..render.window_level import WindowLevel
from ..state import RenderMode
from .render_queue import render_queue

# view name -> (subplot row, column, slice axis or None for 3D)
VIEWS = {"axial": (0, 0, 2), "coronal": (0, 1, 1), "sagittal": (1, 0, 0), "3d": (1, 1, None)}
# radiological convention: patient right on screen left; sagittal seen from the patient's left
CAMERA = {  # view -> (direction the camera looks, view up)
    "axial": ((0, 0, 1), (0, 1, 0)),
    "coronal": ((0, -1, 0), (0, 0, 1)),
    "sagittal": ((1, 0, 0), (0, 0, 1)),
}
LETTERS = {  # view -> (left, right, top, bottom)
    "axial": ("R", "L", "A", "P"),
    "coronal": ("R", "L", "S", "I"),
    "sagittal": ("A", "P", "S", "I"),
}
CROSSHAIR_COLOR, BOX_COLORS = "#40c8ff", {"slab": "#ffb020", "boundaries": "#ff4060"}  # six-digit hex only
LETTER_COLOR, VIEW_NAME_COLOR = "#f0c040", "#aaaaaa"
ARRANGEMENTS = ((2, 2), (1, 4), (4, 1))  # rows x columns of the four views
DRAG_THRESHOLD = 3  # pixels before a press becomes a window/level drag
# isosurfaces are extracted here, off the UI thread (one at a time; a newer request makes older ones moot)
MESHING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="isosurface")
AXIS_LETTERS = "ijk"  # voxel index along each axis, as the probe line names them
CONTEXT_VIEWS, CONTEXT_OPACITY = ("coronal", "sagittal"), 0.35  # a thin slab is shown over its surroundings


class ElidedLabel(QLabel):
    """One line that ends in "…" when the pane is narrower than its text (full text in the tooltip)."""

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self.setToolTip(text)

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter.drawText(rect, int(self.alignment() | Qt.AlignmentFlag.AlignVCenter), text)


class _PaneInteractor(QtInteractor):
    """The pane's VTK widget. While the pane shows a message instead of a volume, the message covers
    the widget, so Qt's paints (the window's first show and its resizes) skip the VTK render: an
    empty scene drawn under a message is time on the UI thread for nothing to see."""

    def __init__(self, pane: VolumePane, **options):
        super().__init__(pane, **options)
        self._pane = weakref.ref(pane)

    def paintGL(self) -> None:  # noqa: N802 - Qt's name
        pane = self._pane()
        if pane is not None and shiboken6.isValid(pane) and not pane.showing_volume:
            return
        super().paintGL()


class _SurfaceRelay(QObject):
    """Brings finished isosurfaces from the meshing thread to the UI thread (a queued signal). It
    lives as long as the app, so a worker never signals through a pane that is being deleted."""

    made = Signal(object, object, object)  # weak reference to the pane, request, Future of the surface

    def __init__(self):
        super().__init__()
        self.made.connect(self._deliver)

    @staticmethod
    def _deliver(pane_ref, request, future: Future) -> None:
        pane = pane_ref()
        if pane is not None and shiboken6.isValid(pane) and not pane._closed:
            pane._on_surface(request, future)


_relay: _SurfaceRelay | None = None


def surface_relay() -> _SurfaceRelay:
    global _relay
    if _relay is None:
        _relay = _SurfaceRelay()
    return _relay


def view_index(name: str) -> int:
    row, column, _ = VIEWS[name]
    return row * 2 + column


def edge_bounds(grid: Grid) -> tuple[float, ...]:
    """The voxels' extent (half a voxel beyond the centres), as (xmin, xmax, ymin, ymax, zmin, zmax)."""
    low = np.asarray(grid.bounds[0::2]) - grid.spacing / 2
    high = np.asarray(grid.bounds[1::2]) + grid.spacing / 2
    return tuple(float(v) for pair in zip(low, high) for v in pair)


def spacing_text(spacing) -> str:
    """'2.97' for isotropic voxels, '1.5×1.5×2' otherwise (mm)."""
    values = [f"{s:.3g}" for s in spacing]
    return values[0] if len(set(values)) == 1 else "×".join(values)


@dataclass(frozen=True)
class Probe:
    """A point of a pane's volume: where the mouse is (or the crosshair), its voxel and value."""

    pane: str
    view: str
    position: np.ndarray  # mm
    index: tuple[int, int, int] | None  # None outside the volume
    value: float | None
    unit: str

    def describe(self) -> str:
        x, y, z = self.position
        where = f"({x:.1f}, {y:.1f}, {z:.1f}) mm"
        if self.index is None:
            return f"{where}  outside the volume"
        value = f"{self.value:.0f} {self.unit}" if self.unit else f"{self.value:.4g}"
        i, j, k = self.index
        return f"{where}  voxel ({i}, {j}, {k})  {value}"


class VolumePane(QWidget):
    """A titled 2x2 view of one volume. Cameras can be shared with other panes (``share_cameras``)."""

    picked = Signal(object)  # np.ndarray (3,): mm position of a click in a slice view
    probed = Signal(object)  # Probe under the mouse in a slice view, or None when it left
    window_dragged = Signal(float, float)  # dx, dy in pixels since the last report
    slice_stepped = Signal(int, int)  # slice axis (0 i, 1 j, 2 k), +1 / -1
    slice_chosen = Signal(int, float)  # slice axis, mm position of the slice chosen on its slider
    camera_moved = Signal()  # the user zoomed, panned or rotated: panes that share cameras render

    def __init__(self, title: str, parent: QWidget | None = None, slice_sliders: bool = False):
        """``slice_sliders``: a slider per slice view under the views, for owners that act on
        ``slice_chosen`` (they move the crosshair, and the pane follows through ``set_crosshair``)."""
        super().__init__(parent)
        self.title = title
        self.header = ElidedLabel(title)
        self.header.setTextFormat(Qt.TextFormat.PlainText)
        self.header.setStyleSheet("font-weight: bold; padding: 2px;")
        self.readout = ElidedLabel("")
        self.readout.setStyleSheet("color: #555; padding: 0 2px 2px 2px;")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.plotter = _PaneInteractor(self, shape=(2, 2), auto_update=False, border=True, border_color="#444444")
        # pyvista renders after every actor it adds; here only the widget's paint renders (render())
        self.plotter.suppress_rendering = True
        self.plotter.setMouseTracking(True)  # the probe follows the mouse without a button pressed
        # any render (a paint Qt asked for itself, e.g. on a resize) shows the latest scene: a redraw
        # still waiting in the render queue would only draw the same frame again
        self._render_observer = self.plotter.ren_win.AddObserver("StartEvent", lambda *_: self._on_render_started())
        self.message = QLabel("")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setStyleSheet(f"background: {BACKGROUND}; color: #ddd; font-size: 13px; padding: 12px;")
        for widget in (self.message, self.plotter, self.readout, self.header):
            # the panes share the width equally, whatever their text or content says it wants
            widget.setSizePolicy(QSizePolicy.Policy.Ignored, widget.sizePolicy().verticalPolicy())
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        # The message lies over the plotter instead of replacing it: a VTK widget that stays
        # visible gets its GL context when the window first shows, before any VTK call needs
        # one (a hidden one makes pyvistaqt fall back to throwaway offscreen contexts).
        self.stack = QWidget()
        overlay = QGridLayout(self.stack)
        overlay.setContentsMargins(0, 0, 0, 0)
        overlay.addWidget(self.plotter, 0, 0)
        overlay.addWidget(self.message, 0, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(0)
        layout.addWidget(self.header)
        layout.addWidget(self.readout)
        layout.addWidget(self.stack, 1)
        self.slice_sliders: dict[str, tuple[QSlider, QLabel]] = {}  # slice view -> its slider and index
        if slice_sliders:
            layout.addWidget(self._make_slice_sliders())

        self.name = title  # what the probe line calls this pane (the hierarchy sets a short name)
        self.volume: Volume | None = None
        self.grid: Grid | None = None
        self.window = WindowLevel(2.0, 0.0)
        self.crosshair = np.zeros(3)
        self.render_mode = RenderMode.VOLUME
        self.volume_preset = 0
        self.iso_value: float | None = None
        self.modality = ""
        self.boxes: dict[str, tuple] = {}
        self.show_3d = True
        self.show_color_bar = False  # difference maps: a colour bar in the 3D quadrant (shown without 3D)
        self.cmap = "gray"  # slice colormap; difference maps use a diverging one, centred by the window
        self.planes: dict[str, tuple[int, tuple[float, ...]]] = {}  # name -> (normal axis, positions in mm)
        self.frame_bounds: tuple | None = None  # what the cameras fit (None: this volume's extent)
        self.maximised: str | None = None  # the one view shown (double-click), or None for all four
        self._fitted: tuple | None = None  # the extent the cameras were last fitted to
        self._slices: dict[str, tuple] = {}  # view -> (slice grid, actor)
        self._crosshairs: list = []  # one line mesh per view (each renderer needs its own actor)
        self._box_meshes: dict[str, list] = {}
        self._box_actors: dict[str, list] = {}  # name -> (renderer, actor) pairs
        self._plane_actors: dict[str, list] = {}
        self._labels: list = []  # SYNTHETIC / FROM FILE text actors, one per view
        self._scale_bars: list[ScaleBar] = []
        self._color_bar = None
        self._context_volume: Volume | None = None
        self._context: Grid | None = None  # the volume around this one (the slab's full volume), dimmed
        self._context_slices: dict[str, tuple] = {}  # view -> (slice grid, actor)
        self._3d_dirty = False  # the 3D view waits for the pane's turn in the render queue
        self._paint_wanted = False  # something besides the 3D view changed since the last render
        self._paint_scheduled = False  # the widget's paint is asked for (paint_now) and has not rendered yet
        self._surface_request: object | None = None  # the isosurface being extracted, if any
        surface_relay()  # made here, on the UI thread, before any worker needs it
        self._actors_3d: list = []
        self._look_3d: tuple | None = None  # what the 3D actors show, besides the voxels
        self._press: tuple[str, int, int] | None = None
        self._dragging = False
        self.arrangement = (2, 2)
        self._closed = False
        self._install_style()
        self.show_message("No volume yet")

    def _make_slice_sliders(self) -> QWidget:
        bar = QWidget()
        bar.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)  # never widens the pane
        row = QHBoxLayout(bar)
        row.setContentsMargins(2, 0, 2, 0)
        row.setSpacing(3)
        for view, (_row, _column, axis) in VIEWS.items():
            if axis is None:
                continue
            label = QLabel(f"{AXIS_LETTERS[axis]} —")
            label.setStyleSheet("color: #555; font-size: 10px;")
            label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)  # the index is never cut
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setMinimumWidth(24)
            slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the arrow keys stay with the views (app.keys)
            slider.setToolTip(f"{view.capitalize()} slice: voxel index {AXIS_LETTERS[axis]} / last index")
            slider.setEnabled(False)
            slider.valueChanged.connect(lambda value, axis=axis: self._on_slice_slider(axis, value))
            row.addWidget(label)
            row.addWidget(slider, 1)
            self.slice_sliders[view] = (slider, label)
        return bar

    def _on_slice_slider(self, axis: int, index: int) -> None:
        if self.grid is not None:
            self.slice_chosen.emit(axis, float(self.grid.origin[axis] + index * self.grid.spacing[axis]))

    def _show_slice_indices(self) -> None:
        """Sliders and their labels at the crosshair's slices ("k 12/31"; "k —/31" outside this volume)."""
        for view, (slider, label) in self.slice_sliders.items():
            axis = VIEWS[view][2]
            letter = AXIS_LETTERS[axis]
            if self.grid is None:
                slider.setEnabled(False)
                label.setText(f"{letter} —")
                continue
            last = self.grid.shape[axis] - 1
            exact = int(np.rint((self.crosshair[axis] - self.grid.origin[axis]) / self.grid.spacing[axis]))
            slider.blockSignals(True)  # the slider follows the crosshair; it does not move it again
            slider.setRange(0, last)
            slider.setValue(min(max(exact, 0), last))
            slider.blockSignals(False)
            slider.setEnabled(True)
            label.setText(f"{letter} {exact}/{last}" if 0 <= exact <= last else f"{letter} —/{last}")

    # -- what to show ------------------------------------------------------------------------------

    def show_message(self, text: str) -> None:
        """Replace the views by a sentence (no model yet, a part this family does not have)."""
        self.volume, self.grid = None, None
        self.message.setText(text)
        self.message.show()
        self.message.raise_()
        self.readout.setText("")
        self._show_slice_indices()

    def set_volume(self, volume: Volume, window: WindowLevel | None = None, reset_camera: bool = False) -> None:
        """Show a volume; the scene is rebuilt only when the grid's shape or place changes, and the
        cameras are fitted again only when the framed extent changes (or ``reset_camera``)."""
        if self._closed:  # a finalized render window must not get new actors
            return
        grid = Grid.from_volume(volume)
        same_geometry = (
            self.grid is not None
            and self.grid.shape == grid.shape
            and np.allclose(self.grid.origin, grid.origin)
            and np.allclose(self.grid.spacing, grid.spacing)
        )
        self.volume, self.grid = volume, grid
        if window is not None:
            self.window = window
        self.message.hide()
        self.arrange()
        if same_geometry and self._slices:
            for view, (slice_grid, actor) in self._slices.items():
                axis = VIEWS[view][2]
                grid.update_slice(slice_grid, axis, int(grid.index(self.crosshair)[axis]))
                actor.mapper.scalar_range = (self.window.low, self.window.high)
            if self._context_slices:
                self._place_context()
            self._show_provenance()
            self._3d_dirty = True
        else:
            self._build_scene()
        fit = self.fit_bounds()
        if reset_camera or self._fitted is None or not np.allclose(fit, self._fitted, atol=1e-3):
            self.reset_cameras()
        self._update_readout()
        self._show_slice_indices()
        self.render()

    def set_interactive(self, interactive: bool) -> None:
        """Interactive frames (previews while a slider moves) may coarsen the 3D view to stay
        quick; a still frame is drawn at full quality."""
        if self._closed:
            return
        rate = INTERACTIVE_UPDATE_RATE if interactive else STILL_UPDATE_RATE
        self.plotter.ren_win.SetDesiredUpdateRate(rate)

    def set_window(self, window: WindowLevel) -> None:
        self.window = window
        for _grid, actor in (*self._slices.values(), *self._context_slices.values()):
            actor.mapper.scalar_range = (window.low, window.high)
        if self.render_mode == RenderMode.MIP and self.grid is not None:
            self._3d_dirty = True
        self._update_readout()
        self.render()

    def set_crosshair(self, position_mm) -> None:
        self.crosshair = np.asarray(position_mm, dtype=float)
        if self.grid is None:
            return
        index = self.grid.index(self.crosshair)
        for view, (slice_grid, _actor) in self._slices.items():
            axis = VIEWS[view][2]
            self.grid.update_slice(slice_grid, axis, int(index[axis]))
        if self._context_slices:
            self._place_context()
        lines = crosshair_lines(self.crosshair, self.grid.bounds)
        for mesh in self._crosshairs:
            mesh.points = lines.points
        self._update_readout()
        self._show_slice_indices()
        self.render()

    def set_box(self, name: str, bounds: tuple | None) -> None:
        """Draw (or with None remove) a named box, e.g. the slab, in every view; a box that is
        already drawn moves in place (no other actor and no camera changes)."""
        if bounds is None:
            self.boxes.pop(name, None)
        else:
            self.boxes[name] = tuple(float(b) for b in bounds)
        if self.grid is None or self._closed:
            return
        meshes = self._box_meshes.get(name)
        if bounds is None:
            self._remove_actors(self._box_actors.pop(name, []))
            self._box_meshes.pop(name, None)
        elif meshes:
            points = box_lines(self.boxes[name]).points
            for mesh in meshes:
                mesh.points = points
        else:
            self._add_box(name)
        self.render()

    def box_bounds(self, name: str) -> tuple | None:
        """Bounds of a drawn box as the scene has it (tests check that the box moved)."""
        meshes = self._box_meshes.get(name)
        return tuple(meshes[0].bounds) if meshes else None

    def set_planes(self, name: str, axis: int, positions_mm=None) -> None:
        """Draw (or with None remove) named planes normal to ``axis`` at mm positions, e.g. slab boundaries."""
        if positions_mm is None or len(positions_mm) == 0:
            self.planes.pop(name, None)
        else:
            self.planes[name] = (int(axis), tuple(float(v) for v in positions_mm))
        if self.grid is not None and not self._closed:
            self._remove_actors(self._plane_actors.pop(name, []))
            if name in self.planes:
                self._add_planes(name)
            self.render()

    def set_colormap(self, cmap: str) -> None:
        """The slices' colormap (a matplotlib name); the window sets its range, e.g. centred on 0.
        Any colormap but grey (a difference map) comes with a colour bar in the 3D quadrant."""
        if cmap != self.cmap:
            self.cmap = cmap
            self.show_color_bar = cmap != "gray"
            if self.grid is not None:
                self._build_scene()
                self.render()

    def set_context(self, volume: Volume | None) -> None:
        """Show ``volume`` dimmed behind this one in the coronal and sagittal views: a thin slab
        is seen in place, within the whole body, instead of as a narrow band in an empty view."""
        if volume is self._context_volume:
            return
        self._context_volume = volume
        grid = Grid.from_volume(volume) if volume is not None else None
        same_shape = grid is not None and self._context is not None and grid.shape == self._context.shape
        self._context = grid
        if self.grid is None or self._closed:
            return
        if same_shape and self._context_slices:
            self._place_context()
        else:
            self._remove_actors([(self._renderer(v), actor) for v, (_g, actor) in self._context_slices.items()])
            self._context_slices = {}
            if grid is not None:
                self._add_context()
        self.render()

    def _add_context(self) -> None:
        index = self._context.index(self.crosshair)
        for view in CONTEXT_VIEWS:
            axis = VIEWS[view][2]
            slice_grid = self._context.slice_grid(axis, int(index[axis]))
            actor = self._add_mesh(
                view,
                slice_grid,
                scalars="intensity",
                cmap="gray",
                clim=(self.window.low, self.window.high),
                opacity=CONTEXT_OPACITY,
                lighting=False,
                show_scalar_bar=False,
            )
            self._context_slices[view] = (slice_grid, actor)
        self._place_context()

    def _place_context(self) -> None:
        """Context slices at the crosshair, half a voxel behind the pane's own slice (seen from the camera)."""
        index = self._context.index(self.crosshair)
        for view, (slice_grid, actor) in self._context_slices.items():
            axis = VIEWS[view][2]
            self._context.update_slice(slice_grid, axis, int(index[axis]))
            direction = np.array(CAMERA[view][0], dtype=float)
            slice_grid.origin = np.array(slice_grid.origin) + direction * self._context.spacing[axis] / 2
            actor.mapper.scalar_range = (self.window.low, self.window.high)

    def set_render_mode(self, mode: str, preset: int | None = None, iso_value: float | None = None) -> None:
        self.render_mode = mode
        if preset is not None:
            self.volume_preset = preset
        self.iso_value = iso_value  # None: the preset's default level
        if self.grid is not None:
            self._update_3d_only()

    def set_3d_visible(self, visible: bool) -> None:
        self.show_3d = visible
        if self.grid is not None:
            self._update_3d_only()

    # -- scene -------------------------------------------------------------------------------------

    def _renderer(self, view: str):
        return self.plotter.renderers[view_index(view)]

    def _build_scene(self) -> None:
        if self._closed:
            return
        p, grid = self.plotter, self.grid
        index = grid.index(self.crosshair)
        for bar in self._scale_bars:
            bar.remove()
        self._slices, self._crosshairs, self._box_meshes, self._box_actors, self._plane_actors = {}, [], {}, {}, {}
        self._labels, self._scale_bars, self._color_bar, self._context_slices = [], [], None, {}
        cross = crosshair_lines(self.crosshair, grid.bounds)
        for view, (row, column, axis) in VIEWS.items():
            p.subplot(row, column)
            renderer = p.renderer
            renderer.clear()  # this view only: plotter.clear() would empty every view
            p.set_background(BACKGROUND)
            if axis is not None:
                slice_grid = grid.slice_grid(axis, int(index[axis]))
                actor = p.add_mesh(
                    slice_grid,
                    scalars="intensity",
                    cmap=self.cmap,
                    clim=(self.window.low, self.window.high),
                    lighting=False,  # grey values must be the window's, not shaded
                    show_scalar_bar=False,
                    reset_camera=False,
                    render=False,
                )
                self._slices[view] = (slice_grid, actor)
                for text, place in zip(LETTERS[view], ("left", "right", "top", "bottom")):
                    renderer.AddViewProp(text_label(text, place, LETTER_COLOR, 13))
                self._scale_bars.append(ScaleBar(renderer))
            renderer.AddViewProp(text_label(view, "lower_left", VIEW_NAME_COLOR, 10))
            # below the top letter in slice views, so that the two never overlap
            label = text_label("", "upper_right", "#ffffff", 11, lines_down=1 if axis is not None else 0)
            renderer.AddViewProp(label)
            self._labels.append(label)
            if axis is None and self.show_color_bar:
                continue  # the 3D quadrant holds the colour bar alone
            crosshair = cross.copy()
            p.add_mesh(crosshair, color=CROSSHAIR_COLOR, line_width=1, reset_camera=False, render=False)
            self._crosshairs.append(crosshair)
        for name in self.boxes:
            self._add_box(name)
        for name in self.planes:
            self._add_planes(name)
        if self._context is not None:
            self._add_context()
        if self.show_color_bar and "axial" in self._slices:
            unit = self.volume.intensity.unit
            self._color_bar = color_bar(self._slices["axial"][1].mapper.lookup_table, unit or "value")
            self._renderer("3d").AddViewProp(self._color_bar)
        self._show_provenance()
        self._actors_3d = []  # cleared with the renderer above
        self._rebuild_3d()
        self._show_maximised()

    def _show_provenance(self) -> None:
        synthetic = bool(self.volume.provenance.get("synthetic", False))
        text, color = (SYNTHETIC_LABEL, (1.0, 0.31, 0.31)) if synthetic else (FILE_LABEL, (0.31, 0.82, 0.31))
        for label in self._labels:
            label.SetInput(text)
            label.GetTextProperty().SetColor(*color)

    def _line_views(self) -> list[str]:
        """Views that draw lines (crosshair, boxes, planes): all but a 3D quadrant given to a colour bar."""
        return [view for view in VIEWS if not (view == "3d" and self.show_color_bar)]

    def _add_box(self, name: str) -> None:
        meshes, actors = [], []
        for view in self._line_views():
            box = box_lines(self.boxes[name])
            actor = self._add_mesh(view, box, color=BOX_COLORS.get(name, "white"), line_width=2)
            meshes.append(box)
            actors.append((self._renderer(view), actor))
        self._box_meshes[name], self._box_actors[name] = meshes, actors

    def _add_planes(self, name: str) -> None:
        axis, positions = self.planes[name]
        planes = plane_lines(self.grid.bounds, self.grid.spacing, axis, positions)
        color, actors = BOX_COLORS.get(name, "white"), []
        for view in self._line_views():
            actor = self._add_mesh(view, planes.copy(), color=color, line_width=1)
            actors.append((self._renderer(view), actor))
        self._plane_actors[name] = actors

    def _add_mesh(self, view: str, mesh, **options):
        row, column, _ = VIEWS[view]
        self.plotter.subplot(row, column)
        return self.plotter.add_mesh(mesh, reset_camera=False, render=False, **options)

    @staticmethod
    def _remove_actors(pairs) -> None:
        for renderer, actor in pairs:
            renderer.remove_actor(actor, reset_camera=False, render=False)

    def _rebuild_3d(self) -> None:
        """Bring the 3D view up to date (in the pane's turn: see ``paint_now``)."""
        self._3d_dirty = False
        if self._closed:
            return
        p = self.plotter
        row, column, _ = VIEWS["3d"]
        p.subplot(row, column)
        renderer = p.renderer
        image, look = None, None
        if self.grid is not None and self.show_3d:
            presets = volume_presets(self.volume, self.modality)
            preset = presets[min(self.volume_preset, len(presets) - 1)]
            iso = self.iso_value if self.iso_value is not None else isosurface_value(self.volume, self.modality)
            image = rendering_grid(self.grid)
            look = (self.render_mode, self.window, repr(preset), iso, image.dimensions, image.spacing, image.origin)
            if self._actors_3d and look == self._look_3d and self.render_mode != RenderMode.ISOSURFACE:
                # only the voxels changed (e.g. the next point of an interpolation): refilling the
                # mapper's grid costs a fraction of a new actor with its transfer functions
                target = self._actors_3d[0].mapper.dataset
                target.point_data["intensity"][:] = image.point_data["intensity"]
                target.Modified()
                return
        self._surface_request = None  # a surface still on its way is no longer wanted
        if image is not None and self.render_mode == RenderMode.ISOSURFACE:
            # the old 3D view stays until the surface is ready, then the pane renders once more
            request = self._surface_request = (object(), look)
            future = MESHING.submit(isosurface, image, iso)
            pane = weakref.ref(self)
            future.add_done_callback(lambda done: surface_relay().made.emit(pane, request, done))
            return
        for actor in self._actors_3d:
            renderer.remove_actor(actor, reset_camera=False, render=False)
        self._actors_3d, self._look_3d = [], look
        if image is not None:
            self._actors_3d = add_3d(p, image, self.render_mode, self.window, preset, iso)

    def _on_surface(self, request, future: Future) -> None:
        if request is not self._surface_request or self._closed:
            return  # superseded by a newer volume or mode
        self._surface_request = None
        try:
            surface = future.result()
        except Exception:  # noqa: BLE001 - a failed extraction leaves the 3D view empty, never the app down
            surface = None
        p = self.plotter
        row, column, _ = VIEWS["3d"]
        p.subplot(row, column)
        for actor in self._actors_3d:
            p.renderer.remove_actor(actor, reset_camera=False, render=False)
        self._look_3d = request[1]
        self._actors_3d = add_surface(p, surface) if surface is not None else []
        self.render()

    @property
    def paint_pending(self) -> bool:
        """True while a change waits for its render (callers that take turns with the pane wait for it);
        a hidden pane (a dock tabbed away) paints when shown, so nothing waits for it."""
        wanted = self._paint_wanted or self._paint_scheduled
        return wanted and self.showing_volume and not self._closed and self.plotter.isVisible()

    @property
    def pending_3d(self) -> bool:
        """True while the 3D view waits for its turn or for its isosurface (tests wait for it)."""
        return self._3d_dirty or self._surface_request is not None

    # -- cameras -----------------------------------------------------------------------------------

    def fit_bounds(self) -> tuple[float, ...]:
        """The extent the cameras fit: the frame the pane is told (a hierarchy's common volume) or its own."""
        return tuple(self.frame_bounds) if self.frame_bounds is not None else edge_bounds(self.grid)

    def reset_cameras(self, views=None) -> None:
        """Slice views face their plane (radiological convention) and fit the framed extent; the 3D
        view is isometric. ``views``: only these (default all four)."""
        if self.grid is None or self._closed:
            return
        fit = self.fit_bounds()
        bounds = np.array(fit).reshape(3, 2)
        centre = bounds.mean(axis=1)
        extent = bounds[:, 1] - bounds[:, 0]
        for view in views or VIEWS:
            axis = VIEWS[view][2]
            renderer = self._renderer(view)
            camera = renderer.camera
            if axis is None:
                renderer.view_isometric(render=False)
                renderer.reset_camera(render=False, bounds=fit)
                renderer.camera.zoom(1.1)
                continue
            direction, up = (np.array(v, dtype=float) for v in CAMERA[view])
            camera.focal_point = centre
            camera.position = centre - direction * extent.max() * 3
            camera.up = up
            camera.parallel_projection = True
            up_axis = int(np.argmax(np.abs(up)))
            across = 3 - axis - up_axis  # the screen's horizontal axis
            width, height = renderer.GetSize()
            aspect = width / height if width and height else 1.0
            camera.parallel_scale = 0.52 * max(extent[up_axis], extent[across] / aspect)
            renderer.reset_camera_clipping_range()
        if views is None:
            self._fitted = fit

    def camera_state(self) -> dict[str, tuple]:
        """Each view's camera as (position, focal point, view up, parallel scale): tests compare them."""
        state = {}
        for view in VIEWS:
            camera = self._renderer(view).GetActiveCamera()
            state[view] = (camera.GetPosition(), camera.GetFocalPoint(), camera.GetViewUp(), camera.GetParallelScale())
        return state

    # -- drawing -------------------------------------------------------------------------------------

    @property
    def showing_volume(self) -> bool:
        """True while a volume is on screen, False while the pane shows a message instead."""
        return self.message.isHidden()

    def render(self) -> None:
        """Ask for one redraw; several changes before it share it, and panes take turns (render queue).

        ``plotter.render()`` would render now and then once more in the paint it schedules
        (pyvistaqt's paintGL always renders): twice the time on the UI thread for the same image.
        Whoever needs the pixels at once (a test's screenshot) calls ``render_now()``.
        """
        if self.showing_volume and not self._closed:
            self._paint_wanted = True
            render_queue().request(self)

    def _on_render_started(self) -> None:
        self._paint_scheduled = False
        if not self._3d_dirty:  # (a 3D update still waiting keeps its turn)
            render_queue().forget(self)
            self._paint_wanted = False

    def _update_3d_only(self) -> None:
        """The 3D view changes and nothing else: in the pane's turn, rebuild it; paint then, unless
        its new content is still on its way (an isosurface), which paints when it comes."""
        self._3d_dirty = True
        if self.showing_volume and not self._closed:
            render_queue().request(self)

    def paint_now(self) -> bool:
        """Schedule the widget's paint (the render queue calls this); False if there is nothing to draw."""
        if self._closed or not shiboken6.isValid(self) or not self.showing_volume:
            return False
        if self._3d_dirty:
            self._rebuild_3d()
        if not self._paint_wanted and self._surface_request is not None:
            return False
        self._paint_wanted = False
        self._paint_scheduled = True
        self.plotter.update()
        return True

    def render_now(self) -> None:
        """Render at once (screenshots, tests): the frame is in the render window when this returns."""
        if not self._closed:
            if self._3d_dirty:
                self._rebuild_3d()
            self.plotter.ren_win.Render()

    def probe(self, position_mm, view: str = "") -> Probe | None:
        """The voxel and value at a position (None without a volume)."""
        if self.grid is None:
            return None
        position = np.asarray(position_mm, dtype=float)
        inside = self.grid.contains(position)
        index = tuple(int(v) for v in self.grid.index(position)) if inside else None
        value = self.grid.value(position) if inside else None
        return Probe(self.name, view, position, index, value, self.volume.intensity.unit)

    def _update_readout(self) -> None:
        if self.grid is None:
            self.readout.setText("")
            return
        size = "×".join(map(str, self.grid.shape))
        spacing = spacing_text(self.grid.spacing)
        probe = self.probe(self.crosshair)
        if probe.index is None:
            value = "crosshair outside"
        else:
            value = f"{probe.value:.0f} {probe.unit}" if probe.unit else f"{probe.value:.4g}"
        self.readout.setText(f"{size} · {spacing} mm · {value}")
        self.readout.setToolTip(
            f"{size} voxels of {spacing} mm; at the crosshair {probe.describe()}; {self.window.label(probe.unit)}"
        )

    # -- mouse -------------------------------------------------------------------------------------

    def _install_style(self) -> None:
        """Trackball in the 3D view; click = crosshair, drag = window/level, wheel = slice in 2D;
        double-click = this view alone (and back)."""
        style = vtkInteractorStyleTrackballCamera()
        self._style = style
        self.plotter.iren.interactor.SetInteractorStyle(style)
        style.AddObserver("LeftButtonPressEvent", self._on_left_press)
        style.AddObserver("LeftButtonReleaseEvent", self._on_left_release)
        style.AddObserver("MouseMoveEvent", self._on_mouse_move)
        style.AddObserver("MouseWheelForwardEvent", lambda *_: self._on_wheel(+1))
        style.AddObserver("MouseWheelBackwardEvent", lambda *_: self._on_wheel(-1))
        style.AddObserver("EndInteractionEvent", lambda *_: self.camera_moved.emit())
        style.AddObserver("LeaveEvent", lambda *_: self.probed.emit(None))

    def view_at(self, x: int, y: int) -> str | None:
        """Which view is under a display position (VTK pixels, origin bottom left)."""
        width, height = self.plotter.ren_win.GetSize()
        for view in VIEWS:
            renderer = self._renderer(view)
            if not renderer.GetDraw():
                continue
            x0, y0, x1, y1 = renderer.GetViewport()
            if x0 * width <= x < x1 * width and y0 * height <= y < y1 * height:
                return view
        return None

    def view_under_mouse(self) -> str | None:
        """The view the mouse is over now, or None when it is elsewhere."""
        if self._closed or not self.plotter.underMouse():
            return None
        x, y = self.plotter.iren.interactor.GetEventPosition()
        return self.view_at(x, y)

    def position_at(self, view: str, x: int, y: int) -> np.ndarray:
        """The mm position under a display position in a slice view (out-of-plane: the crosshair's)."""
        renderer = self._renderer(view)
        renderer.SetDisplayPoint(x, y, 0)
        renderer.DisplayToWorld()
        world = np.array(renderer.GetWorldPoint(), dtype=float)
        position = world[:3] / (world[3] if world[3] else 1.0)
        axis = VIEWS[view][2]
        position[axis] = self.crosshair[axis]
        return position

    def _event_view(self) -> tuple[str | None, int, int]:
        x, y = self.plotter.iren.interactor.GetEventPosition()
        return self.view_at(x, y), x, y

    def _on_left_press(self, *_args) -> None:
        view, x, y = self._event_view()
        if view is not None and self.grid is not None and self.plotter.iren.interactor.GetRepeatCount():
            self._press = None
            self.toggle_maximised(view)
            return
        if view is None or view == "3d" or self.grid is None:
            self._style.OnLeftButtonDown()
            return
        self._press, self._dragging = (view, x, y), False

    def _on_mouse_move(self, *_args) -> None:
        if self._press is None:
            self._probe_mouse()
            self._style.OnMouseMove()
            return
        view, x0, y0 = self._press
        x, y = self.plotter.iren.interactor.GetEventPosition()
        if not self._dragging and abs(x - x0) + abs(y - y0) < DRAG_THRESHOLD:
            return
        self._dragging = True
        self._press = (view, x, y)
        self.window_dragged.emit(float(x - x0), float(y - y0))

    def _probe_mouse(self) -> None:
        view, x, y = self._event_view()
        if view is None or view == "3d" or self.grid is None:
            self.probed.emit(None)
            return
        self.probed.emit(self.probe(self.position_at(view, x, y), view))

    def _on_left_release(self, *_args) -> None:
        if self._press is None:
            self._style.OnLeftButtonUp()
            return
        view, x, y = self._press
        if not self._dragging:
            position = self.position_at(view, x, y)
            if self.grid is not None and self.grid.contains(position):  # the margin around the volume: nothing
                self.picked.emit(position)
        self._press, self._dragging = None, False

    def _on_wheel(self, step: int) -> None:
        view, _x, _y = self._event_view()
        if view is None or view == "3d" or self.grid is None:
            (self._style.OnMouseWheelForward if step > 0 else self._style.OnMouseWheelBackward)()
            self.camera_moved.emit()
            return
        self.slice_stepped.emit(VIEWS[view][2], step)

    # -- layout --------------------------------------------------------------------------------------

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self.arrange()

    def arrange(self) -> None:
        """Place the four views as 2x2, one row or one column, whichever keeps them closest to square."""
        width, height = max(1, self.stack.width()), max(1, self.stack.height())  # the plotter may be hidden
        rows, columns = min(ARRANGEMENTS, key=lambda rc: abs(np.log((width / rc[1]) / (height / rc[0]))))
        if (rows, columns) == self.arrangement:
            return
        self.arrangement = (rows, columns)
        self._place_views()
        if self.grid is not None:
            self.reset_cameras()
        self.render()

    def _place_views(self) -> None:
        rows, columns = self.arrangement
        for number, view in enumerate(VIEWS):
            renderer = self._renderer(view)
            if self.maximised is not None:
                renderer.SetDraw(view == self.maximised)
                if view == self.maximised:
                    renderer.SetViewport(0.0, 0.0, 1.0, 1.0)
                continue
            renderer.SetDraw(True)
            row, column = divmod(number, columns)
            x0, y1 = column / columns, 1 - row / rows
            renderer.SetViewport(x0, y1 - 1 / rows, x0 + 1 / columns, y1)

    def toggle_maximised(self, view: str) -> None:
        """Show ``view`` alone in the pane, or all four again if it is the one shown."""
        self.maximised = None if self.maximised == view else view
        self._show_maximised()
        self.render()

    def _show_maximised(self) -> None:
        if self._closed:
            return
        self._place_views()
        # the view's shape changed: keep its zoom (parallel scale) and centre; only the 3D view refits
        for view in VIEWS:
            self._renderer(view).reset_camera_clipping_range()

    # -- cameras shared between panes -------------------------------------------------------------

    def share_cameras(self, other: VolumePane) -> None:
        """Use ``other``'s cameras: zoom, pan and rotation become common to both panes."""
        for view in VIEWS:
            index = view_index(view)
            self.plotter.renderers[index].camera = other.plotter.renderers[index].camera

    def close_view(self) -> None:
        """Finalize VTK/GL while the widget and its context are alive (once; later calls do nothing).

        The order matters. pyvista's ``close`` detaches every actor from the renderers *before* it
        finalizes the render window, and drops the observers that make this widget's GL context
        current; GL objects of actors still referenced from Python would then be freed later (at
        garbage collection, maybe during the next window's life) against whatever context is
        current. So: nothing more is queued or observed, the window is finalized while its actors
        are attached and its context can be made current, and only then pyvista closes; the
        pane's own references to VTK objects go last.
        """
        if self._closed:
            return
        self._closed = True
        self._surface_request = None
        render_queue().forget(self)
        for bar in self._scale_bars:
            bar.remove()
        self._style.RemoveAllObservers()  # their callbacks hold this pane
        window = self.plotter.ren_win
        window.RemoveObserver(self._render_observer)
        window.Finalize()  # releases every attached actor's GL objects in this widget's context
        self.plotter.close()
        # pyvistaqt keeps Python wrappers of the widget's GL context and its surface until Qt says
        # the context dies, which it may never say when the whole window is deleted at once. A
        # stale wrapper can then be handed out for a new surface at the same address (a later
        # window's initializeGL crashed in QOpenGLContext.surface()): drop them now.
        forget = getattr(self.plotter, "_forget_context", None)
        if forget is not None:
            forget()
        self._slices, self._crosshairs, self._box_meshes, self._box_actors, self._plane_actors = {}, [], {}, {}, {}
        self._labels, self._scale_bars, self._color_bar, self._actors_3d = [], [], None, []
        self._context_slices, self._context, self._context_volume = {}, None, None
