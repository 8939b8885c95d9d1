"""``python -m engine encode`` and the preprocessing it shares with the app's encode panel."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from app_support import make_tiny_model

from engine.checkpoints import load_model
from engine.cli import main
from engine.encode import encode_scan, prepare_for_model, settings_for_card
from engine.generate import SampleRequest, sample_volume
from engine.nifti import load_nifti, save_nifti
from engine.volume import Volume


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A tiny encoder model and a CT scan in HU written from one of its samples."""
    folder = tmp_path_factory.mktemp("encode")
    model_file = make_tiny_model(folder / "tiny.safetensors")
    volume = sample_volume(load_model(model_file), SampleRequest(seed=3))
    return model_file, save_nifti(volume, folder / "scan.nii.gz"), volume


def run(capsys, *args) -> tuple[int, str]:
    code = main(["encode", *map(str, args)])
    return code, capsys.readouterr().err.strip()


def test_encode_writes_the_latent_and_the_reconstruction(scan, tmp_path, capsys):
    model_file, path, _ = scan
    z_file, rebuilt = tmp_path / "z.npy", tmp_path / "rec.nii.gz"
    code, err = run(capsys, "--model", model_file, "--volume", path, "--out", z_file, "--reconstruction", rebuilt)
    assert code == 0, err
    z = np.load(z_file)
    assert z.shape == (1, 16) and z.dtype == np.float32 and np.isfinite(z).all()
    volume = load_nifti(rebuilt)
    assert volume.array.shape == (32, 32, 32) and volume.intensity.unit == "HU"
    assert volume.provenance["synthetic"] and "PSNR" in err and "dB" in err


@pytest.mark.parametrize("bad", ["flat", "missing"])
def test_bad_scans_exit_2_with_one_line(scan, tmp_path, capsys, bad):
    model_file, _, _ = scan
    path = tmp_path / f"{bad}.nii.gz"
    if bad == "flat":
        nib.save(nib.Nifti1Image(np.ones((8, 8), np.float32), np.eye(4)), path)
    code, err = run(capsys, "--model", model_file, "--volume", path, "--out", tmp_path / "z.npy")
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and str(path) in err
    assert ("3-D" in err) if bad == "flat" else ("no such file" in err)
    assert not (tmp_path / "z.npy").exists()


def test_bad_output_names_are_refused_before_any_work(scan, tmp_path, capsys):
    model_file, path, _ = scan
    code, err = run(capsys, "--model", model_file, "--volume", path, "--out", tmp_path / "z.txt")
    assert code == 2 and ".npy" in err
    code, err = run(capsys, "--model", model_file, "--volume", path, "--out", tmp_path / "none" / "z.npy")
    assert code == 2 and "does not exist" in err


def test_prepare_for_model_reorients_maps_and_resamples(scan):
    model_file, path, volume = scan
    card = load_model(model_file).card
    assert settings_for_card(card).window == (card.intensity.low, card.intensity.high)
    prepared = prepare_for_model(path, card)
    assert prepared.shape == (1, 1, 32, 32, 32) and prepared.dtype == torch.float32
    # a 32^3 sample in the model's own window comes back as the generator made it
    assert torch.allclose(prepared[0, 0], volume.to_network()[0, 0].clamp(-1, 1), atol=1e-4)
    # the same scan stored left-right flipped (LAS) gives the same RAS volume
    flipped_affine = volume.affine @ np.diag([-1.0, 1.0, 1.0, 1.0])
    flipped_affine[0, 3] = volume.affine[0, 3] + volume.affine[0, 0] * 31
    flipped = nib.Nifti1Image(volume.array[::-1].copy(), flipped_affine)
    from_volume = prepare_for_model(Volume(flipped.get_fdata(), flipped.affine), card)
    assert torch.allclose(from_volume, prepared, atol=1e-4)
    # a larger scan is resampled to the model's resolution
    big = Volume(np.kron(volume.array, np.ones((2, 2, 2), np.float32)), volume.affine)
    assert prepare_for_model(big, card).shape == (1, 1, 32, 32, 32)


def test_encode_scan_reports_round_trip_metrics(scan):
    model_file, path, _ = scan
    model = load_model(model_file)
    encoding = encode_scan(model, prepare_for_model(path, model.card))
    assert encoding.z.shape == (1, 16) and encoding.reconstruction.shape == (1, 1, 32, 32, 32)
    metrics = encoding.metrics
    for region in ("", "foreground_"):
        for kind in ("", "blank_", "mean_"):
            for key in ("psnr", "ssim", "nmse"):
                assert np.isfinite(metrics[f"{region}{kind}{key}"]), f"{region}{kind}{key}"
    assert 0 < metrics["foreground_fraction"] < 1


def test_encode_prints_foreground_metrics_next_to_constant_baselines(scan, tmp_path, capsys):
    model_file, path, _ = scan
    code, err = run(
        capsys,
        "--model",
        model_file,
        "--volume",
        path,
        "--out",
        tmp_path / "z.npy",
        "--reconstruction",
        tmp_path / "rec.nii.gz",
    )
    assert code == 0, err
    volume_line = next(line for line in err.splitlines() if line.strip().startswith("volume:"))
    foreground_line = next(line for line in err.splitlines() if line.strip().startswith("foreground"))
    for line in (volume_line, foreground_line):
        assert "PSNR" in line and "SSIM" in line and "blank: PSNR" in line and "mean: PSNR" in line
    assert "data range 1" in err


def test_a_scan_outside_the_window_is_refused_as_nearly_constant(scan, tmp_path, capsys):
    """A [0, 1]-valued scan given to a CT model: every voxel within 1 HU, so a blank input."""
    model_file, _, _ = scan
    values = np.random.default_rng(0).uniform(0.0, 1.0, (24, 24, 24)).astype(np.float32)
    path = tmp_path / "unit.nii.gz"
    nib.save(nib.Nifti1Image(values, np.eye(4)), path)
    code, err = run(capsys, "--model", model_file, "--volume", path, "--out", tmp_path / "z.npy")
    assert code == 2 and len(err.splitlines()) == 1 and "nearly constant" in err and str(path) in err
    assert not (tmp_path / "z.npy").exists()


def test_a_scan_far_above_the_window_gives_a_one_line_warning(scan, tmp_path, capsys):
    model_file, _, volume = scan
    array = volume.array.copy()
    array[:, :, 16:] = 3000.0  # half the scan far above the model's 600 HU
    bright = Volume(array, volume.affine, volume.intensity)
    path = save_nifti(bright, tmp_path / "bright.nii.gz")
    code, err = run(capsys, "--model", model_file, "--volume", path, "--out", tmp_path / "z.npy")
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert code == 0 and len(warnings) == 1 and "top of the window" in warnings[0]
