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


@pytest.fixture
def tiny_config():
    """A 32^3 HA-GAN small enough for quick checks."""
    from engine.models.hagan import HAGANConfig

    return HAGANConfig(resolution=32, latent_dim=16, g_width=16, d_width=8, e_width=8)
