"""The gallery tab under Xvfb: pages of seeds, clicks that open a seed, selections sent elsewhere."""

from __future__ import annotations

import numpy as np
import torch
from app_support import WAIT_MS, make_tiny_split_shuffle_model, open_and_wait
from PIL import Image
from PySide6.QtCore import Qt

from app.state import PREVIEW
from engine.checkpoints import load_model
from engine.gallery import ThumbnailMaker, ThumbnailSpec
from engine.latent import seed_to_z
from engine.reading import read_volume


def gallery(window, qtbot, model_file, first_seed=0, per_page=9):
    for dock in window.docks.values():
        dock.hide()
    window.resize(1000, 800)
    open_and_wait(window, qtbot, model_file)
    view = window.gallery
    view.size_box.setCurrentIndex(view.size_box.findData(per_page))
    with qtbot.waitSignal(view.page_filled, timeout=WAIT_MS):
        window.tabs.setCurrentWidget(view)
        view.show_page(first_seed)
    return view


def item_of(view, seed):
    return next(view.list.item(r) for r in range(view.list.count()) if view.list.item(r).data(Qt.UserRole) == seed)


def click(qtbot, view, seed, modifier=Qt.KeyboardModifier.NoModifier, double=False):
    rect = view.list.visualItemRect(item_of(view, seed))
    qtbot.mouseClick(view.list.viewport(), Qt.MouseButton.LeftButton, modifier, rect.center())
    if double:  # (a double-click event alone, without the click before it, is not one for Qt's views)
        qtbot.mouseDClick(view.list.viewport(), Qt.MouseButton.LeftButton, modifier, rect.center())


def finish(window, qtbot, submit) -> None:
    """Run ``submit`` (which returns a job ticket) and wait until that job, not another one, is done."""
    ended: dict[int, str] = {}
    window.jobs.job_finished.connect(lambda ticket, outcome: ended.__setitem__(ticket, outcome))
    ticket = submit()
    assert ticket is not None
    qtbot.waitUntil(lambda: ticket in ended, timeout=WAIT_MS)
    assert ended[ticket] == "done"


def test_a_page_shows_the_seeds_it_says_at_full_resolution(main_window, qtbot, tiny_model_file):
    view = gallery(main_window, qtbot, tiny_model_file, first_seed=5)
    assert [view.list.item(r).text() for r in range(view.list.count())] == [f"seed {s}" for s in range(5, 14)]
    assert sorted(view.thumbnails) == list(range(5, 14))
    assert all(t.level == "full" for t in view.thumbnails.values())
    model = load_model(tiny_model_file, device="cpu", parts=("G",))
    preview = main_window.generation.precision_for(PREVIEW)  # thumbnails are previews: bf16 where the CPU has it
    spec = ThumbnailSpec(view.plane_box.currentText(), 0.5, "full", precision=preview)
    expected = next(ThumbnailMaker(model).make([9], spec))
    np.testing.assert_allclose(view.thumbnails[9].image, expected.image, atol=0.05)  # that seed's own slice
    assert not item_of(view, 9).icon().isNull()

    with qtbot.waitSignal(view.page_filled, timeout=WAIT_MS):
        view.list.setFocus()
        qtbot.keyClick(view.list, Qt.Key.Key_PageDown)
    assert view.seeds == list(range(14, 23)) and view.list.item(0).text() == "seed 14"


