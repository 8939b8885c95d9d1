"""Model and Latent panels under Xvfb: open and read a model, bad files, and what survives a restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from app_support import WAIT_MS, frame, wait_for_parts
from PySide6.QtCore import Qt

from engine.demo import demo_models
from engine.latent import seed_to_z


def open_via_panel(window, qtbot, path: Path, seed: int = 0) -> None:
    window.panels["latent"].seed_box.setValue(seed)
    wait_for_parts(window, qtbot, lambda: window.panels["model"].open_path(path))


def click_item(qtbot, widget, item) -> None:
    qtbot.mouseClick(widget.viewport(), Qt.MouseButton.LeftButton, pos=widget.visualItemRect(item).center())


@pytest.fixture
def restart(qtbot, monkeypatch, main_window):
    """Close the window and start a new one on the same user data folder (what a restart keeps)."""
    from PySide6.QtWidgets import QMessageBox

    from app.main_window import MainWindow

    started = []

    def start():
        main_window.close()
        window = MainWindow()
        window.dialogs = []
        monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text, *args: window.dialogs.append(text))
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        started.append(window)
        return window

    yield start
    from conftest import delete_now

    for window in started:
        window.close()
        delete_now(window)


def test_opening_from_the_panel_shows_the_card_and_renders(main_window, qtbot, tiny_model_file):
    model_panel = main_window.panels["model"]
    assert len(model_panel.demo_buttons) == len(demo_models())
    open_via_panel(main_window, qtbot, tiny_model_file)
    card = model_panel.card_view.toPlainText()
    for expected in ("tiny-ct", "32³ voxels", "Latent size", "[-1024, 600] HU", "G, E, Sub_E", "Content hash"):
        assert expected in card
    assert "CPU" in model_panel.device_label.text()
    assert frame(main_window.hierarchy.full).std() > 1 and not main_window.dialogs

    cpu = model_panel.device_box.findData("cpu")  # another device reloads the same file there
    with qtbot.waitSignal(main_window.state.model_changed, timeout=WAIT_MS):
        model_panel.device_box.setCurrentIndex(cpu)
        model_panel.device_box.activated.emit(cpu)
    assert main_window.generation.device == "cpu" and main_window.state.model.path == str(tiny_model_file)


def test_official_files_ask_for_their_resolution(main_window, tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr(main_window.generation, "open", lambda *args: opened.append(args))
    model_panel = main_window.panels["model"]
    generator = tmp_path / "G_iter80000.pth"
    generator.write_bytes(b"not read before the question")
    model_panel.ask_resolution = lambda path: None  # the user cancels: nothing happens
    model_panel.open_path(generator)
    model_panel.ask_resolution = lambda path: 256
    model_panel.open_path(generator)
    assert opened == [(str(generator), 256, "auto")] and not main_window.dialogs

    from app.panels.model_panel import resolution_key
    from app.settings import settings

    settings().setValue(resolution_key(generator), 128)  # what a successful load remembers
    model_panel.ask_resolution = lambda path: pytest.fail("asked again for a file opened before")
    model_panel.open_path(generator)
    assert opened[-1] == (str(generator), 128, "auto")


def test_bad_files_give_one_dialog_each_and_the_window_stays_usable(main_window, qtbot, tmp_path, tiny_model_file):
    text = tmp_path / "x.safetensors"
    text.write_text("hello, not a model")
    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()
    model_panel = main_window.panels["model"]
    for number, path in enumerate((text, tmp_path / "missing.safetensors", empty_folder), start=1):
        model_panel.open_path(path)
        qtbot.waitUntil(lambda number=number: len(main_window.dialogs) == number, timeout=WAIT_MS)
        assert path.name in main_window.dialogs[-1] and "\n" not in main_window.dialogs[-1]
    assert main_window.state.model is None and main_window.isVisible()
    open_via_panel(main_window, qtbot, tiny_model_file)
    assert frame(main_window.hierarchy.full).std() > 1 and len(main_window.dialogs) == 3


def test_recent_files_and_bookmarks_survive_a_restart(main_window, qtbot, tiny_model_file, restart):
    open_via_panel(main_window, qtbot, tiny_model_file, seed=5)
    main_window.panels["latent"].truncation_box.setValue(0.8)
    stored = main_window.panels["latent"].add_bookmark("wide lungs")
    assert stored is not None and np.array_equal(stored.z, seed_to_z(5, 16).numpy()[0])

    window = restart()
    model_panel, latent_panel = window.panels["model"], window.panels["latent"]
    recent = model_panel.recent_list.item(0)
    assert recent.data(Qt.ItemDataRole.UserRole) == str(tiny_model_file.resolve())
    wait_for_parts(window, qtbot, lambda: click_item(qtbot, model_panel.recent_list, recent))
    assert window.state.latent.label == "seed 0" and latent_panel.bookmark_list.count() == 1

    item = latent_panel.bookmark_list.item(0)
    assert item.text() == "wide lungs"
    wait_for_parts(window, qtbot, lambda: click_item(qtbot, latent_panel.bookmark_list, item))
    assert torch.equal(window.state.latent.z, seed_to_z(5, 16)) and window.state.latent.label == "wide lungs"
    assert window.state.truncation == pytest.approx(0.8) and latent_panel.seed_box.value() == 5
    assert not window.dialogs


def test_latent_export_import_round_trip_and_bad_latents(main_window, qtbot, tiny_model_file, tmp_path):
    open_via_panel(main_window, qtbot, tiny_model_file, seed=2)
    latent_panel, state = main_window.panels["latent"], main_window.state
    assert latent_panel.export_latent(tmp_path / "two.npy") and latent_panel.export_latent(tmp_path / "two.json")
    for name in ("two.npy", "two.json"):
        latent_panel.seed_box.setValue(3)
        assert latent_panel.import_latent(tmp_path / name)
        assert torch.equal(state.latent.z, seed_to_z(2, 16)), name

    np.save(tmp_path / "short.npy", np.zeros(7))
    np.save(tmp_path / "nan.npy", np.full((1, 16), np.nan))
    for number, (name, cause) in enumerate((("short.npy", "7 values"), ("nan.npy", "NaN")), start=1):
        assert not latent_panel.import_latent(tmp_path / name)
        assert len(main_window.dialogs) == number and cause in main_window.dialogs[-1]
    assert torch.equal(state.latent.z, seed_to_z(2, 16))  # a refused file changes nothing


def test_changing_the_seed_changes_the_full_volume(main_window, qtbot, tiny_model_file):
    open_via_panel(main_window, qtbot, tiny_model_file, seed=0)
    before = frame(main_window.hierarchy.full)
    wait_for_parts(main_window, qtbot, lambda: main_window.panels["latent"].seed_box.setValue(1))
    after = frame(main_window.hierarchy.full)
    assert before.std() > 1 and after.std() > 1
    assert np.abs(before.astype(int) - after.astype(int)).mean() > 1.0


def test_the_card_of_a_fine_tuned_model_says_where_it_started():
    from app.panels.model_panel import card_rows
    from engine.checkpoints import read_model_card
    from engine.demo import demo_models

    card = read_model_card(demo_models()[0])
    init = card.training["init"]  # the bundled CT was fine-tuned from a warm-up run folder
    rows = dict(card_rows(card))
    assert rows["Started from"] == f"{Path(init['from']).name} at iteration {init['iteration']} (fine-tuned)"


def test_the_card_of_an_averaged_export_says_which_iterations_made_its_generator():
    import dataclasses

    from app.panels.model_panel import card_rows
    from engine.checkpoints import read_model_card
    from engine.demo import demo_models

    card = read_model_card(demo_models()[0])
    averaged = dataclasses.replace(card, training={**card.training, "averaged_iterations": [4000, 4250, 4500]})
    assert dict(card_rows(averaged))["Generator"] == "mean of iterations 4000, 4250, 4500"
    assert "Generator" not in dict(card_rows(dataclasses.replace(card, training={"iterations": 5})))
