"""The hierarchy's views as a user meets them: cameras that stay put, the probe line, one view at a
time, overlays that do not cover each other, renders once per change."""

from __future__ import annotations

import numpy as np
from app_support import frame, open_and_wait, wait_for_parts
from PySide6.QtCore import QPoint, Qt
from vtkmodules.vtkRenderingCore import vtkTextActor


def view_point(pane, view: str, fx: float, fy: float) -> QPoint:
    """A widget position at fractions (fx from the left, fy from the bottom) of a view."""
    from app.views.pane import view_index

    x0, y0, x1, y1 = pane.plotter.renderers[view_index(view)].GetViewport()
    width, height = pane.plotter.ren_win.GetSize()
    ratio = pane.plotter.devicePixelRatioF()
    x = (x0 + (x1 - x0) * fx) * width
    y = height - (y0 + (y1 - y0) * fy) * height
    return QPoint(int(x / ratio), int(y / ratio))


def all_cameras(hierarchy) -> dict:
    return {part: pane.camera_state() for part, pane in hierarchy.panes.items()}


def test_slab_and_crosshair_moves_leave_every_camera_alone(main_window, qtbot, tiny_model_file):
    from app.views.pane import view_index

    open_and_wait(main_window, qtbot, tiny_model_file)
    hierarchy, state = main_window.hierarchy, main_window.state
    coronal = hierarchy.full.plotter.renderers[view_index("coronal")].GetActiveCamera()
    coronal.Zoom(1.7)  # the user zoomed and panned the coronal view
    coronal.SetFocalPoint(*(np.array(coronal.GetFocalPoint()) + (5.0, 0.0, 3.0)))
    before = all_cameras(hierarchy)
    wait_for_parts(main_window, qtbot, lambda: hierarchy.slab_slider.setValue(1), parts=("slab",))
    state.set_crosshair(state.crosshair + (4.0, -3.0, 6.0))
    wait_for_parts(main_window, qtbot, lambda: hierarchy.slab_slider.setValue(5), parts=("slab",))
    assert state.slab_start == 20
    assert all_cameras(hierarchy) == before  # position, focal point, view up and parallel scale of every view
    # the same plane stays linked across panes: the slab pane's coronal view has the same zoom
    assert hierarchy.slab.camera_state()["coronal"] == hierarchy.full.camera_state()["coronal"]

    hierarchy.full.reset_cameras(["coronal"])  # R over the coronal view
    after = hierarchy.full.camera_state()
    assert after["coronal"][3] > before["full"]["coronal"][3] * 1.5  # zoomed out again
    assert after["axial"] == before["full"]["axial"]  # the other views keep theirs
    hierarchy.reset_cameras()  # Shift+R: every view fits the whole volume again
    assert hierarchy.anchor.camera_state()["coronal"] == hierarchy.full.camera_state()["coronal"]


def test_probe_line_follows_the_mouse_and_margin_clicks_do_nothing(main_window, qtbot, tiny_model_file):
    open_and_wait(main_window, qtbot, tiny_model_file)
    hierarchy, state = main_window.hierarchy, main_window.state
    pane = hierarchy.full
    qtbot.mouseMove(pane.plotter, view_point(pane, "axial", 0.3, 0.7))
    qtbot.waitUntil(lambda: "Mouse      full axial:" in hierarchy.probe_line.text(), timeout=5000)
    mouse_line, crosshair_line = hierarchy.probe_line.text().splitlines()
    assert "mm  voxel (" in mouse_line and mouse_line.endswith(" HU")
    assert (
        crosshair_line.startswith("Crosshair  full: (0.0, 0.0, 0.0) mm  voxel (") and "W1500 L-600 HU" in crosshair_line
    )
    # the probe line fits: its text is no wider than the label (nothing cut off) at this window size
    metrics = hierarchy.probe_line.fontMetrics()
    assert max(metrics.horizontalAdvance(line) for line in (mouse_line, crosshair_line)) < hierarchy.probe_line.width()

    before = state.crosshair.copy()
    qtbot.mouseClick(pane.plotter, Qt.MouseButton.LeftButton, pos=view_point(pane, "axial", 0.004, 0.996))
    qtbot.wait(200)
    assert np.array_equal(state.crosshair, before)  # the dark margin around the volume is not a place
    qtbot.mouseClick(pane.plotter, Qt.MouseButton.LeftButton, pos=view_point(pane, "axial", 0.3, 0.7))
    qtbot.waitUntil(lambda: not np.array_equal(state.crosshair, before), timeout=5000)


