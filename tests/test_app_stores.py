"""Bookmarks and direction names in the window under Xvfb: one save per selection, failed saves that change
nothing, damaged files at start, a volume picked as a latent."""

from __future__ import annotations

import os

import numpy as np
import pytest
from app_support import WAIT_MS, open_and_wait

import app.bookmarks
from app.bookmarks import BookmarkStore
from app.state import Latent
from engine.latent import seed_to_z


def selection(seeds) -> list[Latent]:
    return [Latent(seed_to_z(seed, 16), f"seed {seed}", seed) for seed in seeds]


def test_bookmarking_64_gallery_seeds_writes_the_file_once(main_window, qtbot, tiny_model_file, monkeypatch):
    open_and_wait(main_window, qtbot, tiny_model_file)
    panel = main_window.panels["latent"]
    written = []
    real_write = app.bookmarks.atomic_write

    def counted(path, *args):
        written.append(path)
        return real_write(path, *args)

    monkeypatch.setattr(app.bookmarks, "atomic_write", counted)
    main_window.state.request_bookmarks(selection(range(64)))  # what Gallery ▸ Bookmark asks for
    assert len(written) == 1 and panel.bookmark_list.count() == 64
    assert [b.seed for b in BookmarkStore(panel.store.path).load()] == list(range(64))
    assert main_window.statusBar().currentMessage() == "Bookmarked 64 latents: seed 0 … seed 63"
    assert not main_window.dialogs


def test_a_failed_save_is_one_line_and_the_list_stays_as_saved(main_window, qtbot, tiny_model_file, monkeypatch):
    open_and_wait(main_window, qtbot, tiny_model_file)
    panel = main_window.panels["latent"]
    panel.add_bookmark("kept")
    main_window.statusBar().clearMessage()

    def full(path, *args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(app.bookmarks, "atomic_write", full)
    main_window.state.request_bookmarks(selection((3, 4, 5)))
    assert [panel.bookmark_list.item(r).text() for r in range(panel.bookmark_list.count())] == ["kept"]
    assert len(main_window.dialogs) == 1 and "\n" not in main_window.dialogs[0]
    assert "bookmarks.json" in main_window.dialogs[0] and "No space left on device" in main_window.dialogs[0]
    assert "Bookmarked" not in main_window.statusBar().currentMessage()

    panel.bookmark_list.setCurrentRow(0)
    panel.delete_bookmark()
    panel.bookmark_list.item(0).setText("renamed")  # what the list's editor does
    assert [panel.bookmark_list.item(r).text() for r in range(panel.bookmark_list.count())] == ["kept"]
    assert [b.name for b in panel.store.bookmarks] == ["kept"] and len(main_window.dialogs) == 3
    assert [b.name for b in BookmarkStore(panel.store.path).load()] == ["kept"]


def start_window(qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from app.main_window import MainWindow

    dialogs: list[str] = []
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text, *args: dialogs.append(text))
    window = MainWindow()
    window.dialogs = dialogs
    window.show()
    qtbot.waitExposed(window)
    return window


@pytest.mark.parametrize("movable", [True, False], ids=["writable folder", "read-only folder"])
def test_the_app_starts_with_damaged_bookmarks_and_direction_names(qtbot, monkeypatch, app_home, movable):
    from conftest import delete_now

    app_home.mkdir(parents=True)
    (app_home / "bookmarks.json").write_text("{damaged")
    (app_home / "directions.json").write_bytes(b"\xff\xfe not text")
    if not movable:

        def read_only(source, target):
            raise OSError(30, "Read-only file system")

        monkeypatch.setattr(os, "replace", read_only)  # every rename fails, as in a read-only folder
    window = start_window(qtbot, monkeypatch)
    try:
        qtbot.waitUntil(lambda: len(window.dialogs) >= 2, timeout=WAIT_MS)
        qtbot.wait(50)
        bookmarks, directions = sorted(window.dialogs)
        assert len(window.dialogs) == 2 and all("\n" not in line for line in window.dialogs)
        assert str(app_home / "bookmarks.json") in bookmarks and str(app_home / "directions.json") in directions
        if movable:
            assert "kept as bookmarks.damaged.json" in bookmarks and "kept as directions.damaged.json" in directions
            assert (app_home / "bookmarks.damaged.json").read_text() == "{damaged"
            assert (app_home / "directions.damaged.json").read_bytes() == b"\xff\xfe not text"
        else:
            assert "Read-only file system" in bookmarks and "Read-only file system" in directions
            assert (app_home / "bookmarks.json").read_text() == "{damaged"
            assert (app_home / "directions.json").read_bytes() == b"\xff\xfe not text"
        assert window.isVisible() and window.panels["latent"].bookmark_list.count() == 0
    finally:
        window.close()
        delete_now(window)


def test_a_volume_picked_as_a_latent_is_one_line(main_window, qtbot, tiny_model_file, tmp_path):
    open_and_wait(main_window, qtbot, tiny_model_file, seed=2)
    np.lib.format.open_memmap(tmp_path / "ct.npy", mode="w+", dtype=np.int16, shape=(128, 128, 128)).flush()
    assert not main_window.panels["latent"].import_latent(tmp_path / "ct.npy")
    assert len(main_window.dialogs) == 1 and "ct.npy" in main_window.dialogs[0]
    assert "(128, 128, 128)" in main_window.dialogs[0] and main_window.state.latent.seed == 2


def test_bookmarking_the_same_gallery_seeds_again_adds_no_duplicates(main_window, qtbot, tiny_model_file):
    open_and_wait(main_window, qtbot, tiny_model_file)
    panel, bar = main_window.panels["latent"], main_window.statusBar()
    main_window.state.request_bookmarks(selection((1, 4)))
    main_window.state.request_bookmarks(selection((1, 4, 6)))
    assert [b.seed for b in panel.store.bookmarks] == [1, 4, 6] and panel.bookmark_list.count() == 3
    assert bar.currentMessage() == "Bookmarked seed 6; already bookmarked: seed 1, seed 4"
    main_window.state.request_bookmarks(selection((1,)))
    assert panel.bookmark_list.count() == 3 and bar.currentMessage() == "Already bookmarked: seed 1"
    main_window.state.set_truncation(0.7)  # the same seed at another truncation is another latent
    main_window.state.request_bookmarks(selection((1,)))
    assert panel.bookmark_list.count() == 4 and not main_window.dialogs
