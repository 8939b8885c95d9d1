"""Names users give to latent directions, per model (by content hash), in one JSON file.

Qt-free. A direction index means something only for the model whose weights it came from, so
names are kept per model hash, like bookmarks. An unreadable file counts as no names (it is
replaced on the next save, after being set aside).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.api import atomic_write


class DirectionNames:
    """``names(model_hash)`` -> {index: name}; ``rename`` saves at once."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._all: dict[str, dict[str, str]] = {}
        self.load()

    def load(self) -> None:
        try:
            document = json.loads(self.path.read_text())
        except FileNotFoundError:
            document = {}
        except (OSError, ValueError):
            os.replace(self.path, self.path.with_name(self.path.stem + ".damaged.json"))
            document = {}
        self._all = {
            str(model): {str(k): str(v) for k, v in names.items()}
            for model, names in (document.items() if isinstance(document, dict) else [])
            if isinstance(names, dict)
        }

    def names(self, model_hash: str) -> dict[int, str]:
        return {int(k): v for k, v in self._all.get(model_hash, {}).items() if k.isdigit()}

    def rename(self, model_hash: str, index: int, name: str) -> None:
        """Name direction ``index`` of a model; a blank name removes the name."""
        names = self._all.setdefault(model_hash, {})
        if name.strip():
            names[str(index)] = name.strip()
        else:
            names.pop(str(index), None)
        text = json.dumps(self._all, indent=1, ensure_ascii=False)
        atomic_write(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"), suffix=".json")
