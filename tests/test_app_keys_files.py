"""Keys go to the field being edited and act on the views otherwise; volumes from files get their own
view settings; the isosurface level speaks physical units."""

from __future__ import annotations

import numpy as np
import pytest
from app_support import WAIT_MS, frame, make_tiny_model, open_and_wait, wait_for_parts
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QShortcut
from PySide6.QtWidgets import QAbstractButton, QLineEdit, QTableWidget

from engine.card import CT_WINDOW
from engine.volume import Volume


def focus(window, qtbot, widget) -> None:
    """Give ``widget`` the keyboard focus in the active main window (shortcuts need an active window)."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=WAIT_MS)
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus, timeout=WAIT_MS)


def test_up_in_a_spin_box_or_list_stays_there_and_moves_the_slice_elsewhere(main_window, qtbot, tiny_model_file):
    open_and_wait(main_window, qtbot, tiny_model_file, seed=3)
    state, latent_panel = main_window.state, main_window.panels["latent"]
    main_window.docks["latent"].raise_()
    start = state.crosshair.copy()

    focus(main_window, qtbot, latent_panel.seed_box)
    wait_for_parts(main_window, qtbot, lambda: qtbot.keyClick(latent_panel.seed_box, Qt.Key.Key_Up))
    assert latent_panel.seed_box.value() == 4 and state.latent.seed == 4
    assert np.array_equal(state.crosshair, start)  # the slice stayed

    interpolation = main_window.panels["interpolation"]
    main_window.docks["interpolation"].raise_()
    interpolation.add_seed(1)
    interpolation.add_seed(2)
    interpolation.keys.keyframe_list.setCurrentRow(0)
    focus(main_window, qtbot, interpolation.keys.keyframe_list)
    qtbot.keyClick(interpolation.keys.keyframe_list, Qt.Key.Key_Down)
    assert interpolation.keys.keyframe_list.currentRow() == 1 and np.array_equal(state.crosshair, start)

    view = main_window.hierarchy.full.plotter  # no field has the focus: Up is the next slice
    focus(main_window, qtbot, view)
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert state.crosshair[2] > start[2] and latent_panel.seed_box.value() == 4


def test_letters_typed_in_a_name_edit_the_name(main_window, qtbot, tiny_model_file):
    open_and_wait(main_window, qtbot, tiny_model_file, seed=3)
    latent_panel = main_window.panels["latent"]
    main_window.docks["latent"].raise_()
    latent_panel.add_bookmark("old")
    focus(main_window, qtbot, latent_panel.bookmark_list)
    latent_panel.bookmark_list.editItem(latent_panel.bookmark_list.item(0))
    editor = latent_panel.bookmark_list.findChild(QLineEdit)
    qtbot.waitUntil(editor.hasFocus, timeout=WAIT_MS)
    qtbot.keyClicks(editor, "PRN1M")  # previous seed, reset, next seed, a preset, the 3D mode: all text here
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: latent_panel.bookmark_list.item(0).text() == "PRN1M", timeout=WAIT_MS)
    assert main_window.state.latent.seed == 3 and main_window.state.render_mode == "volume"


def test_number_keys_choose_presets_and_m_cycles_the_3d_mode(main_window, qtbot, tiny_model_file):
    from app.render.window_level import WindowLevel

    open_and_wait(main_window, qtbot, tiny_model_file)
    view = main_window.hierarchy.full.plotter
    focus(main_window, qtbot, view)
    qtbot.keyClick(view, Qt.Key.Key_3)  # CT: lung, mediastinum, bone, ...
    assert main_window.state.window == WindowLevel(1800, 400)
    assert main_window.panels["view"].preset_box.currentIndex() == 2
    modes = []
    for _ in range(3):
        qtbot.keyClick(view, Qt.Key.Key_M)
        modes.append(main_window.state.render_mode)
    assert modes == ["isosurface", "mip", "volume"]
    assert main_window.panels["view"].mode_box.currentData() == "volume"


def test_help_keys_lists_every_shortcut_of_the_window(main_window):
    dialog = main_window.show_keys()
    table = dialog.findChild(QTableWidget)
    listed = {table.item(row, 0).text() for row in range(table.rowCount())}
    keys = set()
    for action in main_window.findChildren(QAction):
        keys.update(sequence.toString() for sequence in action.shortcuts())
    for shortcut in main_window.findChildren(QShortcut):
        keys.add(shortcut.key().toString())
    for button in main_window.findChildren(QAbstractButton):
        keys.add(button.shortcut().toString())
    keys.discard("")
    assert {"Up", "Down", "R", "Shift+R", "N", "P", "1", "5", "M", "Ctrl+D", "Esc"} <= keys
    assert keys - listed == set()
    dialog.close()


def ct_scan(path, shape=(24, 24, 16)):
    from engine.nifti import save_nifti

    rng = np.random.default_rng(0)
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    affine[:3, 3] = (-20.0, -20.0, -30.0)
    array = rng.normal(0, 300, shape).astype(np.float32)
    return save_nifti(Volume(array, affine, CT_WINDOW, {"synthetic": False}), path, "a test scan")


def test_a_ct_file_under_a_brain_model_gets_a_ct_window_its_name_and_no_slab_box(main_window, qtbot, tmp_path):
    from app.render.window_level import WindowLevel
    from app.volume_files import open_volume

    brain = make_tiny_model(tmp_path / "tiny-mri.safetensors", modality="mri")
    open_and_wait(main_window, qtbot, brain)
    hierarchy, state, view_panel = main_window.hierarchy, main_window.state, main_window.panels["view"]
    assert hierarchy.full.box_bounds("slab") is not None and "Auto" in view_panel.preset_box.itemText(0)

    source = ct_scan(tmp_path / "chest.nii.gz")
    wait_for_parts(main_window, qtbot, lambda: open_volume(main_window.context, source))
    assert state.window == WindowLevel(1500, -600)  # the CT default (lung), not the brain's percentiles
    assert "chest.nii.gz" in hierarchy.full.header.text() and "G^H" not in hierarchy.full.header.text()
    assert hierarchy.full.box_bounds("slab") is None and "slab" not in hierarchy.full.boxes
    assert view_panel.preset_box.itemText(0).startswith("Lung") and view_panel.iso_box.suffix() == " HU"
    assert frame(hierarchy.full).std() > 1 and not main_window.dialogs

    # the model's next volume brings back its own title, slab box and window
    wait_for_parts(main_window, qtbot, lambda: main_window.panels["latent"].step(+1))
    assert "G^H" in hierarchy.full.header.text() and hierarchy.full.box_bounds("slab") is not None
    assert state.window != WindowLevel(1500, -600) and "Auto" in view_panel.preset_box.itemText(0)


def test_a_file_without_units_is_windowed_on_its_foreground(main_window, qtbot, tmp_path):
    from app.volume_files import file_window
    from engine.volume import IntensityMapping

    array = np.zeros((20, 20, 20), dtype=np.float32)
    array[5:15, 5:15, 5:15] = np.linspace(100.0, 200.0, 1000).reshape(10, 10, 10)  # a head in air
    window = file_window(Volume(array, np.eye(4), IntensityMapping(0.0, 1.0, "")))
    assert 100 <= window.low < 103 and 197 < window.high <= 200  # 1-99 % of the head, not of the air


def test_the_isosurface_level_has_a_unit_and_zero_is_a_level(main_window, qtbot, tiny_model_file):
    from app.render.scene3d import isosurface_value

    open_and_wait(main_window, qtbot, tiny_model_file)
    state, panel = main_window.state, main_window.panels["view"]
    state.set_render_mode("isosurface")
    assert panel.iso_default.isChecked() and not panel.iso_box.isEnabled()
    level = isosurface_value(state.volumes["full"], "ct")  # the preset's level for bone
    assert panel.iso_box.suffix() == " HU" and panel.iso_box.value() == pytest.approx(level, abs=0.5)
    assert panel.iso_box.text() == f"{level:.0f} HU"
    panel.iso_default.setChecked(False)
    panel.iso_box.setValue(0)
    assert state.iso_value == 0.0 and main_window.hierarchy.full.iso_value == 0.0
    panel.iso_default.setChecked(True)
    assert state.iso_value is None and main_window.hierarchy.full.iso_value is None


def test_ct_body_and_bone_renderings_hide_air_and_table_and_show_bone():
    from app.render.scene3d import volume_presets

    ct = Volume(np.zeros((4, 4, 4), dtype=np.float32), np.eye(4), CT_WINDOW)
    presets = {p["name"]: p for p in volume_presets(ct, "ct")}

    def opacity(name: str, hu: float) -> float:
        preset = presets[name]
        low, high = preset["range"]
        return float(np.interp(hu, np.linspace(low, high, len(preset["opacity"])), preset["opacity"]))

    for name in ("Body", "Bone"):
        assert opacity(name, -1000) == 0 and opacity(name, 250) == 0  # air and the scanner table
        assert opacity(name, 550) > 0.5  # bone
    assert 0 < opacity("Body", 50) < 0.1  # soft tissue: a veil over the skeleton
    assert opacity("Lung", -1000) == 0 and opacity("Lung", -820) > 0 and opacity("Lung", 40) == 0


def test_dock_tabs_show_whole_names_and_an_empty_bookmark_list_stays_small(main_window, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QTabBar

    bars = [bar for bar in main_window.findChildren(QTabBar) if bar.count() > 1 and bar.isVisible()]
    bars = [bar for bar in bars if "Model" in [bar.tabText(i) for i in range(bar.count())]]  # the dock column
    assert bars
    for bar in bars:
        names = [bar.tabText(i) for i in range(bar.count())]
        assert "Encode" in names
        for i in range(bar.count()):  # every name whole in its tab (tabs that do not fit scroll, never elide)
            assert bar.tabRect(i).width() >= bar.fontMetrics().horizontalAdvance(bar.tabText(i)), names[i]
        assert bar.elideMode() == Qt.TextElideMode.ElideNone and bar.usesScrollButtons()
    main_window.docks["latent"].raise_()
    panel = main_window.panels["latent"]
    qtbot.waitUntil(panel.bookmark_list.isVisible)
    assert panel.bookmark_list.height() < 0.4 * panel.parentWidget().height()
