"""One pane: a volume as axial, coronal and sagittal slices plus a 3D view, with a title and readout.

The pane shows what it is told (volume, window, crosshair, boxes, 3D mode) and reports what the
user does in it (a click at a position in mm, a window/level drag, a slice step, a camera move)
as signals. It never edits application state itself; the hierarchy view wires it to the state.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget
from pyvistaqt import QtInteractor
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera

from engine.api import Volume

from ..render.scene3d import (
    INTERACTIVE_UPDATE_RATE,
    STILL_UPDATE_RATE,
    add_3d,
    isosurface_value,
    rendering_grid,
    volume_presets,
)
from ..render.slices import BACKGROUND, FILE_LABEL, SYNTHETIC_LABEL, Grid, box_lines, crosshair_lines, plane_lines
from ..render.window_level import WindowLevel

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
ARRANGEMENTS = ((2, 2), (1, 4), (4, 1))  # rows x columns of the four views
DRAG_THRESHOLD = 3  # pixels before a press becomes a window/level drag


def view_index(name: str) -> int:
    row, column, _ = VIEWS[name]
    return row * 2 + column


class VolumePane(QWidget):
    """A titled 2x2 view of one volume. Cameras can be shared with other panes (``share_cameras``)."""

    picked = Signal(object)  # np.ndarray (3,): mm position of a click in a slice view
    window_dragged = Signal(float, float)  # dx, dy in pixels since the last report
    slice_stepped = Signal(int, int)  # slice axis (0 i, 1 j, 2 k), +1 / -1
    camera_moved = Signal()  # the user zoomed, panned or rotated: panes that share cameras render

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = title
        self.header = QLabel(title)
        self.header.setTextFormat(Qt.TextFormat.PlainText)
        self.header.setStyleSheet("font-weight: bold; padding: 2px;")
        self.readout = QLabel("")
        self.readout.setStyleSheet("color: #555; padding: 0 2px 2px 2px;")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.plotter = QtInteractor(self, shape=(2, 2), auto_update=False, border=True, border_color="#444444")
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

        self.volume: Volume | None = None
        self.grid: Grid | None = None
        self.window = WindowLevel(2.0, 0.0)
        self.crosshair = np.zeros(3)
        self.render_mode = "volume"
        self.volume_preset = 0
        self.iso_value: float | None = None
        self.modality = ""
        self.boxes: dict[str, tuple] = {}
        self.show_3d = True
        self.cmap = "gray"  # slice colormap; difference maps use a diverging one, centred by the window
        self.planes: dict[str, tuple[int, tuple[float, ...]]] = {}  # name -> (normal axis, positions in mm)
        self._slices: dict[str, tuple] = {}  # view -> (slice grid, actor)
        self._crosshairs: list = []  # one line mesh per view (each renderer needs its own actor)
        self._box_meshes: dict[str, list] = {}
        self._actors_3d: list = []
        self._look_3d: tuple | None = None  # what the 3D actors show, besides the voxels
        self._label_synthetic: bool | None = None  # which label the scene carries
        self._press: tuple[str, int, int] | None = None
        self._dragging = False
        self.arrangement = (2, 2)
        self._closed = False
        self._install_style()
        self.show_message("No volume yet")

    # -- what to show ------------------------------------------------------------------------------

    def show_message(self, text: str) -> None:
        """Replace the views by a sentence (no model yet, a part this family does not have)."""
        self.volume, self.grid = None, None
        self.message.setText(text)
        self.message.show()
        self.message.raise_()
        self.readout.setText("")

    def set_volume(self, volume: Volume, window: WindowLevel | None = None, reset_camera: bool = False) -> None:
        """Show a volume; the scene is rebuilt only when the grid's shape or place changes."""
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
        labelled = self._label_synthetic == bool(volume.provenance.get("synthetic", False))
        if same_geometry and self._slices and labelled:
            for view, (slice_grid, actor) in self._slices.items():
                axis = VIEWS[view][2]
                grid.update_slice(slice_grid, axis, int(grid.index(self.crosshair)[axis]))
                actor.mapper.scalar_range = (self.window.low, self.window.high)
            self._rebuild_3d()
        else:
            self._build_scene()
        if reset_camera or not same_geometry:
            self.reset_cameras()
        self._update_readout()
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
        for _grid, actor in self._slices.values():
            actor.mapper.scalar_range = (window.low, window.high)
        if self.render_mode == "mip":
            self._rebuild_3d()
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
        lines = crosshair_lines(self.crosshair, self.grid.bounds)
        for mesh in self._crosshairs:
            mesh.points = lines.points
        self._update_readout()
        self.render()

    def set_box(self, name: str, bounds: tuple | None) -> None:
        """Draw (or with None remove) a named box, e.g. the slab, in every view."""
        if bounds is None:
            self.boxes.pop(name, None)
        else:
            self.boxes[name] = tuple(float(b) for b in bounds)
        if self.grid is None:
            return
        meshes = self._box_meshes.get(name)
        if meshes and bounds is not None:
            points = box_lines(self.boxes[name]).points
            for mesh in meshes:
                mesh.points = points
        else:
            self._build_scene()
            return
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
        if self.grid is not None:
            self._build_scene()
            self.render()

    def set_colormap(self, cmap: str) -> None:
        """The slices' colormap (a matplotlib name); the window sets its range, e.g. centred on 0."""
        if cmap != self.cmap:
            self.cmap = cmap
            if self.grid is not None:
                self._build_scene()
                self.render()

    def set_render_mode(self, mode: str, preset: int | None = None, iso_value: float | None = None) -> None:
        self.render_mode = mode
        if preset is not None:
            self.volume_preset = preset
        self.iso_value = iso_value  # None: the preset's default level
        if self.grid is not None:
            self._rebuild_3d()
            self.render()

    def set_3d_visible(self, visible: bool) -> None:
        self.show_3d = visible
        if self.grid is not None:
            self._rebuild_3d()
            self.render()

    # -- scene -------------------------------------------------------------------------------------

    def _build_scene(self) -> None:
        p, grid = self.plotter, self.grid
        index = grid.index(self.crosshair)
        self._slices, self._crosshairs, self._box_meshes = {}, [], {}
        cross = crosshair_lines(self.crosshair, grid.bounds)
        for view, (row, column, axis) in VIEWS.items():
            p.subplot(row, column)
            p.renderer.clear()  # this view only: plotter.clear() would empty every view
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
                )
                self._slices[view] = (slice_grid, actor)
                left, right, top, bottom = LETTERS[view]
                for text, position in ((left, "left_edge"), (right, "right_edge"), (top, "upper_edge")):
                    p.add_text(text, position=position, color="#f0c040", font_size=9, name=f"letter-{position}")
                p.add_text(bottom, position="lower_edge", color="#f0c040", font_size=9, name="letter-lower")
                p.add_text(view, position="lower_left", color="#aaaaaa", font_size=7, name="view")
            crosshair = cross.copy()
            p.add_mesh(crosshair, color=CROSSHAIR_COLOR, line_width=1, reset_camera=False, name="crosshair")
            self._crosshairs.append(crosshair)
            for name, bounds in self.boxes.items():
                box = box_lines(bounds)
                p.add_mesh(box, color=BOX_COLORS.get(name, "white"), line_width=2, reset_camera=False, name=name)
                self._box_meshes.setdefault(name, []).append(box)
            for name, (axis, positions) in self.planes.items():
                planes = plane_lines(grid.bounds, grid.spacing, axis, positions)
                color = BOX_COLORS.get(name, "white")
                p.add_mesh(planes, color=color, line_width=1, reset_camera=False, name=f"planes-{name}")
            synthetic = bool(self.volume.provenance.get("synthetic", False))
            label, color = (SYNTHETIC_LABEL, "#ff5050") if synthetic else (FILE_LABEL, "#50d050")
            p.add_text(label, position="upper_right", color=color, font_size=8, name="synthetic")
        self._actors_3d = []  # cleared with the renderer above
        self._label_synthetic = bool(self.volume.provenance.get("synthetic", False))
        self._rebuild_3d()

    def _rebuild_3d(self) -> None:
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
            if self._actors_3d and look == self._look_3d and self.render_mode != "isosurface":
                # only the voxels changed (e.g. the next point of an interpolation): refilling the
                # mapper's grid costs a fraction of a new actor with its transfer functions
                target = self._actors_3d[0].mapper.dataset
                target.point_data["intensity"][:] = image.point_data["intensity"]
                target.Modified()
                return
        for actor in self._actors_3d:
            renderer.remove_actor(actor, render=False)
        self._actors_3d, self._look_3d = [], look
        if image is not None:
            self._actors_3d = add_3d(p, image, self.render_mode, self.window, preset, iso)

    def reset_cameras(self) -> None:
        """Slice views face their plane (radiological convention) and fit it; the 3D view is isometric."""
        if self.grid is None:
            return
        bounds = np.array(self.grid.bounds).reshape(3, 2)
        centre = bounds.mean(axis=1)
        extent = bounds[:, 1] - bounds[:, 0] + self.grid.spacing
        for view, (row, column, axis) in VIEWS.items():
            self.plotter.subplot(row, column)
            camera = self.plotter.renderer.camera
            if axis is None:
                self.plotter.view_isometric()
                self.plotter.reset_camera(bounds=self.grid.bounds)
                self.plotter.renderer.camera.zoom(1.1)
                continue
            direction, up = (np.array(v, dtype=float) for v in CAMERA[view])
            camera.focal_point = centre
            camera.position = centre - direction * extent.max() * 3
            camera.up = up
            camera.parallel_projection = True
            up_axis = int(np.argmax(np.abs(up)))
            across = 3 - axis - up_axis  # the screen's horizontal axis
            width, height = self.plotter.renderer.GetSize()
            aspect = width / height if width and height else 1.0
            camera.parallel_scale = 0.52 * max(extent[up_axis], extent[across] / aspect)
            self.plotter.renderer.reset_camera_clipping_range()

    @property
    def showing_volume(self) -> bool:
        """True while a volume is on screen, False while the pane shows a message instead."""
        return self.message.isHidden()

    def render(self) -> None:
        """Ask for one redraw in the next paint; several changes in one event-loop turn share it.

        ``plotter.render()`` would render now and then once more in the paint it schedules
        (pyvistaqt's paintGL always renders): twice the time on the UI thread for the same image.
        Whoever needs the pixels at once (a test's screenshot) calls ``plotter.render()`` itself.
        """
        if self.showing_volume:
            self.plotter.update()

    def _update_readout(self) -> None:
        if self.grid is None:
            self.readout.setText("")
            return
        volume, grid = self.volume, self.grid
        unit = volume.intensity.unit
        size = "×".join(map(str, grid.shape))
        spacing = "×".join(f"{s:g}" for s in grid.spacing)
        x, y, z = self.crosshair
        where = f"({x:.1f}, {y:.1f}, {z:.1f}) mm"
        if grid.contains(self.crosshair):
            value = f"{grid.value(self.crosshair):.0f} {unit}" if unit else f"{grid.value(self.crosshair):.3g}"
        else:
            value = "outside"
        self.readout.setText(f"{size} @ {spacing} mm · {where}: {value} · {self.window.label(unit)}")

    # -- mouse -------------------------------------------------------------------------------------

    def _install_style(self) -> None:
        """Trackball in the 3D view; click = crosshair, drag = window/level, wheel = slice in 2D."""
        style = vtkInteractorStyleTrackballCamera()
        self._style = style
        self.plotter.iren.interactor.SetInteractorStyle(style)
        style.AddObserver("LeftButtonPressEvent", self._on_left_press)
        style.AddObserver("LeftButtonReleaseEvent", self._on_left_release)
        style.AddObserver("MouseMoveEvent", self._on_mouse_move)
        style.AddObserver("MouseWheelForwardEvent", lambda *_: self._on_wheel(+1))
        style.AddObserver("MouseWheelBackwardEvent", lambda *_: self._on_wheel(-1))
        style.AddObserver("EndInteractionEvent", lambda *_: self.camera_moved.emit())

    def view_at(self, x: int, y: int) -> str | None:
        """Which view is under a display position (VTK pixels, origin bottom left)."""
        width, height = self.plotter.ren_win.GetSize()
        for view in VIEWS:
            x0, y0, x1, y1 = self.plotter.renderers[view_index(view)].GetViewport()
            if x0 * width <= x < x1 * width and y0 * height <= y < y1 * height:
                return view
        return None

    def position_at(self, view: str, x: int, y: int) -> np.ndarray:
        """The mm position under a display position in a slice view (out-of-plane: the crosshair's)."""
        renderer = self.plotter.renderers[view_index(view)]
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
        if view is None or view == "3d" or self.grid is None:
            self._style.OnLeftButtonDown()
            return
        self._press, self._dragging = (view, x, y), False

    def _on_mouse_move(self, *_args) -> None:
        if self._press is None:
            self._style.OnMouseMove()
            return
        view, x0, y0 = self._press
        x, y = self.plotter.iren.interactor.GetEventPosition()
        if not self._dragging and abs(x - x0) + abs(y - y0) < DRAG_THRESHOLD:
            return
        self._dragging = True
        self._press = (view, x, y)
        self.window_dragged.emit(float(x - x0), float(y - y0))

    def _on_left_release(self, *_args) -> None:
        if self._press is None:
            self._style.OnLeftButtonUp()
            return
        view, x, y = self._press
        if not self._dragging:
            self.picked.emit(self.position_at(view, x, y))
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
        for number, view in enumerate(VIEWS):
            row, column = divmod(number, columns)
            x0, y1 = column / columns, 1 - row / rows
            self.plotter.renderers[view_index(view)].SetViewport(x0, y1 - 1 / rows, x0 + 1 / columns, y1)
        if self.grid is not None:
            self.reset_cameras()
        self.render()

    # -- cameras shared between panes -------------------------------------------------------------

    def share_cameras(self, other: VolumePane) -> None:
        """Use ``other``'s cameras: zoom, pan and rotation become common to both panes."""
        for view in VIEWS:
            index = view_index(view)
            self.plotter.renderers[index].camera = other.plotter.renderers[index].camera

    def close_view(self) -> None:
        """Finalize VTK/GL while the widget and its context are alive (once; later calls do nothing)."""
        if not self._closed:
            self._closed = True
            self.plotter.close()
