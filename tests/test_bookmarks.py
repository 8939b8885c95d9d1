"""Latent bookmarks and latent files, without Qt: round trips, atomic saves, and every kind of bad file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.bookmarks import Bookmark, BookmarkStore, LatentFileError, read_latent, write_latent


def bookmark(name="seed 3", dim=8, model_hash="sha256:aa", seed=3) -> Bookmark:
    z = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return Bookmark(name=name, z=z, model_hash=model_hash, model_name="tiny", seed=seed, truncation=0.7)


def test_store_round_trip_keeps_every_field_exactly(tmp_path):
    store = BookmarkStore(tmp_path / "bookmarks.json")
    assert store.load() == []
    first, other = store.add(bookmark()), store.add(bookmark("other model", model_hash="sha256:bb", seed=4))
    store.rename(first.id, "  lungs wide  ")
    again = BookmarkStore(tmp_path / "bookmarks.json").load()
    assert [b.name for b in again] == ["lungs wide", "other model"]
    assert again[0].z.dtype == np.float32 and np.array_equal(again[0].z, first.z)  # bit for bit
    assert (again[0].seed, again[0].truncation, again[0].model_hash) == (3, 0.7, "sha256:aa")
    assert [b.id for b in BookmarkStore(store.path).load() if b.model_hash == "sha256:bb"] == [other.id]
    store.rename(first.id, "   ")  # a blank name keeps the old one
    store.remove(other.id)
    reloaded = BookmarkStore(store.path)
    reloaded.load()
    assert [b.name for b in reloaded.for_model("sha256:aa")] == ["lungs wide"] and not reloaded.for_model("sha256:bb")


def test_saves_are_atomic_and_leave_no_temporary_files(tmp_path, monkeypatch):
    store = BookmarkStore(tmp_path / "bookmarks.json")
    store.add(bookmark())
    before = store.path.read_text()

    def torn_write(self, text, encoding=None):  # half a file, then the disk is full
        with open(self, "w", encoding=encoding) as handle:
            handle.write(text[: len(text) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", torn_write)
    with pytest.raises(OSError):
        store.add(bookmark("second"))
    assert store.path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bookmarks.json"]


def test_a_damaged_store_is_set_aside_not_overwritten(tmp_path):
    path = tmp_path / "bookmarks.json"
    path.write_text("{not json")
    store = BookmarkStore(path)
    with pytest.raises(LatentFileError, match="not a JSON file.*kept as bookmarks.damaged.json") as error:
        store.load()
    assert "\n" not in str(error.value)
    assert (tmp_path / "bookmarks.damaged.json").read_text() == "{not json" and store.bookmarks == []
    store.add(bookmark())
    assert len(BookmarkStore(path).load()) == 1


@pytest.mark.parametrize("suffix", [".npy", ".json"])
def test_latent_files_round_trip(tmp_path, suffix):
    original = bookmark(dim=16)
    path = write_latent(tmp_path / f"latent{suffix}", original)
    loaded = read_latent(path, 16)
    assert np.array_equal(loaded.z, original.z) and loaded.z.shape == (16,)
    if suffix == ".npy":
        assert np.load(path).shape == (1, 16) and loaded.name == "latent"
    else:
        assert (loaded.name, loaded.seed, loaded.truncation, loaded.model_hash) == ("seed 3", 3, 0.7, "sha256:aa")


def test_a_flat_npy_vector_is_accepted(tmp_path):
    np.save(tmp_path / "flat.npy", np.arange(16, dtype=np.float64))
    assert np.array_equal(read_latent(tmp_path / "flat.npy", 16).z, np.arange(16, dtype=np.float32))


def bad_files(tmp_path):
    np.save(tmp_path / "short.npy", np.zeros(15))
    np.save(tmp_path / "nan.npy", np.full(16, np.nan))
    np.save(tmp_path / "matrix.npy", np.zeros((2, 16)))
    np.save(tmp_path / "words.npy", np.array(["a"] * 16))
    (tmp_path / "text.npy").write_text("hello")
    (tmp_path / "text.json").write_text("hello")
    (tmp_path / "nested.json").write_text(json.dumps({"z": [[1, 2], [3]]}))
    (tmp_path / "two.json").write_text(json.dumps({"bookmarks": [{"z": [0.0] * 16}, {"z": [1.0] * 16}]}))
    (tmp_path / "other.json").write_text(json.dumps({"something": 1}))
    (tmp_path / "latent.txt").write_text("1 2 3")
    return {
        "short.npy": "has 15 values, this model needs 16",
        "nan.npy": "NaN or infinite",
        "matrix.npy": "shape",
        "words.npy": "holds numbers",
        "text.npy": "not a NumPy .npy file",
        "text.json": "not a JSON file",
        "nested.json": "malformed bookmark",
        "two.json": "holds 2 latents",
        "other.json": "not a bookmark file",
        "latent.txt": "end in .npy or .json",
        "missing.npy": "no such file",
    }


def test_bad_latent_files_give_one_line_causes(tmp_path):
    for name, cause in bad_files(tmp_path).items():
        with pytest.raises(LatentFileError) as error:
            read_latent(tmp_path / name, 16)
        message = str(error.value)
        assert cause in message and name in message and "\n" not in message, message
