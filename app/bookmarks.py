"""Latent bookmarks and latent files: named points in a model's latent space, kept as JSON.

Qt-free, so it tests without a display. One file (``bookmarks.json`` in the user data folder)
holds the bookmarks of every model; each names its model by the card's content hash, because a
latent means nothing without the generator that decodes it. A single latent travels as ``.npy``
(shape ``(latent_dim,)`` or ``(1, latent_dim)``) or as a ``.json`` file in the store's format.
Every problem with a file becomes a ``LatentFileError`` whose message is one line naming the file.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.api import atomic_write

from .set_aside import set_aside

FORMAT = "gan-volume-explorer/bookmarks"
VERSION = 1
LATENT_SUFFIXES = (".npy", ".json")


class LatentFileError(ValueError):
    """A latent or bookmark file that cannot be used; the message is the one-line cause."""


def check_latent(values, latent_dim: int | None, where: str) -> np.ndarray:
    """``values`` as a finite float32 vector of ``latent_dim`` numbers, or a LatentFileError."""
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise LatentFileError(f"{where}: a latent holds numbers, not {array.dtype} values")
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1:
        raise LatentFileError(f"{where}: a latent has shape (latent_dim,) or (1, latent_dim), not {array.shape}")
    if latent_dim is not None and array.size != latent_dim:
        raise LatentFileError(f"{where}: the latent has {array.size} values, this model needs {latent_dim}")
    if not np.isfinite(array).all():
        raise LatentFileError(f"{where}: the latent contains NaN or infinite values")
    return np.array(array, dtype=np.float32)  # a plain copy (also of a memory-mapped file)


@dataclass
class Bookmark:
    """A named latent of one model; ``z`` is before truncation, which is stored beside it."""

    name: str
    z: np.ndarray  # (latent_dim,) float32
    model_hash: str = ""
    model_name: str = ""
    seed: int | None = None
    truncation: float = 1.0
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict:
        # 9 significant digits read back to the same float32, bit for bit (the decimal lies far closer to
        # the value than to the midpoint between float32 neighbours), in about half the text of 17
        return {
            "name": self.name,
            "model_hash": self.model_hash,
            "model_name": self.model_name,
            "seed": self.seed,
            "truncation": self.truncation,
            "z": [float(f"{x:.9g}") for x in self.z.tolist()],
            "id": self.id,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, values: dict, where: str, latent_dim: int | None = None) -> Bookmark:
        if not isinstance(values, dict) or "z" not in values:
            raise LatentFileError(f"{where}: a bookmark needs a 'z' vector")
        try:
            seed = values.get("seed")
            return cls(
                name=str(values.get("name") or "latent"),
                z=check_latent(values["z"], latent_dim, where),
                model_hash=str(values.get("model_hash", "")),
                model_name=str(values.get("model_name", "")),
                seed=None if seed is None else int(seed),
                truncation=float(values.get("truncation", 1.0)),
                id=str(values.get("id") or uuid.uuid4().hex),
                created=str(values.get("created", "")),
            )
        except (TypeError, ValueError) as error:
            if isinstance(error, LatentFileError):
                raise
            raise LatentFileError(f"{where}: malformed bookmark ({error})") from None


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise LatentFileError(f"{path}: cannot read ({error.strerror or error})") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise LatentFileError(f"{path}: not a JSON file ({str(error).splitlines()[0]})") from None


def _bookmarks_in(document: object, path: Path, latent_dim: int | None = None) -> list[Bookmark]:
    """The bookmarks of a store document (a lone bookmark object counts as a list of one)."""
    if isinstance(document, dict) and "z" in document:
        return [Bookmark.from_dict(document, str(path), latent_dim)]
    if not isinstance(document, dict) or not isinstance(document.get("bookmarks"), list):
        raise LatentFileError(f"{path}: not a bookmark file (no 'bookmarks' list)")
    version = document.get("version", VERSION)
    if not isinstance(version, int) or version > VERSION:
        raise LatentFileError(f"{path}: bookmark format version {version!r} is not one this app reads")
    return [
        Bookmark.from_dict(item, f"{path}, bookmark {n + 1}", latent_dim)
        for n, item in enumerate(document["bookmarks"])
    ]


def write_bookmarks(path: str | os.PathLike, bookmarks: list[Bookmark]) -> Path:
    """Write bookmarks in the store's format, atomically (a crash leaves the old file or the new).

    Compact: one bookmark (its latent included) per line. Files written with one number per line
    read the same way."""
    header = json.dumps({"format": FORMAT, "version": VERSION})[:-1]
    lines = [json.dumps(b.to_dict(), ensure_ascii=False, separators=(",", ":")) for b in bookmarks]
    text = header + ', "bookmarks": [\n' + ",\n".join(lines) + "\n]}\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


class BookmarkStore:
    """Every bookmark, in the order they were added; each change is saved at once.

    A change shows in ``bookmarks`` only once it is saved: when the save fails (OSError) the list
    stays as it was, so what the app lists is what the next start reads."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.bookmarks: list[Bookmark] = []
        self._kept_damaged = False  # a damaged file that could not be moved aside: never overwrite it

    def load(self) -> list[Bookmark]:
        """Read the file (none yet: no bookmarks). A damaged file is set aside, never overwritten."""
        self.bookmarks, self._kept_damaged = [], False
        if not self.path.exists():
            return self.bookmarks
        try:
            self.bookmarks = _bookmarks_in(_read_json(self.path), self.path)
        except LatentFileError as error:
            try:
                aside = set_aside(self.path)
            except OSError as move_error:
                self._kept_damaged = True
                raise LatentFileError(
                    f"{error}; cannot move it aside ({move_error.strerror or move_error}), so it is left as it is "
                    "and no bookmark is saved while the app runs"
                ) from None
            raise LatentFileError(f"{error}; kept as {aside.name}, starting a new list") from None
        return self.bookmarks

    def save(self) -> None:
        self._write(self.bookmarks)

    def _write(self, bookmarks: list[Bookmark]) -> None:
        if self._kept_damaged:
            raise OSError(errno.EEXIST, "the damaged bookmarks file is kept as it is")
        write_bookmarks(self.path, bookmarks)

    def _commit(self, bookmarks: list[Bookmark]) -> None:
        """Save ``bookmarks``, then list them (an OSError leaves the list as it was)."""
        self._write(bookmarks)
        self.bookmarks = bookmarks

    def for_model(self, model_hash: str) -> list[Bookmark]:
        return [b for b in self.bookmarks if b.model_hash == model_hash]

    def holds(self, bookmark: Bookmark) -> bool:
        """Whether the same latent of the same model, at the same truncation, is bookmarked already."""
        same_model = (b for b in self.bookmarks if b.model_hash == bookmark.model_hash)
        return any(b.truncation == bookmark.truncation and np.array_equal(b.z, bookmark.z) for b in same_model)

    def get(self, bookmark_id: str) -> Bookmark | None:
        return next((b for b in self.bookmarks if b.id == bookmark_id), None)

    def add(self, bookmark: Bookmark) -> Bookmark:
        return self.add_all([bookmark])[0]

    def add_all(self, bookmarks: list[Bookmark]) -> list[Bookmark]:
        """Add several bookmarks with one save."""
        self._commit([*self.bookmarks, *bookmarks])
        return bookmarks

    def rename(self, bookmark_id: str, name: str) -> None:
        bookmark = self.get(bookmark_id)
        if bookmark is not None and name.strip() and name.strip() != bookmark.name:
            renamed = dataclasses.replace(bookmark, name=name.strip())
            self._commit([renamed if b is bookmark else b for b in self.bookmarks])

    def remove(self, bookmark_id: str) -> None:
        self._commit([b for b in self.bookmarks if b.id != bookmark_id])


