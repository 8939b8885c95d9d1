"""Latent bookmarks and latent files, without Qt: round trips, atomic saves, and every kind of bad file."""

from __future__ import annotations

import json
import os
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


def counting_writes(monkeypatch) -> list[Path]:
    """Every file the bookmark store writes, in order."""
    import app.bookmarks

    written: list[Path] = []

    def counted(path, write, *args, **kwargs):
        written.append(Path(path))
        return atomic_write(path, write, *args, **kwargs)

    atomic_write = app.bookmarks.atomic_write
    monkeypatch.setattr(app.bookmarks, "atomic_write", counted)
    return written


def test_a_selection_of_64_is_saved_in_one_write_one_bookmark_per_line(tmp_path, monkeypatch):
    store = BookmarkStore(tmp_path / "bookmarks.json")
    store.add_all([bookmark(f"old {n}", dim=512, seed=n) for n in range(100)])
    written = counting_writes(monkeypatch)
    selection = [bookmark(f"seed {n}", dim=512, seed=n) for n in range(64)]
    store.add_all(selection)
    assert written == [store.path]
    again = BookmarkStore(store.path).load()
    assert [b.name for b in again[100:]] == [f"seed {n}" for n in range(64)]
    assert all(np.array_equal(a.z, b.z) for a, b in zip(again[100:], selection, strict=True))  # bit for bit
    text = store.path.read_text()
    assert len(text.splitlines()) == 164 + 2  # a header, a bookmark (its whole latent) per line, a closing line
    assert len(text) / (164 * 512) < 16  # bytes per latent number (one number per line took about 25)


def test_latents_round_trip_bit_for_bit_over_every_float32_magnitude(tmp_path):
    bits = np.random.default_rng(1).integers(0, 2**32, 20_000, dtype=np.uint64).astype(np.uint32)
    z = bits.view(np.float32)
    z = np.concatenate([z[np.isfinite(z)], np.finfo(np.float32).max, np.finfo(np.float32).tiny, -0.0], axis=None)
    store = BookmarkStore(tmp_path / "bookmarks.json")
    store.add(Bookmark("edges", z.astype(np.float32)))
    assert np.array_equal(BookmarkStore(store.path).load()[0].z.view(np.uint32), z.view(np.uint32))


def test_a_store_written_with_one_number_per_line_still_reads(tmp_path):
    old = [bookmark(), bookmark("other", seed=4)]
    document = {"format": "gan-volume-explorer/bookmarks", "version": 1, "bookmarks": [b.to_dict() for b in old]}
    for values, b in zip(document["bookmarks"], old, strict=True):
        values["z"] = [float(x) for x in b.z]  # 17 digits, as such files hold them
    (tmp_path / "bookmarks.json").write_text(json.dumps(document, indent=1))
    loaded = BookmarkStore(tmp_path / "bookmarks.json").load()
    assert [b.name for b in loaded] == ["seed 3", "other"] and np.array_equal(loaded[1].z, old[1].z)


def failing_saves(monkeypatch) -> None:
    """The disk is full from now on (chmod would not stop a test run as root)."""
    import app.bookmarks

    def full(path, write, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(app.bookmarks, "atomic_write", full)


def test_a_failed_save_leaves_the_list_as_it_is_on_disk(tmp_path, monkeypatch):
    store = BookmarkStore(tmp_path / "bookmarks.json")
    kept = store.add(bookmark("kept"))
    before = store.path.read_text()
    failing_saves(monkeypatch)
    for change in (
        lambda: store.add(bookmark("lost")),
        lambda: store.add_all([bookmark("a"), bookmark("b")]),
        lambda: store.rename(kept.id, "renamed"),
        lambda: store.remove(kept.id),
    ):
        with pytest.raises(OSError, match="No space left"):
            change()
        assert [(b.id, b.name) for b in store.bookmarks] == [(kept.id, "kept")]
    assert store.path.read_text() == before


def test_a_damaged_store_that_cannot_be_moved_aside_is_never_overwritten(tmp_path, monkeypatch):

    def read_only(source, target):
        raise OSError(30, "Read-only file system")

    path = tmp_path / "bookmarks.json"
    path.write_text("{not json")
    monkeypatch.setattr(os, "replace", read_only)  # every rename fails, as in a read-only folder
    store = BookmarkStore(path)
    with pytest.raises(LatentFileError) as error:
        store.load()
    message = str(error.value)
    assert str(path) in message and "not a JSON file" in message and "Read-only file system" in message
    assert "\n" not in message and store.bookmarks == []
    with pytest.raises(OSError):
        store.add(bookmark())
    assert store.bookmarks == [] and path.read_text() == "{not json"


def test_a_second_damaged_store_keeps_the_first_one_set_aside(tmp_path):
    path = tmp_path / "bookmarks.json"
    for text in ("{first", "{second"):
        path.write_text(text)
        with pytest.raises(LatentFileError, match="kept as bookmarks.damaged"):
            BookmarkStore(path).load()
    assert (tmp_path / "bookmarks.damaged.json").read_text() == "{first"
    assert (tmp_path / "bookmarks.damaged-2.json").read_text() == "{second"


def test_a_volume_picked_as_a_latent_is_refused_without_reading_it(tmp_path):
    import tracemalloc

    volume = np.lib.format.open_memmap(tmp_path / "ct.npy", mode="w+", dtype=np.float32, shape=(256, 256, 256))
    volume.flush()  # 64 MB on disk (sparse where the file system allows)
    del volume
    tracemalloc.start()
    try:
        with pytest.raises(LatentFileError) as error:
            read_latent(tmp_path / "ct.npy", 16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(error.value)
    assert "ct.npy" in message and "(256, 256, 256)" in message and "\n" not in message
    assert peak < 1_000_000  # bytes: the header was read, not the 64 MB of voxels
