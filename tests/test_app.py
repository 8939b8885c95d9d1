"""The desktop app under Xvfb: it renders generated volumes, follows the seed and never crashes on errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import Qt

from engine.card import CT_WINDOW, ModelCard
from engine.checkpoints import save_model
from engine.model import HAGANModel
from engine.models.hagan import HAGANConfig
from engine.volume import IntensityMapping, Volume

ROOT = Path(__file__).resolve().parents[1]
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A 32^3 CT model with (seeded) random weights, saved in our format."""
    config = HAGANConfig(resolution=32, latent_dim=16, g_width=16, d_width=8, e_width=8)
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the same random weights in every run, so frames differ by a known margin
        model = HAGANModel.build(ModelCard(config=config, name="tiny", modality="ct", intensity=CT_WINDOW))
    return save_model(model, tmp_path_factory.mktemp("models") / "tiny.safetensors")


@pytest.fixture
def window(qtbot, monkeypatch):
    """The main window, shown; dialogs are recorded in ``window.dialogs`` instead of blocking."""
    from PySide6.QtWidgets import QMessageBox

    from app.main_window import MainWindow

    dialogs: list[str] = []
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text, *args: dialogs.append(text))
    w = MainWindow()
    w.dialogs = dialogs
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()
    w.plotter.close()  # finalize VTK/GL while the widget and its context are alive


def frame(w) -> np.ndarray:
    return w.plotter.screenshot(None, return_img=True).copy()


def open_and_wait(w, qtbot, path: Path, seed: int = 0) -> np.ndarray:
    with qtbot.waitSignal(w.volume_shown, timeout=WAIT_MS, check_params_cb=lambda shown: shown == seed):
        w.open_model(path)
    return frame(w)


def test_renders_generated_volume(window, qtbot, tiny_model):
    image = open_and_wait(window, qtbot, tiny_model)
    assert image.std() > 1
    assert window.shown_seed == 0
    assert "tiny" in window.model_label.text() and "CPU" in window.model_label.text()
    assert window.seed_box.isEnabled() and not window.dialogs


def test_next_seed_changes_frame(window, qtbot, tiny_model):
    before = open_and_wait(window, qtbot, tiny_model)
    with qtbot.waitSignal(window.volume_shown, timeout=WAIT_MS) as shown:
        qtbot.mouseClick(window.next_button, Qt.MouseButton.LeftButton)
        assert window.statusBar().currentMessage() == "Generating seed 1…"
    after = frame(window)
    assert shown.args == [1] and window.seed_box.value() == 1
    assert before.std() > 1 and after.std() > 1
    assert np.abs(before.astype(int) - after.astype(int)).mean() > 1.0


def test_newest_seed_request_wins(window, qtbot, tiny_model):
    open_and_wait(window, qtbot, tiny_model)
    shown: list[int] = []
    window.volume_shown.connect(shown.append)
    with qtbot.waitSignal(window.volume_shown, timeout=WAIT_MS, check_params_cb=lambda seed: seed == 7):
        for seed in (5, 6, 7):
            window.seed_box.setValue(seed)
    qtbot.wait(200)  # a stale result arriving late would show up here
    assert shown == [7]


def test_missing_model_file_shows_error_dialog(window, qtbot, tmp_path):
    missing = tmp_path / "no-such-model.safetensors"
    window.open_model(missing)
    qtbot.waitUntil(lambda: bool(window.dialogs), timeout=WAIT_MS)
    assert len(window.dialogs) == 1 and "no-such-model.safetensors" in window.dialogs[0]
    assert "\n" not in window.dialogs[0]
    assert window.model is None and window.isVisible()
    assert frame(window).std() > 1  # the placeholder is still there


def test_placeholder_without_model(window):
    assert window.model is None and not window.seed_box.isEnabled()
    assert frame(window).std() > 1


def test_default_window_level():
    from app.render.window_level import default_window

    ct = Volume(np.zeros((4, 4, 4)), np.eye(4), CT_WINDOW)
    assert (default_window(ct).low, default_window(ct).high) == (-1350.0, 150.0)
    mri = Volume(np.linspace(2.0, 10.0, 64).reshape(4, 4, 4), np.eye(4), IntensityMapping(0.0, 1.0, ""))
    assert (default_window(mri).low, default_window(mri).high) == (2.0, 10.0)


def run_main(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="xcb")  # DISPLAY comes from pytest-xvfb
    command = [sys.executable, str(ROOT / "main.py"), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_screenshot_from_command_line(tiny_model, tmp_path):
    out = tmp_path / "out.png"
    result = run_main("--model", str(tiny_model), "--seed", "3", "--screenshot", str(out))
    assert result.returncode == 0, result.stderr
    image = np.asarray(Image.open(out).convert("RGB"), dtype=float)
    height, width, _ = image.shape
    view = image[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3]  # inside the VTK area
    assert image.std() > 1 and view.std() > 1


def test_screenshot_with_bad_model_exits_with_cause(tmp_path):
    out = tmp_path / "out.png"
    result = run_main("--model", str(tmp_path / "missing.safetensors"), "--screenshot", str(out))
    assert result.returncode != 0 and not out.exists()
    assert "missing.safetensors" in result.stderr and "Traceback" not in result.stderr
