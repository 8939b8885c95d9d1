"""Bad input on the command line: non-zero exit, one line naming the cause, no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from reference_hagan import random_official_state, write_official_checkpoint
from test_volume import write_bad_niftis

ROOT = Path(__file__).resolve().parents[1]


def run_engine(*args):
    result = subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=ROOT, capture_output=True, text=True)
    return result.returncode, result.stderr.strip()


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    write_official_checkpoint(folder, 128, networks=("Generator",))
    g = (folder / "G_iter80000.pth").read_bytes()
    (folder / "truncated").mkdir()
    (folder / "truncated" / "G_iter1.pth").write_bytes(g[: len(g) // 3])
    (folder / "notes.pth").write_text("not weights\n")
    state = random_official_state(128, "Generator", seed=1)
    state["bn5.weight"] = torch.ones(65)
    torch.save({"model": state}, folder / "G_iter7.pth")
    write_bad_niftis(folder)
    return folder


def one_line_error(code, stderr, *expected):
    assert code != 0
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for text in expected:
        assert text in lines[0]


@pytest.mark.parametrize(
    "checkpoint, expected",
    [
        ("notes.pth", ["notes.pth", "not a PyTorch checkpoint"]),
        ("truncated", ["G_iter1.pth", "truncated"]),
        ("G_iter7.pth", ["'bn5.weight' has shape (65,)", "expects (64,)"]),
        ("missing_folder", ["missing_folder", "no such file"]),
    ],
)
def test_bad_checkpoints(bad_inputs, tmp_path, checkpoint, expected):
    code, stderr = run_engine(
        "sample", "--checkpoint", bad_inputs / checkpoint, "--resolution", "128", "--out", tmp_path / "x.nii.gz"
    )
    one_line_error(code, stderr, *expected)
    assert not (tmp_path / "x.nii.gz").exists()


@pytest.mark.parametrize(
    "volume, expected",
    [("nan.nii.gz", "NaN"), ("series.nii.gz", "shape (4, 4, 4, 3)"), ("truncated.nii.gz", "not a readable NIfTI")],
)
def test_bad_volumes(bad_inputs, volume, expected):
    one_line_error(*run_engine("info", "--volume", bad_inputs / volume), volume, expected)


def test_impossible_settings(bad_inputs, tmp_path):
    common = ["sample", "--checkpoint", bad_inputs / "G_iter80000.pth", "--resolution", "128"]
    one_line_error(
        *run_engine(*common, "--part", "slab", "--slab-start", "6", "--out", tmp_path / "s.nii"), "multiple of 4"
    )
    one_line_error(
        *run_engine(*common, "--seeds", "1-3", "--out", tmp_path / "x.nii"), "several seeds need an output folder"
    )
    one_line_error(*run_engine(*common, "--truncation", "2", "--out", tmp_path / "t.nii"), "truncation")
    one_line_error(*run_engine(*common, "--device", "cuda", "--out", tmp_path / "c.nii"), "not available")
    one_line_error(*run_engine(*common, "--out", tmp_path / "no" / "such" / "x.nii"), "does not exist")
    one_line_error(
        *run_engine("sample", "--checkpoint", bad_inputs / "G_iter80000.pth", "--out", tmp_path / "y.nii"), "resolution"
    )


def test_info_on_an_exported_volume(bad_inputs, tmp_path):
    out = tmp_path / "v.nii.gz"
    common = ["sample", "--checkpoint", bad_inputs, "--resolution", "128", "--seed", "9", "--part", "anchor"]
    code, _ = run_engine(*common, "--out", out)
    assert code == 0
    result = subprocess.run(
        [sys.executable, "-m", "engine", "info", "--volume", str(out)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "32 x 32 x 32 voxels" in result.stdout and "RAS" in result.stdout and "HU" in result.stdout
    assert "synthetic     yes" in result.stdout and "seed          9" in result.stdout