def read_latent(path: str | os.PathLike, latent_dim: int | None = None) -> Bookmark:
    """One latent from ``.npy`` or ``.json`` (a file of one bookmark); named after the file when unnamed."""
    path = Path(path)
    if path.suffix.lower() not in LATENT_SUFFIXES:
        raise LatentFileError(f"{path}: latent files end in .npy or .json")
    if not path.is_file():
        raise LatentFileError(f"{path}: no such file")
    if path.suffix.lower() == ".json":
        found = _bookmarks_in(_read_json(path), path, latent_dim)
        if len(found) != 1:
            raise LatentFileError(f"{path}: holds {len(found)} latents; import takes a file of one")
        return found[0]
    try:  # mapped, not read: a volume picked by mistake is refused by its header's shape, in no time
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise LatentFileError(f"{path}: not a NumPy .npy file ({str(error).splitlines()[0]})") from None
    if not isinstance(array, np.ndarray):
        array.close()  # an .npz archive
        raise LatentFileError(f"{path}: holds several arrays; a latent file holds one")
    return Bookmark(name=path.stem, z=check_latent(array, latent_dim, str(path)))  # (a copy, not the map)


def write_latent(path: str | os.PathLike, bookmark: Bookmark) -> Path:
    """One latent as ``.npy`` (shape (1, latent_dim), the engine's z) or ``.json`` (the store's format)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return write_bookmarks(path, [bookmark])
    if path.suffix.lower() != ".npy":
        raise LatentFileError(f"{path}: latent files end in .npy or .json")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # np.save would append .npy to a bare temporary name
            np.save(handle, bookmark.z.reshape(1, -1).astype(np.float32))

    return atomic_write(path, write)
