"""The app under Xvfb: the hierarchy view renders, follows seed, slab, crosshair and window, never crashes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from app_support import WAIT_MS, frame, open_and_wait, wait_for_parts
from PIL import Image
from PySide6.QtCore import QPoint, Qt

from engine.card import CT_WINDOW
from engine.volume import IntensityMapping, Volume

ROOT = Path(__file__).resolve().parents[1]


def differ(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def test_opens_model_and_renders_all_three_parts(main_window, qtbot, tiny_model_file):
    open_and_wait(main_window, qtbot, tiny_model_file)
    state, hierarchy = main_window.state, main_window.hierarchy
    assert set(state.volumes) == {"anchor", "slab", "full"}
    assert state.volumes["anchor"].array.shape == (8, 8, 8) and state.volumes["full"].array.shape == (32, 32, 32)
    assert state.volumes["slab"].array.shape == (32, 32, 4)
    for pane in hierarchy.panes.values():
        assert frame(pane).std() > 1
        assert "mm" in pane.readout.text() and "HU" in pane.readout.text()
    assert "tiny-ct" in main_window.windowTitle() and not main_window.dialogs


def test_next_seed_changes_the_full_volume_frame(main_window, qtbot, tiny_model_file):
    open_and_wait(main_window, qtbot, tiny_model_file)
    before = frame(main_window.hierarchy.full)
    latent_panel = main_window.panels["latent"]
    wait_for_parts(main_window, qtbot, lambda: qtbot.mouseClick(latent_panel.next_button, Qt.MouseButton.LeftButton))
    after = frame(main_window.hierarchy.full)
    assert main_window.state.latent.seed == 1 and main_window.state.latent.label == "seed 1"
    assert before.std() > 1 and after.std() > 1
    assert differ(before, after) > 1.0


def test_newest_seed_request_wins(main_window, qtbot, tiny_model_file):
    open_and_wait(main_window, qtbot, tiny_model_file)
    shown: list[str] = []
    main_window.generation.volumes_shown.connect(shown.append)
    seed_box = main_window.panels["latent"].seed_box
    with qtbot.waitSignal(
        main_window.generation.volumes_shown, timeout=WAIT_MS, check_params_cb=lambda s: s == "seed 7"
    ):
        for seed in (5, 6, 7):
            seed_box.setValue(seed)
    qtbot.wait(300)  # a stale result arriving late would show up here
    assert shown == ["seed 7"]
    assert main_window.state.volumes["full"].provenance["seed"] == 7


def test_slab_slider_moves_the_box_and_the_sub_volume(main_window, qtbot, tiny_model_file):
    open_and_wait(main_window, qtbot, tiny_model_file)
    hierarchy, state = main_window.hierarchy, main_window.state
    box_before = hierarchy.full.box_bounds("slab")
    slab_before = state.volumes["slab"]
    anchor_frame = frame(hierarchy.anchor)
    wait_for_parts(main_window, qtbot, lambda: hierarchy.slab_slider.setValue(1), parts=("slab",))
    assert state.slab_start == 4
    box_after = hierarchy.full.box_bounds("slab")
    spacing = state.volumes["full"].spacing[2]
    assert box_after[4] - box_before[4] == pytest.approx((4 - 16) * spacing)  # the middle slab was at k = 16
    assert hierarchy.anchor.box_bounds("slab") == box_after  # drawn on the anchor too
    assert differ(anchor_frame, frame(hierarchy.anchor)) > 0.01  # the box visibly moved on the anchor
    assert state.volumes["slab"] is not slab_before
    assert "slab(start=4)" in state.volumes["slab"].provenance["operation"]


def test_click_in_a_slice_moves_the_crosshair_everywhere(main_window, qtbot, tiny_model_file):
    open_and_wait(main_window, qtbot, tiny_model_file)
    pane = main_window.hierarchy.full
    renderer = pane.plotter.renderers[0]  # axial view
    x0, y0, x1, y1 = renderer.GetViewport()
    width, height = pane.plotter.ren_win.GetSize()
    # a point in the upper left quarter of the axial view (Qt's y axis points down)
    qt_x = int((x0 + (x1 - x0) * 0.3) * width)
    qt_y = int(height - (y0 + (y1 - y0) * 0.7) * height)
    ratio = pane.plotter.devicePixelRatioF()
    position = QPoint(int(qt_x / ratio), int(qt_y / ratio))
    before = main_window.state.crosshair.copy()
    qtbot.mouseClick(pane.plotter, Qt.MouseButton.LeftButton, pos=position)
    qtbot.waitUntil(lambda: not np.array_equal(main_window.state.crosshair, before), timeout=5000)
    after = main_window.state.crosshair
    assert after[2] == before[2]  # an axial click keeps the axial slice
    assert after[0] > 0 and after[1] > 0  # screen left is patient right (+x), screen top is anterior (+y)
    for other in main_window.hierarchy.panes.values():
        assert np.allclose(other.crosshair, after)
    assert f"Crosshair  full: ({after[0]:.1f}, {after[1]:.1f}" in main_window.hierarchy.probe_line.text()


def test_window_beyond_training_range_warns(main_window, qtbot, tiny_model_file):
    from app.render.window_level import WindowLevel

    open_and_wait(main_window, qtbot, tiny_model_file)
    warning = main_window.hierarchy.warning
    assert warning.text() == ""  # the default lung window stays inside [-1024, 600] above air
    main_window.state.set_window(WindowLevel(1800, 400))  # the bone window reaches 1300 HU
    assert warning.isVisible() and "600" in warning.text()
    pane = main_window.hierarchy.full
    assert pane.window == WindowLevel(1800, 400) and "W1800 L400 HU" in main_window.hierarchy.probe_line.text()


def test_window_drag_changes_the_window(main_window, qtbot, tiny_model_file):
    open_and_wait(main_window, qtbot, tiny_model_file)
    before = main_window.state.window
    main_window.hierarchy.full.window_dragged.emit(50.0, -20.0)
    after = main_window.state.window
    assert after.width > before.width and after.level > before.level
    assert main_window.panels["view"].width_box.value() == pytest.approx(after.width)


@pytest.mark.parametrize("mode", ["isosurface", "mip"])
def test_3d_modes_render(main_window, qtbot, tiny_model_file, mode):
    open_and_wait(main_window, qtbot, tiny_model_file)
    pane = main_window.hierarchy.full
    before = frame(pane)
    main_window.state.set_render_mode(mode)
    qtbot.waitUntil(lambda: not pane.pending_3d, timeout=WAIT_MS)  # isosurfaces come from a worker thread
    after = frame(pane)
    assert after.std() > 1 and differ(before, after) > 0.01


def test_missing_model_file_shows_one_dialog(main_window, qtbot, tmp_path):
    main_window.open_model(tmp_path / "no-such-model.safetensors")
    qtbot.waitUntil(lambda: bool(main_window.dialogs), timeout=WAIT_MS)
    assert len(main_window.dialogs) == 1 and "no-such-model.safetensors" in main_window.dialogs[0]
    assert "\n" not in main_window.dialogs[0]
    assert main_window.state.model is None and main_window.isVisible()
    assert "No model" in main_window.hierarchy.full.message.text()


def test_cancel_stops_a_running_job(main_window, qtbot):
    import threading

    from app.workers import Cancelled

    started, results, outcomes = threading.Event(), [], []
    main_window.jobs.job_finished.connect(lambda _ticket, outcome: outcomes.append(outcome))

    def work(progress):
        started.set()
        for step in range(500):
            progress(step, 500, "counting")
            threading.Event().wait(0.01)
        return "finished"

    main_window.jobs.submit("test", "Counting", work, results.append)
    qtbot.waitUntil(lambda: main_window.cancel_button.isVisible(), timeout=5000)
    qtbot.mouseClick(main_window.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(outcomes), timeout=5000)
    assert outcomes == ["cancelled"] and results == [] and Cancelled
    assert not main_window.cancel_button.isVisible()


def test_a_superseded_job_is_not_reported_as_cancelled(main_window, qtbot):
    import threading

    outcomes: list[str] = []
    main_window.jobs.job_finished.connect(lambda _ticket, outcome: outcomes.append(outcome))
    release = threading.Event()

    def first(progress):
        progress(0, 1, "first")
        release.wait(5)
        progress(1, 1, "first")  # stops here: a newer job of the kind came (as every frame of a Play)
        return 1

    main_window.jobs.submit("test", "First", first)
    qtbot.waitUntil(lambda: main_window.cancel_button.isVisible(), timeout=5000)
    main_window.jobs.submit("test", "Second", lambda progress: 2)
    release.set()
    qtbot.waitUntil(lambda: len(outcomes) == 2, timeout=5000)
    assert outcomes == ["superseded", "done"]
    assert "cancelled" not in main_window.statusBar().currentMessage()


def test_default_window_presets():
    from app.render.window_level import WindowLevel, beyond_training_range, default_window

    ct = Volume(np.zeros((4, 4, 4)), np.eye(4), CT_WINDOW)
    assert default_window(ct, "ct") == WindowLevel(1500, -600)  # lung first, from resources/presets/viewing.json
    mri = Volume(np.linspace(2.0, 10.0, 64).reshape(4, 4, 4), np.eye(4), IntensityMapping(0.0, 1.0, ""))
    window = default_window(mri, "mri")
    assert 2.0 <= window.low < 2.2 and 9.8 < window.high <= 10.0  # 1st..99th percentile
    assert beyond_training_range(WindowLevel(1500, -600), CT_WINDOW) == ""
    assert "above 600 HU" in beyond_training_range(WindowLevel(1800, 400), CT_WINDOW)


def run_main(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", GAN_EXPLORER_HOME=str(home))  # DISPLAY from pytest-xvfb
    command = [sys.executable, str(ROOT / "main.py"), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def test_screenshot_from_command_line(tiny_model_file, tmp_path):
    out = tmp_path / "out.png"
    result = run_main("--model", str(tiny_model_file), "--seed", "3", "--screenshot", str(out), home=tmp_path)
    assert result.returncode == 0, result.stderr
    image = np.asarray(Image.open(out).convert("RGB"), dtype=float)
    height, width, _ = image.shape
    middle = image[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3]
    assert image.std() > 1 and middle.std() > 1


def test_screenshot_with_bad_model_exits_with_cause(tmp_path):
    out = tmp_path / "out.png"
    result = run_main("--model", str(tmp_path / "missing.safetensors"), "--screenshot", str(out), home=tmp_path)
    assert result.returncode != 0 and not out.exists()
    assert "missing.safetensors" in result.stderr and "Traceback" not in result.stderr


def test_open_a_nifti_export_it_and_reimport_the_same_array(main_window, qtbot, tmp_path):
    from app.volume_files import export_volume, open_volume
    from engine.nifti import load_nifti, save_nifti

    rng = np.random.default_rng(0)
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    affine[:3, 3] = (-20.0, -20.0, -30.0)
    scan = Volume(rng.normal(0, 300, (24, 24, 16)).astype(np.float32), affine, CT_WINDOW, {"synthetic": False})
    source = save_nifti(scan, tmp_path / "scan.nii.gz", "a test scan")
    wait_for_parts(main_window, qtbot, lambda: open_volume(main_window.context, source))
    hierarchy = main_window.hierarchy
    assert frame(hierarchy.full).std() > 1 and hierarchy.full.volume.array.shape == (24, 24, 16)
    assert "not part of a volume opened from a file" in hierarchy.anchor.message.text()
    assert hierarchy.full.showing_volume and not hierarchy.anchor.showing_volume
    out = tmp_path / "exported.nii.gz"
    export_volume(main_window.context, "full", out)
    qtbot.waitUntil(lambda: out.exists() and not main_window.jobs.busy(), timeout=WAIT_MS)
    again = load_nifti(out)
    assert np.array_equal(again.array, scan.array) and np.allclose(again.affine, affine)
    assert not main_window.dialogs


def test_export_without_a_volume_explains_why(main_window, tmp_path):
    from app.volume_files import export_volume

    export_volume(main_window.context, "slab", tmp_path / "x.nii.gz")
    assert main_window.dialogs == ["there is no slab volume to export yet"]


def test_split_shuffle_model_shows_full_volumes_and_says_it_has_no_hierarchy(main_window, qtbot, tmp_path):
    from app_support import make_tiny_split_shuffle_model

    path = make_tiny_split_shuffle_model(tmp_path / "tiny-ss.safetensors")
    open_and_wait(main_window, qtbot, path, seed=1)
    hierarchy, state = main_window.hierarchy, main_window.state
    assert set(state.volumes) == {"full"} and state.volumes["full"].array.shape == (32, 32, 32)
    assert frame(hierarchy.full).std() > 1 and not main_window.dialogs
    for pane in (hierarchy.anchor, hierarchy.slab):
        assert "has no" in pane.message.text() and "split-shuffle" in pane.message.text()
    assert not hierarchy.slab_slider.isEnabled() and "split-shuffle generator" in hierarchy.full.header.text()
    before = frame(hierarchy.full)
    interpolation = main_window.panels["interpolation"]
    interpolation.add_seed(1)
    interpolation.add_seed(4)
    wait_for_parts(main_window, qtbot, lambda: interpolation.player.slider.setValue(1000))
    assert state.latent.label.startswith("slerp t=1.000") and differ(before, frame(hierarchy.full)) > 1.0


def test_a_cancelled_seed_leaves_the_seed_box_on_the_seed_on_screen(main_window, qtbot, tiny_model_file):
    import threading

    from app_support import WAIT_MS, open_and_wait

    open_and_wait(main_window, qtbot, tiny_model_file, seed=0)
    generation, panel = main_window.generation, main_window.panels["latent"]
    release, outcomes = threading.Event(), []
    volumes = generation.explorer.volumes

    def slow_volumes(*args, **kwargs):  # the next seed's generation waits until the user has cancelled
        release.wait(10)
        return volumes(*args, **kwargs)

    generation.explorer.volumes = slow_volumes
    main_window.jobs.job_finished.connect(lambda _ticket, outcome: outcomes.append(outcome))
    qtbot.mouseClick(panel.next_button, Qt.MouseButton.LeftButton)
    assert panel.seed_box.value() == 1
    qtbot.waitUntil(lambda: main_window.cancel_button.isVisible(), timeout=WAIT_MS)
    qtbot.mouseClick(main_window.cancel_button, Qt.MouseButton.LeftButton)
    release.set()
    qtbot.waitUntil(lambda: "cancelled" in outcomes, timeout=WAIT_MS)
    qtbot.wait(100)
    assert main_window.state.latent.seed == 0 and panel.seed_box.value() == 0  # what the views show
    assert main_window.state.volumes["full"].provenance["seed"] == 0
    assert not main_window.jobs.busy()  # going back generated nothing
