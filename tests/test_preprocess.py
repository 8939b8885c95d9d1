"""Preprocessing: intensity windows, RAS reorientation, trimming, resampling, manifest, bad files, workers, resume."""

import argparse
import gzip
import json
import os

import nibabel as nib
import numpy as np
import pytest

from engine import __version__
from engine.data.preprocess import (
    MANIFEST,
    PreprocessSettings,
    preprocess_folder,
    preprocess_volume,
    register,
)
from engine.errors import ConfigError

LPS = np.diag([-1.5, -1.5, 2.0, 1.0])
LPS[:3, 3] = [40.0, 30.0, -20.0]


def write_nifti(path, array, affine=LPS, slope=None, inter=0.0):
    """A NIfTI file; with slope, the array is stored raw (int16) and scaled by scl_slope / scl_inter."""
    image = nib.Nifti1Image(array, affine)
    if slope is not None:
        image.header.set_slope_inter(slope, inter)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path


def ct_volume(shape=(16, 16, 16), seed=0):
    """HU values spread over the window, never constant."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1100, 700, size=shape).astype(np.float32)


def run_cli(*argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["preprocess", *map(str, argv)])
    return args.run(args)


def test_ct_window_maps_hu_to_minus_one_and_one_with_clipping_from_scaled_int16(tmp_path):
    raw = np.full((16, 16, 16), 300, dtype=np.int16)  # HU = 2 * raw - 1024
    markers = {(1, 2, 3): -488, (4, 5, 6): 0, (7, 8, 9): 406, (10, 11, 12): 812, (13, 14, 15): 2012}
    for index, value in markers.items():
        raw[index] = value
    path = write_nifti(tmp_path / "ct.nii", raw, np.eye(4), slope=2.0, inter=-1024.0)
    out, info = preprocess_volume(path, PreprocessSettings("ct", size=16))
    expected = {(1, 2, 3): -1.0, (4, 5, 6): -1.0, (7, 8, 9): 0.0, (10, 11, 12): 1.0, (13, 14, 15): 1.0}
    for (i, j, k), value in expected.items():  # -2000 HU, -1024, -212 (middle), 600, 3000 HU
        assert out[k, j, i] == pytest.approx(value, abs=1e-6)
    assert out[0, 0, 0] == pytest.approx((2 * 300 - 1024 + 1024) / 1624 * 2 - 1, abs=1e-6)
    assert out.dtype == np.float32 and out.min() == -1.0 and out.max() == 1.0
    assert info["window"] == [-1024.0, 600.0]


def test_custom_window_and_mri_percentiles_of_the_foreground(tmp_path):
    hu = ct_volume()
    out, info = preprocess_volume(write_nifti(tmp_path / "w.nii.gz", hu), PreprocessSettings("ct", (-500, 500), 16))
    assert info["window"] == [-500.0, 500.0]
    assert np.allclose(out, np.clip(hu / 500, -1, 1)[::-1, ::-1, :].transpose(2, 1, 0), atol=1e-6)

    rng = np.random.default_rng(1)
    mri = np.zeros((16, 16, 16), np.float32)
    mri[3:13, 3:13, 3:13] = rng.uniform(100, 1100, size=(10, 10, 10))
    out, info = preprocess_volume(
        write_nifti(tmp_path / "t1.nii.gz", mri, np.eye(4)), PreprocessSettings("mri", size=16)
    )
    # foreground: above min + 10% of the way to the 99.5th percentile (here about 110, so 100..110 is out)
    threshold = 0.1 * np.percentile(mri, 99.5)
    low, high = np.percentile(mri[mri > threshold], [0.5, 99.5])
    assert info["window"] == pytest.approx([low, high]) and info["percentiles"] == [0.5, 99.5]
    network = mri.transpose(2, 1, 0)
    assert np.allclose(out, np.clip((network - low) / (high - low) * 2 - 1, -1, 1), atol=1e-5)
    assert out[0, 0, 0] == -1.0 and (out == 1.0).sum() >= 1


@pytest.mark.parametrize(
    "columns, marker, expected, codes",
    [
        (np.diag([-1.5, -1.5, 2.0]), (2, 3, 5), (5, 12, 13), "LPS"),  # i, j flipped
        (np.array([[0, 1.0, 0], [0, 0, -1.5], [2.0, 0, 0]]), (2, 3, 5), (2, 10, 3), "SRP"),  # permuted axes
    ],
)
def test_marker_voxel_lands_at_the_ras_place_in_network_layout(tmp_path, columns, marker, expected, codes):
    hu = np.full((16, 16, 16), -1000.0, np.float32)
    hu[marker] = 500.0
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = columns, [12.0, -7.0, 3.0]
    out, info = preprocess_volume(write_nifti(tmp_path / "m.nii.gz", hu, affine), PreprocessSettings("ct", size=16))
    assert np.unravel_index(out.argmax(), out.shape) == expected  # (D, H, W) = (k, j, i) in RAS
    assert info["original_orientation"] == codes


def test_marker_moves_right_and_up_when_its_world_position_does(tmp_path):
    hu = np.full((16, 16, 16), -1000.0, np.float32)
    hu[6, 6, 6] = 500.0
    shifted = np.full_like(hu, -1000.0)
    shifted[5, 6, 7] = 500.0  # LPS: file i - 1 is 1.5 mm further right; k + 1 is 2 mm higher
    settings = PreprocessSettings("ct", size=16)
    a, _ = preprocess_volume(write_nifti(tmp_path / "a.nii", hu), settings)
    b, _ = preprocess_volume(write_nifti(tmp_path / "b.nii", shifted), settings)
    (da, ha, wa), (db, hb, wb) = (np.unravel_index(x.argmax(), x.shape) for x in (a, b))
    assert (db - da, hb - ha, wb - wa) == (1, 0, 1)  # superior -> larger D; right -> larger W


@pytest.mark.parametrize(
    "k_step, trimmed", [(2.0, {"inferior": 3, "superior": 2}), (-2.0, {"inferior": 2, "superior": 3})]
)
def test_trim_blank_drops_blank_end_slices_only(tmp_path, k_step, trimmed):
    hu = ct_volume((16, 16, 21))
    hu[:, :, :3] = -3000.0
    hu[:, :, 19:] = -1024.0
    hu[:, :, 10] = -2000.0  # an interior blank plane stays
    path = write_nifti(tmp_path / "t.nii.gz", hu, np.diag([1.0, 1.0, k_step, 1.0]))
    out, info = preprocess_volume(path, PreprocessSettings("ct", size=16, trim_blank=True))
    assert info["trimmed_slices"] == trimmed
    kept = hu[:, :, 3:19] if k_step > 0 else hu[:, :, 3:19][:, :, ::-1]
    assert np.allclose(out, np.clip((kept + 1024) / 1624 * 2 - 1, -1, 1).transpose(2, 1, 0), atol=1e-6)
    assert (out[7 if k_step > 0 else 8] == -1).all()
    assert info["output_spacing"] == [1.0, 1.0, 2.0]  # 16 kept slices x 2 mm over 16
    untrimmed, info = preprocess_volume(path, PreprocessSettings("ct", size=16))
    assert info["trimmed_slices"] == {"inferior": 0, "superior": 0} and untrimmed.shape == (16, 16, 16)
    assert info["output_spacing"] == [1.0, 1.0, 2.625]


def test_resampling_gives_the_cube_the_nominal_spacing_and_no_aliasing(tmp_path):
    i = np.arange(32)[:, None, None]
    hu = np.broadcast_to(-212.0 + 500.0 * (-1.0) ** i, (32, 24, 20)).astype(np.float32).copy()
    hu[:, :, :2] = 600.0  # keep a low-frequency feature
    path = write_nifti(tmp_path / "r.nii.gz", hu, np.diag([1.0, 2.0, 3.0, 1.0]))
    out, info = preprocess_volume(path, PreprocessSettings("ct", size=16))
    assert out.shape == (16, 16, 16) and info["output_shape"] == [16, 16, 16]
    assert info["output_spacing"] == [2.0, 3.0, 3.75]  # field of view / 16 per axis
    assert info["original_shape"] == [32, 24, 20] and info["original_spacing"] == [1.0, 2.0, 3.0]
    middle = out[4:12]
    assert np.abs(middle).max() < 0.1  # the alternating pattern averages out; nearest would give +-0.62
    assert out[0].mean() > 0.5  # the bright inferior slab survives


def test_cli_writes_float16_network_arrays_and_a_complete_manifest(tmp_path):
    write_nifti(tmp_path / "in" / "scan.v2.nii.gz", ct_volume(seed=1))
    raw = np.random.default_rng(2).integers(0, 800, size=(20, 18, 16)).astype(np.int16)
    write_nifti(tmp_path / "in" / "deep" / "ct_int16.nii", raw, np.diag([0.8, 0.9, 2.5, 1]), slope=2.0, inter=-1024.0)
    assert run_cli("--input", tmp_path / "in", "--out", tmp_path / "out", "--modality", "ct", "--size", 16) == 0
    arrays = {p.name: np.load(p) for p in (tmp_path / "out").glob("*.npy")}
    assert sorted(arrays) == ["ct_int16.npy", "scan.v2.npy"]
    assert all(a.dtype == np.float16 and a.shape == (16, 16, 16) for a in arrays.values())
    assert all(a.min() >= -1 and a.max() <= 1 for a in arrays.values())

    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["modality"] == "ct" and manifest["size"] == 16 and manifest["window"] == [-1024.0, 600.0]
    assert manifest["intensity"] == {"low": -1024.0, "high": 600.0, "unit": "HU", "kind": "window"}
    assert manifest["engine_version"] == __version__ and manifest["complete"] and manifest["count"] == 2
    entry = {e["name"]: e for e in manifest["files"]}["ct_int16"]
    assert entry["file"] == "ct_int16.npy" and entry["source"] == str((tmp_path / "in/deep/ct_int16.nii").resolve())
    assert entry["original_shape"] == [20, 18, 16] and entry["original_spacing"] == pytest.approx([0.8, 0.9, 2.5])
    assert entry["output_spacing"] == pytest.approx([1.0, 1.0125, 2.5])
    assert entry["window"] == [-1024.0, 600.0] and entry["trimmed_slices"] == {"inferior": 0, "superior": 0}
    assert manifest["skipped"] == []


def test_mri_manifest_records_percentiles(tmp_path):
    mri = np.zeros((16, 16, 16), np.float32)
    mri[4:12, 4:12, 4:12] = np.random.default_rng(3).uniform(50, 900, size=(8, 8, 8))
    write_nifti(tmp_path / "in" / "t1.nii.gz", mri)
    assert run_cli("--input", tmp_path / "in", "--out", tmp_path / "out", "--modality", "mri", "--size", 16) == 0
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["window"] == "percentile" and manifest["intensity"]["kind"] == "percentile"
    assert manifest["files"][0]["percentiles"] == [0.5, 99.5] and manifest["files"][0]["window"][0] > 50


def make_bad_files(folder):
    """One file of each unusable kind; returns {name: a word its cause must contain}."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "text.nii").write_text("this is not an image\n")
    good = write_nifti(folder / "tmp.nii.gz", ct_volume(seed=9))
    data = good.read_bytes()
    (folder / "truncated.nii.gz").write_bytes(data[: len(data) * 2 // 3])
    good.unlink()
    write_nifti(folder / "fourd.nii.gz", ct_volume((16, 16, 16, 2)))
    nan = ct_volume()
    nan[3, 3, 3] = np.nan
    write_nifti(folder / "nan.nii.gz", nan)
    write_nifti(folder / "constant.nii.gz", np.full((16, 16, 16), 40.0, np.float32))
    write_nifti(folder / "flat.nii", ct_volume((16, 16)))
    write_nifti(folder / "air.nii.gz", np.full((16, 16, 16), -2000.0, np.float32) + ct_volume() * 1e-3)
    return {
        "text.nii": "readable",
        "truncated.nii.gz": "readable",
        "fourd.nii.gz": "3-D",
        "nan.nii.gz": "NaN",
        "constant.nii.gz": "same value",
        "flat.nii": "3-D",
        "air.nii.gz": "below the intensity window",
    }


def test_bad_files_are_reported_by_name_and_skipped_while_good_ones_are_written(tmp_path, capsys):
    causes = make_bad_files(tmp_path / "in")
    write_nifti(tmp_path / "in" / "good.nii.gz", ct_volume())
    assert run_cli("--input", tmp_path / "in", "--out", tmp_path / "out", "--modality", "ct", "--size", 16) == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.npy")) == ["good.npy"]
    err = capsys.readouterr().err
    assert f"{len(causes)} file(s) skipped" in err
    lines = [line for line in err.splitlines() if line.startswith("  ")]
    for name, word in causes.items():
        line = next(line for line in lines if f"{os.sep}{name}:" in line)
        assert word in line
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert len(manifest["skipped"]) == len(causes) and manifest["count"] == 1


def test_no_usable_volume_is_a_one_line_config_error(tmp_path):
    make_bad_files(tmp_path / "in")
    with pytest.raises(ConfigError, match="no usable volumes in"):
        run_cli("--input", tmp_path / "in", "--out", tmp_path / "out", "--modality", "ct", "--size", 16)
    assert not (tmp_path / "out" / MANIFEST).exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no usable volumes"):
        run_cli("--input", tmp_path / "empty", "--out", tmp_path / "out", "--modality", "ct")
    with pytest.raises(ConfigError, match="no such folder"):
        run_cli("--input", tmp_path / "missing", "--out", tmp_path / "out", "--modality", "ct")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--size", "0"], "size"),
        (["--window", "600", "-1024"], "LOW < HIGH"),
        (["--workers", "0"], "workers"),
    ],
)
def test_bad_settings_raise_config_errors(tmp_path, argv, message):
    write_nifti(tmp_path / "in" / "a.nii.gz", ct_volume())
    with pytest.raises(ConfigError, match=message) as caught:
        run_cli("--input", tmp_path / "in", "--out", tmp_path / "out", "--modality", "ct", *argv)
    assert "\n" not in str(caught.value)


