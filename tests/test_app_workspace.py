"""Workspaces: saved and reopened they give back the same views; a missing model or a broken file is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from app_support import WAIT_MS, open_and_wait, wait_for_parts

from engine.latent import seed_to_z


def set_up_a_workspace(window, qtbot) -> None:
    """What a user sets up: a non-seed latent, truncation, keyframes, window, crosshair, slab, 3D mode, layout."""
    from app.render.window_level import WindowLevel

    state, interpolation = window.state, window.panels["interpolation"]
    interpolation.add_seed(2)
    interpolation.add_seed(9)
    interpolation.keys.method_box.setCurrentText("lerp")
    wait_for_parts(window, qtbot, lambda: interpolation.player.slider.setValue(370))  # a latent that is not a seed
    state.set_truncation(0.7)
    state.set_window(WindowLevel(420.0, 35.5))
    state.set_slab_start(8)
    state.set_crosshair((3.0, -6.0, 12.5))
    state.set_render_mode("mip")
    state.set_iso_value(0.0)
    state.set_layout("stacked")
    qtbot.waitUntil(lambda: not window.jobs.busy(), timeout=WAIT_MS)


def snapshot(state) -> dict:
    return {
        "z": state.latent.z.clone(),
        "label": state.latent.label,
        "truncation": state.truncation,
        "keyframes": [(k.label, k.seed, k.z.clone()) for k in state.path.keyframes],
        "method": state.path.method,
        "t": state.path.t,
        "window": state.window,
        "crosshair": state.crosshair.copy(),
        "slab": state.slab_start,
        "render": (state.render_mode, state.iso_value),
        "layout": state.layout,
    }


def assert_same(now: dict, before: dict) -> None:
    assert torch.equal(now["z"], before["z"]) and now["label"] == before["label"]
    assert [(label, seed) for label, seed, _ in now["keyframes"]] == [(k[0], k[1]) for k in before["keyframes"]]
    assert all(torch.equal(a[2], b[2]) for a, b in zip(now["keyframes"], before["keyframes"], strict=True))
    for key in ("truncation", "method", "t", "window", "slab", "render", "layout"):
        assert now[key] == before[key], key
    assert np.array_equal(now["crosshair"], before["crosshair"])


def test_a_saved_workspace_reopens_the_same_views(main_window, qtbot, tiny_model_file, tmp_path):
    open_and_wait(main_window, qtbot, tiny_model_file, seed=4)
    set_up_a_workspace(main_window, qtbot)
    before = snapshot(main_window.state)
    path = tmp_path / "workspace.json"
    assert main_window.workspace.save(path)
    saved = json.loads(path.read_text())
    assert saved["latent"]["seed"] is None and len(saved["latent"]["z"]) == 16  # a path point: the vector itself
    assert saved["interpolation"]["keyframes"][0] == {"label": "seed 2", "seed": 2}  # a seed: just the seed

    # another seed, default views: then the workspace brings everything back
    state = main_window.state
    wait_for_parts(main_window, qtbot, lambda: main_window.panels["latent"].set_seed(11))
    state.set_window(state.window.dragged(50, 50, 1.0))
    state.set_crosshair((0.0, 0.0, 0.0))
    state.set_layout("side by side")
    state.set_render_mode("volume")
    with qtbot.waitSignal(main_window.workspace.restored, timeout=WAIT_MS):
        main_window.workspace.open(path)
    assert_same(snapshot(state), before)
    qtbot.waitUntil(lambda: main_window.hierarchy.full.volume is state.volumes.get("full"), timeout=WAIT_MS)
    assert main_window.panels["view"].mode_box.currentData() == "mip"
    assert main_window.panels["interpolation"].keys.method_box.currentText() == "lerp"
    assert main_window.panels["latent"].truncation_box.value() == pytest.approx(0.7)
    assert main_window.hierarchy.splitter.orientation().name == "Vertical" and not main_window.dialogs


def test_a_workspace_opens_its_model_first(main_window, qtbot, tiny_model_file, tmp_path):
    from app_support import make_tiny_model

    from app.workspace import Workspace, write_workspace

    open_and_wait(main_window, qtbot, tiny_model_file, seed=4)
    set_up_a_workspace(main_window, qtbot)
    before = snapshot(main_window.state)
    path = write_workspace(tmp_path / "workspace.json", Workspace.of(main_window.state))
    other = make_tiny_model(tmp_path / "other.safetensors", modality="mri", seed=1)
    open_and_wait(main_window, qtbot, other)
    with qtbot.waitSignal(main_window.workspace.restored, timeout=WAIT_MS):
        main_window.workspace.open(path)
    assert main_window.state.model.path == str(tiny_model_file.resolve())
    assert_same(snapshot(main_window.state), before)
    assert not main_window.dialogs


def test_a_workspace_with_a_missing_model_says_so_and_restores_the_rest(main_window, qtbot, tiny_model_file, tmp_path):
    open_and_wait(main_window, qtbot, tiny_model_file, seed=4)
    set_up_a_workspace(main_window, qtbot)
    before = snapshot(main_window.state)
    path = tmp_path / "workspace.json"
    main_window.workspace.save(path)
    values = json.loads(path.read_text())
    values["model"]["path"] = str(tmp_path / "gone.safetensors")
    path.write_text(json.dumps(values))

    state = main_window.state
    state.set_layout("side by side")
    state.set_crosshair((0.0, 0.0, 0.0))
    main_window.workspace.open(path)
    assert len(main_window.dialogs) == 1 and "\n" not in main_window.dialogs[0]
    assert "gone.safetensors" in main_window.dialogs[0] and "missing" in main_window.dialogs[0]
    assert_same(snapshot(state), before)  # on the model at hand (the same latent size)


def test_a_changed_model_is_named(main_window, qtbot, tiny_model_file, tmp_path):
    open_and_wait(main_window, qtbot, tiny_model_file, seed=4)
    path = tmp_path / "workspace.json"
    main_window.workspace.save(path)
    values = json.loads(path.read_text())
    values["model"]["content_hash"] = "sha256:" + "0" * 64
    path.write_text(json.dumps(values))
    model_file = tmp_path / "moved.safetensors"
    model_file.write_bytes(tiny_model_file.read_bytes())  # another path: the workspace loads it first
    values["model"]["path"] = str(model_file)
    path.write_text(json.dumps(values))
    with qtbot.waitSignal(main_window.workspace.restored, timeout=WAIT_MS):
        main_window.workspace.open(path)
    assert len(main_window.dialogs) == 1 and "changed since it was saved" in main_window.dialogs[0]
    assert torch.equal(main_window.state.latent.z, seed_to_z(4, 16))
    main_window.workspace.open(path)  # again, on the model now shown: the same line, no reload
    assert len(main_window.dialogs) == 2 and "changed since it was saved" in main_window.dialogs[1]


@pytest.mark.parametrize(
    "text, cause",
    [
        ("{ not json", "broken JSON"),
        ('{"format": "something else"}', "not a GAN Volume Explorer workspace"),
        ('{"format": "gan-volume-explorer/workspace", "version": 1, "window": {"width": "wide"}}', "bad workspace"),
        ('{"format": "gan-volume-explorer/workspace", "version": 1, "layout": "diagonal"}', "unknown layout"),
    ],
)
def test_a_broken_workspace_file_is_one_line(main_window, tmp_path, text, cause):
    path = tmp_path / "broken.json"
    path.write_text(text)
    assert not main_window.workspace.open(path)
    assert len(main_window.dialogs) == 1 and "\n" not in main_window.dialogs[0]
    assert "broken.json" in main_window.dialogs[0] and cause in main_window.dialogs[0]


def test_the_last_workspace_is_offered_at_the_next_start(main_window, qtbot, tiny_model_file, monkeypatch):
    from conftest import delete_now
    from PySide6.QtWidgets import QMessageBox

    from app.main_window import MainWindow

    open_and_wait(main_window, qtbot, tiny_model_file, seed=6)
    assert not main_window.reopen_offer.isVisible()  # a first start offers nothing
    main_window.state.set_crosshair((1.0, 2.0, 3.0))
    main_window.close()

    window = MainWindow()
    window.dialogs = []
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text, *args: window.dialogs.append(text))
    window.show()  # (closed and deleted below, not by qtbot)
    try:
        assert window.reopen_offer.isVisible() and window.reopen_action.isEnabled()
        with qtbot.waitSignal(window.workspace.restored, timeout=WAIT_MS):
            window.reopen_offer.click()
        assert window.state.latent.seed == 6 and tuple(window.state.crosshair) == (1.0, 2.0, 3.0)
        assert not window.reopen_offer.isVisible() and not window.dialogs
    finally:
        window.close()
        delete_now(window)


def test_a_workspace_file_names_the_3d_mode_as_plain_text(tmp_path):
    """The default 3D mode is a RenderMode member in the app; the file holds its string, and reads back."""
    from app.state import AppState, RenderMode
    from app.workspace import Workspace, read_workspace, write_workspace

    state = AppState()
    assert state.render_mode is RenderMode.VOLUME
    path = write_workspace(tmp_path / "default.json", Workspace.of(state))
    text = path.read_text()
    assert json.loads(text)["render"]["mode"] == "volume" and "RenderMode" not in text
    assert read_workspace(path).render_mode == "volume"


def test_a_last_workspace_that_cannot_be_saved_is_said_once(main_window, qtbot, tiny_model_file, monkeypatch):
    import app.workspace

    def full(path, workspace):
        raise OSError(28, "No space left on device")

    open_and_wait(main_window, qtbot, tiny_model_file, seed=6)
    monkeypatch.setattr(app.workspace, "write_workspace", full)
    main_window.close()
    assert len(main_window.dialogs) == 1 and "\n" not in main_window.dialogs[0]
    assert "last-workspace.json" in main_window.dialogs[0]
    assert "No space left on device" in main_window.dialogs[0]
