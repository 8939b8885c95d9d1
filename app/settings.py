"""Where the app keeps what it remembers: window layout, recent files (QSettings) and user data.

Everything lives in one folder (``user_data_dir``): the platform's application data folder, or
``$GAN_EXPLORER_HOME`` when set (tests point it at a temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

HOME_VARIABLE = "GAN_EXPLORER_HOME"
MAX_RECENT = 8


def user_data_dir() -> Path:
    """The folder for settings, bookmarks and other user data (created on first use)."""
    configured = os.environ.get(HOME_VARIABLE)
    if configured:
        folder = Path(configured)
    else:
        location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
        folder = Path(location or Path.home() / ".gan-volume-explorer")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def settings() -> QSettings:
    """The app's settings file (INI in the user data folder)."""
    return QSettings(str(user_data_dir() / "settings.ini"), QSettings.Format.IniFormat)


def recent_files(key: str = "recent/models") -> list[str]:
    """Recently opened files that still exist, newest first."""
    values = settings().value(key, [])
    if isinstance(values, str):  # QSettings returns a lone string for a one-item list
        values = [values]
    return [v for v in values or [] if Path(v).exists()]


def remember_file(path: str | os.PathLike, key: str = "recent/models") -> list[str]:
    """Put ``path`` first in the recent list (no duplicates, at most MAX_RECENT)."""
    path = str(Path(path).resolve())
    values = [path, *[v for v in recent_files(key) if v != path]][:MAX_RECENT]
    store = settings()
    store.setValue(key, values)
    store.sync()
    return values
