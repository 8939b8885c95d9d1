"""Shared helpers for the app's GUI tests (under Xvfb): a tiny model, a window, waiting for renders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

WAIT_MS = 30_000  # generous: the 2-core CI machine renders with llvmpipe


def make_tiny_model(path: Path, modality: str = "ct", seed: int = 0) -> Path:
    """A 32^3 HA-GAN with encoders and seeded random weights, saved in our format."""
    from engine.card import CT_WINDOW, ModelCard
    from engine.checkpoints import save_model
    from engine.model import HAGANModel
    from engine.models.hagan import HAGANConfig
    from engine.volume import IntensityMapping

    config = HAGANConfig(resolution=32, latent_dim=16, g_width=16, d_width=8, e_width=8)
    intensity = CT_WINDOW if modality == "ct" else IntensityMapping(0.0, 1.0, "")
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the same weights in every run, so frames differ by a known margin
        card = ModelCard(config=config, name=f"tiny-{modality}", modality=modality, intensity=intensity)
        model = HAGANModel.build(card, parts=("G", "E", "Sub_E"))
    return save_model(model, path)


def frame(pane) -> np.ndarray:
    """What a pane's VTK widget shows now, as an RGB array (rendered now: panes redraw in their next paint)."""
    pane.render_now()
    return pane.plotter.screenshot(None, return_img=True).copy()


def open_and_wait(window, qtbot, path: Path, seed: int = 0) -> None:
    """Open a model and wait until its full volume is drawn."""
    window.panels["latent"].seed_box.setValue(seed)
    wait_for_parts(window, qtbot, lambda: window.open_model(path))


def wait_for_parts(window, qtbot, action, parts=("full",)) -> None:
    """Run ``action`` and wait until the hierarchy view has drawn all ``parts``."""
    seen: set[str] = set()

    def record(shown) -> None:
        seen.update(shown)

    window.hierarchy.rendered.connect(record)
    try:
        action()
        qtbot.waitUntil(lambda: set(parts) <= seen, timeout=WAIT_MS)
    finally:
        window.hierarchy.rendered.disconnect(record)


def make_tiny_split_shuffle_model(path: Path, seed: int = 0) -> Path:
    """A 32^3 Split&Shuffle-GAN (one-piece generator, no anchor or slabs) with seeded random weights."""
    from engine.card import CT_WINDOW, ModelCard
    from engine.checkpoints import save_model
    from engine.model import SplitShuffleModel
    from engine.models.split_shuffle import SplitShuffleConfig

    config = SplitShuffleConfig(resolution=32, latent_dim=16, g_width=8, d_width=8, max_width=32)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        card = ModelCard(config=config, family="split-shuffle", name="tiny-ss", modality="ct", intensity=CT_WINDOW)
        model = SplitShuffleModel.build(card, parts=("G",))
    return save_model(model, path)
