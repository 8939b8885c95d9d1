"""The save dialog for a movie (interpolation paths and direction sweeps): GIF or MP4."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QWidget

MOVIE_FILES = "GIF animation (*.gif);;MP4 video (*.mp4)"


def choose_movie(parent: QWidget, title: str, default_name: str) -> str:
    """The path the user picked, or "" when they cancelled."""
    path, _ = QFileDialog.getSaveFileName(parent, title, default_name, MOVIE_FILES)
    return path
