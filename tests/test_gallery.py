"""Seed thumbnails and contact sheets: the right slice of the right seed, cached, on the requested grid."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from app_support import make_tiny_model, make_tiny_split_shuffle_model
from PIL import Image

from engine.checkpoints import load_model
from engine.cli import main
from engine.device import cpu_has_bf16
from engine.errors import ConfigError
from engine.gallery import (
    ThumbnailCache,
    ThumbnailMaker,
    ThumbnailSpec,
    anchor_index,
    cell_origin,
    contact_sheet,
    cut,
    window_image,
)
from engine.generate import GenerationOptions, SampleRequest, sample_volume

HU_ROUNDING = 0.05  # float32 rounding of [-1, 1] scaled by 812 HU


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("gallery") / "tiny.safetensors")


@pytest.fixture(scope="module")
def tiny(tiny_file):
    return load_model(tiny_file, device="cpu", parts=("G",))


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_thumbnails_are_the_seeds_slices_of_the_full_volume_and_of_the_anchor(tiny, plane):
    maker = ThumbnailMaker(tiny)
    full = list(maker.make([3, 7], ThumbnailSpec(plane, 0.25, "full"), batch_size=2))
    anchors = list(maker.make([3, 7], ThumbnailSpec(plane, 0.25, "anchor")))
    assert [t.seed for t in full] == [3, 7] and [t.level for t in anchors] == ["anchor", "anchor"]
    index = round(0.25 * 31)
    for seed, thumbnail, anchor in zip((3, 7), full, anchors):
        volume = sample_volume(tiny, SampleRequest(seed, "full"))
        np.testing.assert_allclose(
            thumbnail.image, cut(volume.array, plane, index), atol=0.05
        )  # HU: float32 rounding x 812
        low = sample_volume(tiny, SampleRequest(seed, "anchor"))
        np.testing.assert_allclose(
            anchor.image, cut(low.array, plane, anchor_index(index, 8)), atol=0.05
        )  # HU: float32 rounding x 812
    assert not np.allclose(full[0].image, full[1].image)  # two seeds, two pictures


def test_a_revisit_returns_identical_thumbnails_from_memory_and_from_disk_without_generating(tiny, tmp_path):
    spec = ThumbnailSpec("coronal", 0.5, "full", truncation=0.8)
    maker = ThumbnailMaker(tiny, ThumbnailCache(tmp_path / "cache"))
    first = list(maker.make([1, 2, 3], spec))

    def no_generation(*_args):
        raise AssertionError("a cached thumbnail was generated again")

    next_session = ThumbnailMaker(tiny, ThumbnailCache(tmp_path / "cache"))  # empty memory: from disk
    for revisit in (maker, next_session):
        revisit._generate = no_generation
        again = list(revisit.make([1, 2, 3], spec))
        for a, b in zip(first, again):
            assert a.seed == b.seed and np.array_equal(a.image, b.image) and a.pixel_mm == b.pixel_mm
    other = ThumbnailMaker(tiny, ThumbnailCache(tmp_path / "cache"))
    assert other.cached(1, ThumbnailSpec("coronal", 0.5, "full", truncation=1.0)) is None  # truncation is in the key
    assert other.cached(1, ThumbnailSpec("axial", 0.5, "full", truncation=0.8)) is None  # so is the plane


def test_the_memory_cache_stays_within_its_byte_bound_dropping_the_least_recently_used(tiny):
    bound = 3 * 32 * 32 * 4  # three full-resolution 32^2 float32 thumbnails
    cache = ThumbnailCache(memory_bytes=bound)
    maker = ThumbnailMaker(tiny, cache)
    spec = ThumbnailSpec()
    list(maker.make([0, 1, 2], spec))
    assert maker.cached(0, spec, memory_only=True) is not None  # seed 0 is now the most recent
    list(maker.make([3], spec))
    assert cache.used_bytes <= bound
    assert maker.cached(1, spec, memory_only=True) is None and maker.cached(0, spec, memory_only=True) is not None


def test_split_shuffle_models_give_full_resolution_thumbnails_when_asked_for_anchors(tmp_path):
    model = load_model(make_tiny_split_shuffle_model(tmp_path / "ss.safetensors"), device="cpu")
    (thumbnail,) = ThumbnailMaker(model).make([5], ThumbnailSpec(level="anchor"))
    assert thumbnail.level == "full" and thumbnail.image.shape == (32, 32)


def test_windowing_maps_the_window_to_black_through_white():
    image = np.array([[-2000.0, -600.0, 0.0, 150.0, 900.0]])
    assert window_image(image, 1500, 150).tolist() == [[0, 0, 102, 128, 255]]  # low -600, high 900


def test_cli_contact_sheet_has_the_requested_grid_with_every_seed_and_no_more(tiny_file, tmp_path):
    out = tmp_path / "sheet.png"
    args = ["gallery", "--checkpoint", str(tiny_file), "--seeds", "0-4", "--columns", "2", "--cell", "48"]
    assert main([*args, "--plane", "sagittal", "--window", "400,40", "--out", str(out)]) == 0
    sheet = np.asarray(Image.open(out).convert("RGB")).astype(int)
    width, height = cell_origin(5, 2, 48)[0] + 48 + 4, cell_origin(5, 2, 48)[1] + 48 + 4
    assert sheet.shape[:2] == (height, width)  # 2 columns x 3 rows
    background = sheet[-2, -2]

    def cell(number):
        x, y = cell_origin(number, 2, 48)
        return sheet[y : y + 48, x : x + 48]

    for number in range(5):
        assert (np.abs(cell(number) - background).sum(axis=2) > 30).mean() > 0.2, f"cell {number} is empty"
    assert (np.abs(cell(5) - background).sum(axis=2) > 30).mean() == 0  # the sixth place stays empty


def test_contact_sheet_labels_each_cell_with_its_seed_and_synthetic():
    from engine.gallery import Thumbnail

    blank = Thumbnail(0, "full", np.zeros((40, 40), np.float32), (1.0, 1.0))
    sheet = np.asarray(contact_sheet([blank], (1.0, 0.0), columns=1, cell=128))
    red = (sheet[..., 0] > 200) & (sheet[..., 1] < 120)
    x, y = cell_origin(0, 1, 128)
    assert red[y : y + 20, x + 64 : x + 128].any()  # SYNTHETIC, top right of the cell
    assert (sheet[y + 100 : y + 128, x : x + 64] > 200).any()  # "seed 0", bottom left


@pytest.mark.parametrize(
    ("argument", "cause"),
    [(["--out", "x.jpg"], "PNG"), (["--plane", "oblique"], "invalid choice"), (["--window", "a,b"], "W,L")],
)
def test_cli_refuses_bad_input_in_one_line(tiny_file, tmp_path, capsys, argument, cause):
    args = ["gallery", "--checkpoint", str(tiny_file), "--out", str(tmp_path / "s.png"), *argument]
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    assert code == 2 and cause in capsys.readouterr().err


def test_thumbnails_are_made_in_the_precision_asked_for_and_refused_where_it_would_be_emulated(tiny, monkeypatch):
    exact = ThumbnailSpec("axial", 0.5, "full")
    maker = ThumbnailMaker(tiny, ThumbnailCache(memory_bytes=1 << 20))
    assert maker.precision(exact) == "fp32"  # auto on the CPU: exact
    if cpu_has_bf16():
        fast = replace(exact, precision="bf16")
        (thumbnail,) = maker.make([4], fast)
        (reference,) = maker.make([4], exact)
        bf16 = sample_volume(tiny, SampleRequest(4, "full"), GenerationOptions(precision="bf16"))
        np.testing.assert_allclose(thumbnail.image, cut(bf16.array, "axial", round(0.5 * 31)), atol=0.05)
        assert np.abs(thumbnail.image - reference.image).max() > 0.5  # HU: bf16 rounding, not the exact slice
        assert maker.cached(4, fast) is thumbnail and maker.cached(4, exact) is reference  # each under its own key
    monkeypatch.setattr("engine.precision.cpu_has_bf16", lambda: False)
    with pytest.raises(ConfigError, match="emulated"):
        list(ThumbnailMaker(tiny).make([4], ThumbnailSpec(precision="bf16")))
