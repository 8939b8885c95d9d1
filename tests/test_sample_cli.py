"""`python -m engine sample` on official-format files equals an independent reference forward pass."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from reference_hagan import reference_eval, reference_train, write_official_checkpoint

from engine.card import ModelCard
from engine.checkpoints import save_model
from engine.cli import main
from engine.latent import seed_to_z
from engine.model import HAGANModel
from engine.models.hagan import HAGANConfig

TOLERANCE = 1e-4


def network_array(path):
    """A written NIfTI back in network layout (D, H, W)."""
    return np.asarray(nib.load(str(path)).dataobj, dtype=np.float32).transpose(2, 1, 0)


def sample(tmp_path, checkpoint, *extra, name="out.nii.gz"):
    out = tmp_path / name
    args = ["sample", "--checkpoint", str(checkpoint), *extra, "--intensity", "raw", "--out", str(out), "--force"]
    assert main(args) == 0  # --force: the tests reuse one file name
    return network_array(out)


@pytest.fixture(scope="module")
def official_128(tmp_path_factory):
    folder = tmp_path_factory.mktemp("official128")
    states = write_official_checkpoint(folder, 128, networks=("Generator",))
    return folder, states["G"]


def test_full_anchor_and_slab_equal_the_reference_at_128(tmp_path, official_128):
    folder, g = official_128
    z = seed_to_z(7, 1024)
    full = sample(tmp_path, folder, "--resolution", "128", "--seed", "7", "--part", "full")
    assert full.shape == (128, 128, 128)
    assert np.abs(full - reference_eval(g, z, 128)[0, 0].numpy()).max() < TOLERANCE
    assert full.std() > 0.05  # a real volume, not a constant

    for crop in (0, 36, 112):
        slab_ref, low_ref = reference_train(g, z, 128, crop)
        slab = sample(
            tmp_path, folder, "--resolution", "128", "--seed", "7", "--part", "slab", "--slab-start", str(crop)
        )
        assert slab.shape == (16, 128, 128)
        assert np.abs(slab - slab_ref[0, 0].numpy()).max() < TOLERANCE
    anchor = sample(tmp_path, folder, "--resolution", "128", "--seed", "7", "--part", "anchor")
    assert anchor.shape == (32, 32, 32)
    assert np.abs(anchor - low_ref[0, 0].numpy()).max() < TOLERANCE


def test_stitched_is_eight_reference_slabs(tmp_path, official_128):
    folder, g = official_128
    z = seed_to_z(3, 1024)
    stitched = sample(tmp_path, folder, "--resolution", "128", "--seed", "3", "--part", "stitched")
    expected = torch.cat([reference_train(g, z, 128, 16 * k)[0] for k in range(8)], dim=2)[0, 0].numpy()
    assert np.abs(stitched - expected).max() < TOLERANCE


def test_physical_intensity_is_the_ct_window_and_carries_geometry(tmp_path, official_128):
    folder, g = official_128
    out = tmp_path / "hu.nii.gz"
    assert main(["sample", "--checkpoint", str(folder), "--resolution", "128", "--seed", "7", "--out", str(out)]) == 0
    hu = network_array(out)
    raw = reference_eval(g, seed_to_z(7, 1024), 128)[0, 0].numpy()
    assert np.abs(hu - ((raw + 1) / 2 * 1624 - 1024)).max() < 0.2
    image = nib.load(str(out))
    assert not np.allclose(image.affine, np.eye(4))  # nominal spacing, centred; never identity by accident
    assert b"SYNTHETIC" in image.header["descrip"].tobytes()
    sidecar = json.loads((tmp_path / "hu.json").read_text())
    assert sidecar["synthetic"] is True and sidecar["provenance"]["seed"] == 7
    assert sidecar["intensity"]["unit"] == "HU" and sidecar["provenance"]["model_hash"].startswith("sha256:")


def test_seed_lists_write_one_file_per_seed(tmp_path, official_128):
    folder, g = official_128
    out = tmp_path / "many"
    args = ["sample", "--checkpoint", str(folder), "--resolution", "128", "--seeds", "2,5-6", "--part", "anchor"]
    assert main([*args, "--intensity", "raw", "--out", str(out)]) == 0
    files = sorted(p.name for p in out.glob("*.nii.gz"))
    assert files == ["seed0002_anchor.nii.gz", "seed0005_anchor.nii.gz", "seed0006_anchor.nii.gz"]
    five = network_array(out / "seed0005_anchor.nii.gz")
    assert np.abs(five - reference_train(g, seed_to_z(5, 1024), 128, 0)[1][0, 0].numpy()).max() < TOLERANCE


def test_truncation_scales_the_latent_toward_zero(tmp_path, official_128):
    folder, g = official_128
    truncated = sample(
        tmp_path, folder, "--resolution", "128", "--seed", "4", "--part", "anchor", "--truncation", "0.5"
    )
    expected = reference_train(g, 0.5 * seed_to_z(4, 1024), 128, 0)[1][0, 0].numpy()
    assert np.abs(truncated - expected).max() < TOLERANCE


def test_conditional_official_model_uses_the_class_label(tmp_path):
    write_official_checkpoint(tmp_path, 128, num_class=3, networks=("Generator",))
    g = torch.load(tmp_path / "G_iter80000.pth", weights_only=True)["model"]
    g = {k.removeprefix("module."): v for k, v in g.items()}
    anchor = sample(tmp_path, tmp_path, "--resolution", "128", "--seed", "1", "--part", "anchor", "--class-label", "2")
    onehot = torch.tensor([[0.0, 0.0, 1.0]])
    expected = reference_train(g, seed_to_z(1, 1024), 128, 0, onehot)[1][0, 0].numpy()
    assert np.abs(anchor - expected).max() < TOLERANCE


@pytest.mark.slow
def test_full_anchor_and_slab_equal_the_reference_at_256(tmp_path):
    states = write_official_checkpoint(tmp_path, 256, networks=("Generator",))
    g, z = states["G"], seed_to_z(11, 1024)
    slab_ref, low_ref = reference_train(g, z, 256, 100)
    slab = sample(tmp_path, tmp_path, "--resolution", "256", "--seed", "11", "--part", "slab", "--slab-start", "100")
    assert slab.shape == (32, 256, 256) and np.abs(slab - slab_ref[0, 0].numpy()).max() < TOLERANCE
    anchor = sample(tmp_path, tmp_path, "--resolution", "256", "--seed", "11", "--part", "anchor")
    assert anchor.shape == (64, 64, 64) and np.abs(anchor - low_ref[0, 0].numpy()).max() < TOLERANCE
    del slab_ref, low_ref
    full = sample(tmp_path, tmp_path / "G_iter80000.pth", "--resolution", "256", "--seed", "11", "--part", "full")
    assert full.shape == (256, 256, 256)
    assert np.abs(full - reference_eval(g, z, 256)[0, 0].numpy()).max() < TOLERANCE


def test_64_preset_works_end_to_end(tmp_path, capsys):
    config = HAGANConfig(resolution=64)
    model = HAGANModel.build(ModelCard(config=config, name="test-64"))
    path = save_model(model, tmp_path / "m64.safetensors")
    shapes = {"full": (64, 64, 64), "anchor": (16, 16, 16), "slab": (8, 64, 64), "stitched": (64, 64, 64)}
    for part, shape in shapes.items():
        array = sample(tmp_path, path, "--seed", "0", "--part", part, "--slab-start", "56", name=f"{part}.nii")
        assert array.shape == shape and np.isfinite(array).all()
    with torch.no_grad():
        expected = model.generator(seed_to_z(0, 1024))[0, 0].numpy()
    assert np.abs(sample(tmp_path, path, "--seed", "0", name="again.nii") - expected).max() < TOLERANCE
    assert main(["info", "--checkpoint", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "64^3" in printed and "G^H (high resolution)" in printed


def test_interpolation_frames_follow_the_slerp_path(tmp_path, official_128):
    from engine.latent import slerp

    folder, g = official_128
    out = tmp_path / "path"
    args = ["interpolate", "--checkpoint", str(folder), "--resolution", "128", "--seeds", "3,8,5", "--steps", "2"]
    assert main([*args, "--part", "anchor", "--intensity", "raw", "--batch-size", "3", "--out", str(out)]) == 0
    frames = sorted(p.name for p in out.glob("*.nii.gz"))
    assert len(frames) == 5  # 2 segments x 2 steps + the last keyframe
    za, zb = seed_to_z(3, 1024), seed_to_z(8, 1024)
    expected = {
        0: za,
        1: slerp(za, zb, 0.5),
        2: zb,
        4: seed_to_z(5, 1024),
    }
    for index, z in expected.items():
        frame = network_array(out / f"frame{index:04d}_anchor.nii.gz")
        assert np.abs(frame - reference_train(g, z, 128, 0)[1][0, 0].numpy()).max() < TOLERANCE, index
    sidecar = json.loads((out / "frame0001_anchor.json").read_text())
    assert sidecar["provenance"]["latent_origin"] == "slerp(seed 3 -> seed 8, t=0.5000)"
    assert len(sidecar["provenance"]["latent"]) == 1024  # the exact latent, so the frame can be regenerated


def test_generating_never_imports_the_training_data_code(tmp_path, tiny_model_file):
    """`sample` starts quickly: neither the phantoms nor scipy.ndimage (the training data's code) are imported."""
    import subprocess
    import sys
    from pathlib import Path

    model = tiny_model_file
    probe = (
        "import sys\n"
        "from engine.cli import main\n"
        "main(['sample', '--checkpoint', sys.argv[1], '--seed', '1', '--out', sys.argv[2]])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('engine.data.phantoms', 'scipy.ndimage'))))"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", probe, str(model), str(tmp_path / "s.nii.gz")], cwd=root, capture_output=True, text=True
    )
    assert (tmp_path / "s.nii.gz").exists(), result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
