"""Direction names without Qt: a damaged file is set aside and said in one line; a failed save changes nothing."""

from __future__ import annotations

import os

import pytest

import app.direction_names
from app.direction_names import DirectionNames


def test_a_damaged_file_is_set_aside_and_said_in_one_line(tmp_path):
    path = tmp_path / "directions.json"
    path.write_text('{"sha256:aa": {"0": "body size"')  # cut short
    names = DirectionNames(path)
    assert names.names("sha256:aa") == {}
    assert str(path) in names.problem and "not a JSON file" in names.problem and "\n" not in names.problem
    assert "kept as directions.damaged.json" in names.problem
    assert (tmp_path / "directions.damaged.json").read_text().startswith('{"sha256:aa"')
    names.rename("sha256:aa", 0, "width")
    assert DirectionNames(path).names("sha256:aa") == {0: "width"} and not DirectionNames(path).problem


def test_a_damaged_file_that_cannot_be_moved_aside_is_never_overwritten(tmp_path, monkeypatch):
    def read_only(source, target):
        raise OSError(30, "Read-only file system")

    path = tmp_path / "directions.json"
    path.write_text("[1, 2]")
    monkeypatch.setattr(os, "replace", read_only)  # every rename fails, as in a read-only folder
    names = DirectionNames(path)
    assert str(path) in names.problem and "Read-only file system" in names.problem and "\n" not in names.problem
    with pytest.raises(OSError):
        names.rename("sha256:aa", 0, "width")
    assert names.names("sha256:aa") == {} and path.read_text() == "[1, 2]"


def test_a_failed_save_keeps_the_names_as_they_are_on_disk(tmp_path, monkeypatch):
    path = tmp_path / "directions.json"
    names = DirectionNames(path)
    names.rename("sha256:aa", 0, "body size")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(app.direction_names, "atomic_write", full)
    for index, name in ((0, "width"), (0, ""), (1, "height")):
        with pytest.raises(OSError, match="No space left"):
            names.rename("sha256:aa", index, name)
        assert names.names("sha256:aa") == {0: "body size"}
    assert DirectionNames(path).names("sha256:aa") == {0: "body size"}