def test_parallel_run_equals_serial_run(tmp_path):
    for n in range(4):
        write_nifti(tmp_path / "in" / f"v{n}.nii.gz", ct_volume((18, 16, 20), seed=n), np.diag([1.0, 1.1, 0.9, 1]))
    (tmp_path / "in" / "broken.nii").write_text("no")
    settings = PreprocessSettings("ct", size=16, trim_blank=True)
    serial = preprocess_folder(tmp_path / "in", tmp_path / "serial", settings, workers=1, progress=False)
    parallel = preprocess_folder(tmp_path / "in", tmp_path / "parallel", settings, workers=2, progress=False)
    assert sorted(serial.written) == sorted(parallel.written) == ["v0", "v1", "v2", "v3"]
    assert serial.skipped == parallel.skipped and len(serial.skipped) == 1
    for name in serial.written:
        assert (tmp_path / "serial" / f"{name}.npy").read_bytes() == (
            tmp_path / "parallel" / f"{name}.npy"
        ).read_bytes()
    a, b = (json.loads((tmp_path / d / MANIFEST).read_text()) for d in ("serial", "parallel"))
    assert a["files"] == b["files"] and a["settings"] == b["settings"]


def test_resume_keeps_unchanged_outputs_and_redoes_changed_ones(tmp_path):
    for n in range(2):
        write_nifti(tmp_path / "in" / f"v{n}.nii.gz", ct_volume(seed=n))
    settings = PreprocessSettings("ct", size=16)
    first = preprocess_folder(tmp_path / "in", tmp_path / "out", settings, workers=1, progress=False)
    stamp = (tmp_path / "out" / "v0.npy").stat().st_mtime_ns
    again = preprocess_folder(tmp_path / "in", tmp_path / "out", settings, workers=1, progress=False)
    assert sorted(first.written) == sorted(again.reused) == ["v0", "v1"] and again.written == []
    assert (tmp_path / "out" / "v0.npy").stat().st_mtime_ns == stamp
    write_nifti(tmp_path / "in" / "v1.nii.gz", ct_volume(seed=7))
    changed = preprocess_folder(tmp_path / "in", tmp_path / "out", settings, workers=1, progress=False)
    assert changed.written == ["v1"] and changed.reused == ["v0"]
    other = preprocess_folder(tmp_path / "in", tmp_path / "out", PreprocessSettings("ct", size=8), 1, False)
    assert sorted(other.written) == ["v0", "v1"] and np.load(tmp_path / "out" / "v0.npy").shape == (8, 8, 8)


def test_same_file_names_in_different_folders_get_distinct_outputs(tmp_path):
    write_nifti(tmp_path / "in" / "a" / "scan.nii.gz", ct_volume(seed=1))
    write_nifti(tmp_path / "in" / "b" / "scan.nii.gz", ct_volume(seed=2))
    write_nifti(tmp_path / "in" / ".hidden" / "skip.nii.gz", ct_volume(seed=3))
    report = preprocess_folder(tmp_path / "in", tmp_path / "out", PreprocessSettings("ct", size=16), 1, False)
    assert sorted(report.written) == ["a__scan", "b__scan"] and report.skipped == []


def test_gzip_truncation_fixture_really_is_truncated(tmp_path):
    causes = make_bad_files(tmp_path)
    assert "truncated.nii.gz" in causes
    with pytest.raises(EOFError), gzip.open(tmp_path / "truncated.nii.gz") as handle:
        handle.read()
