"""Desktop app (PySide6 + pyvistaqt); uses only the engine's public API."""

import os

os.environ.setdefault("QT_API", "pyside6")  # before any Qt import: qtpy (inside pyvistaqt) must pick PySide6