def test_a_click_opens_that_seed_and_a_double_click_switches_to_the_hierarchy(main_window, qtbot, tiny_model_file):
    view = gallery(main_window, qtbot, tiny_model_file)
    click(qtbot, view, 7)
    latent = main_window.state.latent
    assert latent.seed == 7 and torch.equal(latent.z, seed_to_z(7, 16))
    assert main_window.panels["latent"].seed_box.value() == 7  # N/P go on from the clicked seed
    shown = []
    main_window.generation.volumes_shown.connect(shown.append)
    click(qtbot, view, 4, double=True)
    assert main_window.tabs.currentWidget() is main_window.hierarchy
    qtbot.waitUntil(lambda: "seed 4" in shown, timeout=WAIT_MS)
    assert main_window.state.volumes["full"].provenance["seed"] == 4
    main_window.tabs.setCurrentWidget(view)
    view.list.setCurrentItem(item_of(view, 8))
    qtbot.keyClick(view.list, Qt.Key.Key_Return)
    assert main_window.tabs.currentWidget() is main_window.hierarchy and main_window.state.latent.seed == 8


def test_revisiting_a_page_shows_identical_thumbnails_at_once(main_window, qtbot, tiny_model_file):
    view = gallery(main_window, qtbot, tiny_model_file)
    first = {seed: t.image.copy() for seed, t in view.thumbnails.items()}
    with qtbot.waitSignal(view.page_filled, timeout=WAIT_MS):
        view.step_page(+1)
    view.step_page(-1)  # back: everything is in the memory cache, delivered before the call returns
    assert sorted(view.thumbnails) == list(range(9)) and all(t.level == "full" for t in view.thumbnails.values())
    assert all(np.array_equal(view.thumbnails[s].image, first[s]) for s in first)


def test_selected_seeds_go_to_keyframes_bookmarks_and_a_contact_sheet(main_window, qtbot, tiny_model_file, tmp_path):
    view = gallery(main_window, qtbot, tiny_model_file)
    click(qtbot, view, 2)
    click(qtbot, view, 4, Qt.KeyboardModifier.ShiftModifier)
    click(qtbot, view, 7, Qt.KeyboardModifier.ControlModifier)
    assert view.selected_seeds() == [2, 3, 4, 7]
    view.add_to_interpolation()
    assert [k.label for k in main_window.state.path.keyframes] == ["seed 2", "seed 3", "seed 4", "seed 7"]
    assert torch.equal(main_window.panels["interpolation"].keyframes[3].z, seed_to_z(7, 16))
    view.bookmark_selected()
    names = [main_window.panels["latent"].bookmark_list.item(r).text() for r in range(4)]
    assert names == ["seed 2", "seed 3", "seed 4", "seed 7"]

    finish(main_window, qtbot, lambda: view.save_contact_sheet(tmp_path / "page.png"))
    sheet = Image.open(tmp_path / "page.png")
    assert sheet.width == 3 * (192 + 4) + 4 and sheet.height == 28 + 3 * (192 + 4) + 4  # 3 x 3 cells

    finish(main_window, qtbot, lambda: view.export(tmp_path))
    assert sorted(p.name for p in tmp_path.glob("*.nii.gz")) == [f"seed000{s}_full.nii.gz" for s in (2, 3, 4, 7)]
    assert view.export(tmp_path / "dicom", dicom=True) is None  # no such folder yet
    assert main_window.dialogs.pop().endswith("dicom: no such folder")
    (tmp_path / "dicom").mkdir()
    finish(main_window, qtbot, lambda: view.export(tmp_path / "dicom", dicom=True))
    series = sorted(p.name for p in (tmp_path / "dicom").iterdir())
    assert series == [f"seed000{s}_full" for s in (2, 3, 4, 7)]
    exported = read_volume(tmp_path / "dicom" / "seed0007_full")
    nifti = read_volume(tmp_path / "seed0007_full.nii.gz")
    assert np.abs(exported.array - nifti.array).max() <= 0.5  # HU, stored as int16


def test_split_shuffle_models_fill_pages_with_full_volumes(main_window, qtbot, tmp_path):
    path = make_tiny_split_shuffle_model(tmp_path / "tiny-ss.safetensors")
    view = gallery(main_window, qtbot, path, per_page=9)
    assert sorted(view.thumbnails) == list(range(9)) and {t.level for t in view.thumbnails.values()} == {"full"}
