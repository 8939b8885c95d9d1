"""Names users give to latent directions, per model (by content hash), in one JSON file.

Qt-free. A direction index means something only for the model whose weights it came from, so
names are kept per model hash, like bookmarks. A damaged or unreadable file is set aside (never
overwritten) and counts as no names; ``problem`` then says so in one line, for the app to show.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from engine.api import atomic_write

from .set_aside import set_aside


class DirectionNames:
    """``names(model_hash)`` -> {index: name}; ``rename`` saves at once (a failed save changes nothing)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._all: dict[str, dict[str, str]] = {}
        self.problem = ""  # one line when the file could not be read, else empty
        self._kept_damaged = False  # a damaged file that could not be moved aside: never overwrite it
        self.load()

    def load(self) -> None:
        self._all, self.problem, self._kept_damaged = {}, "", False
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except OSError as error:
            self._set_aside(f"cannot read ({error.strerror or error})")
            return
        except ValueError as error:  # (UnicodeDecodeError is one)
            self._set_aside(f"not a JSON file ({str(error).splitlines()[0]})")
            return
        if not isinstance(document, dict):
            self._set_aside("not a direction names file (no object of models)")
            return
        self._all = {
            str(model): {str(k): str(v) for k, v in names.items()}
            for model, names in document.items()
            if isinstance(names, dict)
        }

    def _set_aside(self, cause: str) -> None:
        try:
            aside = set_aside(self.path)
        except OSError as error:
            self._kept_damaged = True
            self.problem = (
                f"{self.path}: {cause}; cannot move it aside ({error.strerror or error}), so it is left as it is "
                "and no direction name is saved while the app runs"
            )
        else:
            self.problem = f"{self.path}: {cause}; kept as {aside.name}, starting with no direction names"

    def names(self, model_hash: str) -> dict[int, str]:
        return {int(k): v for k, v in self._all.get(model_hash, {}).items() if k.isdigit()}

    def rename(self, model_hash: str, index: int, name: str) -> None:
        """Name direction ``index`` of a model; a blank name removes the name. Raises OSError when the
        file cannot be written; the names are then as they were."""
        if self._kept_damaged:
            raise OSError(errno.EEXIST, "the damaged direction names file is kept as it is")
        names = dict(self._all.get(model_hash, {}))
        if name.strip():
            names[str(index)] = name.strip()
        else:
            names.pop(str(index), None)
        updated = {**self._all, model_hash: names}
        text = json.dumps(updated, indent=1, ensure_ascii=False)
        atomic_write(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"), suffix=".json")
        self._all = updated
