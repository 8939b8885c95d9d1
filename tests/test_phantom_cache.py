"""The phantom cache: phantoms made once, kept on disk memory-mapped, shared by runs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.checkpoints import read_model_card
from engine.cli import main
from engine.data import phantom_cache
from engine.data.phantom_cache import CachedPhantomDataset, PhantomCache
from engine.data.phantoms import PhantomDataset
from engine.data.phantoms import cli as phantom_cli
from engine.metrics.realset import find_real_set


def test_a_cached_phantom_is_the_one_made_directly_in_float16(tmp_path, tiny_model_file):
    direct = PhantomDataset("chest-ct", 32, 2, base_seed=40)
    cached = CachedPhantomDataset("chest-ct", 32, 2, 40, tmp_path)
    for index in range(2):
        volume, label = cached[index]
        expected, _ = direct[index]
        assert volume.dtype == torch.float32 and volume.shape == expected.shape == (1, 32, 32, 32)
        assert torch.equal(volume, expected.half().float()) and label == -1
    stored = np.load(cached.cache.path(41), mmap_mode="r")
    assert isinstance(stored, np.memmap) and stored.dtype == np.float16
    # the folder is a real set for `engine evaluate`: the same values again
    real = find_real_set(cached.cache.link(range(40, 42), tmp_path / "held-out"))
    card = read_model_card(tiny_model_file)  # a 32^3 model: the arrays are used as stored
    assert card.config.resolution == 32
    assert torch.equal(real.load(1, card)[0], direct[1][0].half().float())


def train(run, cache, *extra):
    progress = run.parent / f"{run.name}.jsonl"
    args = ["train", "--phantoms", "brain-mri", "--resolution", "32", "--preset", "tiny", "--batch-size", "2"]
    args += ["--phantom-count", "3", "--iterations", "1", "--phantom-cache", str(cache), "--out", str(run)]
    assert main([*args, *extra, "--progress-json", str(progress)]) == 0
    return [json.loads(line) for line in progress.read_text().splitlines()]


def test_a_second_run_and_a_resume_make_no_phantom(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    train(tmp_path / "first", cache, "--workers", "1")  # all made at the start
    folder = PhantomCache(cache, "brain-mri", 32).folder
    assert sorted(p.name for p in folder.glob("*.npy")) == ["0.npy", "1.npy", "2.npy"]

    def refuse(*args):
        raise AssertionError("a phantom was made again")

    monkeypatch.setattr(phantom_cache, "make_phantom", refuse)
    events = train(tmp_path / "second", cache)  # another run on the same phantoms
    assert events[-1]["event"] == "finished"
    assert main(["train", "--resume", str(tmp_path / "first"), "--iterations", "2"]) == 0


def test_the_cache_is_keyed_by_kind_size_and_generator_version(tmp_path):
    folders = {PhantomCache(tmp_path, kind, size).folder for kind in ("chest-ct", "brain-mri") for size in (32, 64)}
    assert len(folders) == 4 and all(f.parent == tmp_path for f in folders)
    with pytest.raises(Exception, match="phantom size must be a power of two"):
        PhantomCache(tmp_path, "chest-ct", 48)


@pytest.mark.parametrize("module", phantom_cache.GENERATOR_MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_a_change_to_any_generating_module_moves_the_cache_to_a_new_folder(tmp_path, monkeypatch, module):
    before = {kind: PhantomCache(tmp_path, kind, 32).folder for kind in ("chest-ct", "brain-mri")}
    edited = tmp_path / "edited.py"
    edited.write_bytes(Path(module.__file__).read_bytes() + b"\n# changed\n")
    monkeypatch.setattr(module, "__file__", str(edited))
    phantom_cache.generator_version.cache_clear()
    try:
        after = {kind: PhantomCache(tmp_path, kind, 32).folder for kind in ("chest-ct", "brain-mri")}
    finally:
        phantom_cache.generator_version.cache_clear()
    assert all(after[kind] != before[kind] for kind in before)


def test_the_command_line_module_does_not_move_the_cache(tmp_path, monkeypatch):
    before = PhantomCache(tmp_path, "chest-ct", 32).folder
    edited = tmp_path / "cli.py"
    edited.write_bytes(Path(phantom_cli.__file__).read_bytes() + b"\n# changed\n")
    monkeypatch.setattr(phantom_cli, "__file__", str(edited))
    phantom_cache.generator_version.cache_clear()
    try:
        assert PhantomCache(tmp_path, "chest-ct", 32).folder == before
    finally:
        phantom_cache.generator_version.cache_clear()