def test_double_click_shows_one_view_and_back(main_window, qtbot, tiny_model_file):
    from app.views.pane import VIEWS, view_index

    open_and_wait(main_window, qtbot, tiny_model_file)
    pane = main_window.hierarchy.full
    scale = pane.camera_state()["coronal"][3]
    qtbot.mouseDClick(pane.plotter, Qt.MouseButton.LeftButton, pos=view_point(pane, "coronal", 0.5, 0.5))
    assert pane.maximised == "coronal"
    drawn = [view for view in VIEWS if pane.plotter.renderers[view_index(view)].GetDraw()]
    assert drawn == ["coronal"] and pane.plotter.renderers[view_index("coronal")].GetViewport() == (0, 0, 1, 1)
    assert pane.camera_state()["coronal"][3] == scale  # its zoom is kept
    qtbot.mouseDClick(pane.plotter, Qt.MouseButton.LeftButton, pos=view_point(pane, "coronal", 0.5, 0.5))
    assert pane.maximised is None
    assert all(pane.plotter.renderers[view_index(view)].GetDraw() for view in VIEWS)


def text_boxes(renderer) -> list[tuple[str, list[float]]]:
    """Each visible label of a view with its box in the view's pixels (xmin, xmax, ymin, ymax)."""
    boxes = []
    for prop in renderer.GetViewProps():
        if isinstance(prop, vtkTextActor) and prop.GetVisibility() and prop.GetInput():
            box = [0.0] * 4
            prop.GetBoundingBox(renderer, box)  # relative to the actor's anchor point
            x, y = prop.GetPositionCoordinate().GetComputedViewportValue(renderer)
            boxes.append((prop.GetInput(), [box[0] + x, box[1] + x, box[2] + y, box[3] + y]))
    return boxes


def assert_overlays_apart(pane) -> None:
    from app.views.pane import VIEWS, view_index

    pane.render_now()  # text actors know their size once drawn
    for view in VIEWS:
        boxes = text_boxes(pane.plotter.renderers[view_index(view)])
        texts = [text for text, _box in boxes]
        assert "SYNTHETIC" in texts and view in texts
        if view != "3d":
            assert any(text.endswith(" mm") for text in texts)  # the scale bar's label
        for n, (text_a, a) in enumerate(boxes):
            for text_b, b in boxes[n + 1 :]:
                apart = a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2]
                assert apart, f"{pane.name} {view}: '{text_a}' {a} overlaps '{text_b}' {b}"


def test_overlays_do_not_overlap_in_the_window(main_window, qtbot, tiny_model_file):
    main_window.resize(1280, 800)
    open_and_wait(main_window, qtbot, tiny_model_file)
    for pane in main_window.hierarchy.panes.values():
        assert_overlays_apart(pane)


def test_overlays_do_not_overlap_in_a_narrow_pane(qtbot):
    """A docked panel's pane (the artifact check) has views of ~110 pixels."""
    from app.views.pane import VolumePane
    from engine.card import CT_WINDOW
    from engine.volume import Volume

    rng = np.random.default_rng(0)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    volume = Volume(rng.normal(0, 300, (24, 24, 24)).astype(np.float32), affine, CT_WINDOW, {"synthetic": True})
    pane = VolumePane("narrow")
    qtbot.addWidget(pane)
    pane.resize(240, 260)
    pane.show()
    qtbot.waitExposed(pane)
    try:
        pane.set_volume(volume)
        assert_overlays_apart(pane)
    finally:
        pane.close_view()


