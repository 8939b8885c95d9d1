"""The Interpolation panel: keyframes (keyframes.py), moving along the path (player.py), exporting the
sequence (export.py), and the panel that puts them together (panel.py)."""

from .panel import InterpolationPanel

__all__ = ["InterpolationPanel"]
