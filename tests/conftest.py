import os

# Before anything imports Qt: qtpy (pyvistaqt) must pick PySide6, and the VTK widget needs a real
# X server (pytest-xvfb provides one); 'offscreen' gives black or garbage frames.
os.environ["QT_API"] = "pyside6"
os.environ["QT_QPA_PLATFORM"] = "xcb"

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
torch.set_num_threads(max(1, os.cpu_count() or 1))

GUI_FIXTURES = {"qtbot", "qapp", "main_window"}


def pytest_collection_modifyitems(items) -> None:
    """Tests that open a window are marked ``gui``: ``pytest -m "not gui"`` runs the rest without a display."""
    for item in items:
        if item.module.__name__.startswith("test_app") or GUI_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.gui)


@pytest.hookimpl(optionalhook=True)  # pytest-xvfb's hook; absent under -p no:xvfb
def pytest_xvfb_disable(config) -> bool:
    """No virtual screen is started when the selection leaves out every GUI test."""
    return "not gui" in (config.getoption("markexpr") or "")


@pytest.fixture
def tiny_config():
    """A 32^3 HA-GAN small enough for quick checks."""
    from engine.models.hagan import HAGANConfig

    return HAGANConfig(resolution=32, latent_dim=16, g_width=16, d_width=8, e_width=8)


@pytest.fixture
def app_home(tmp_path, monkeypatch) -> Path:
    """The app's settings and user data go to a fresh folder for each test."""
    home = tmp_path / "app-home"
    monkeypatch.setenv("GAN_EXPLORER_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory) -> Path:
    """A 32^3 CT HA-GAN with encoders (seeded random weights) in our format."""
    from app_support import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-ct.safetensors")


@pytest.fixture
def main_window(qtbot, monkeypatch, app_home):
    """The real main window, shown; error dialogs are recorded in ``window.dialogs`` instead of blocking."""
    import shiboken6
    from PySide6.QtWidgets import QMessageBox

    from app.main_window import MainWindow

    threads = torch.get_num_threads()  # the app leaves a core to the UI; later engine tests get it back
    dialogs: list[str] = []
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text, *args: dialogs.append(text))
    window = MainWindow()
    window.dialogs = dialogs
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    yield window
    if shiboken6.isValid(window):  # (a test that restarts the app may have deleted it already)
        window.close()  # stops jobs and closes every VTK view while the GL context is alive
        delete_now(window)
    torch.set_num_threads(threads)


def delete_now(window) -> None:
    """Destroy a closed window before the next test starts, not in the middle of it (deleteLater
    would run in the next test's event loop, next to that test's GL contexts)."""
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent

    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