def test_each_change_renders_each_pane_once(main_window, qtbot, tiny_model_file, monkeypatch):
    import threading

    import app.views.pane as pane_module
    from app.render.window_level import WindowLevel

    meshed_on: list[str] = []
    extract = pane_module.isosurface

    def recording_isosurface(*args):
        meshed_on.append(threading.current_thread().name)
        return extract(*args)

    monkeypatch.setattr(pane_module, "isosurface", recording_isosurface)
    open_and_wait(main_window, qtbot, tiny_model_file)
    hierarchy, state = main_window.hierarchy, main_window.state
    qtbot.wait(300)
    counts = dict.fromkeys(hierarchy.panes, 0)
    for part, pane in hierarchy.panes.items():
        pane.plotter.ren_win.AddObserver(
            "StartEvent", lambda *_args, part=part: counts.__setitem__(part, counts[part] + 1)
        )
    for change in (
        lambda: state.set_window(WindowLevel(400, 40)),
        lambda: state.set_crosshair(state.crosshair + 3.0),
        lambda: hierarchy.full.slice_sliders["axial"][0].setValue(5),  # a slice slider moved
        lambda: state.set_render_mode("mip"),
        lambda: wait_for_parts(main_window, qtbot, lambda: hierarchy.slab_slider.setValue(2), parts=("slab",)),
        lambda: state.set_render_mode("isosurface"),  # the surface comes from a worker; then one render
    ):
        counts.update(dict.fromkeys(counts, 0))
        change()
        qtbot.waitUntil(lambda: all(counts.values()), timeout=10_000)
        qtbot.wait(300)  # a second render would come within this
        assert counts == dict.fromkeys(hierarchy.panes, 1)
    assert len(meshed_on) == 3 and threading.main_thread().name not in meshed_on  # not on the UI thread


def test_slice_sliders_move_the_slices_and_follow_the_crosshair(main_window, qtbot, tiny_model_file):
    open_and_wait(main_window, qtbot, tiny_model_file)
    hierarchy, state = main_window.hierarchy, main_window.state
    full, anchor = hierarchy.full, hierarchy.anchor
    slider, label = full.slice_sliders["axial"]
    last = full.grid.shape[2] - 1
    assert slider.isEnabled() and slider.maximum() == last
    assert slider.focusPolicy() == Qt.FocusPolicy.NoFocus  # a click on it leaves the keys with the views
    axial_slice = full._slices["axial"][0]  # the plane of voxels the axial view draws
    before, before_z = frame(full), axial_slice.origin[2]

    qtbot.mouseClick(slider, Qt.MouseButton.LeftButton, pos=QPoint(2, slider.height() // 2))  # far left
    qtbot.waitUntil(lambda: slider.value() < last // 2, timeout=5000)
    assert int(full.grid.index(state.crosshair)[2]) == slider.value()
    slider.setValue(3)  # (a drag: the slider sends its values one by one)
    expected_z = full.grid.origin[2] + 3 * full.grid.spacing[2]
    assert np.isclose(state.crosshair[2], expected_z)  # the state's slice, so every pane follows
    assert label.text() == f"k 3/{last}"
    assert np.isclose(axial_slice.origin[2], expected_z) and not np.isclose(before_z, expected_z)
    assert np.abs(frame(full).astype(int) - before.astype(int)).mean() > 0.5  # the view shows another slice
    anchor_slider, anchor_label = anchor.slice_sliders["axial"]  # the anchor's coarser grid, same place
    assert anchor_slider.value() == int(anchor.grid.index(state.crosshair)[2])
    assert anchor_label.text().startswith(f"k {anchor_slider.value()}/")

    coronal, _ = full.slice_sliders["coronal"]
    state.set_crosshair(state.crosshair + (0.0, 2 * full.grid.spacing[1], 0.0))  # moved elsewhere (a click)
    assert coronal.value() == int(full.grid.index(state.crosshair)[1]) and slider.value() == 3
    hierarchy.step_slice(+1)  # Up / the wheel in the axial view
    assert slider.value() == 4 and label.text() == f"k 4/{last}"
