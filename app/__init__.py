"""Desktop app (PySide6 + pyvistaqt); uses only the engine's public API."""
