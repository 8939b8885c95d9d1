"""Built-in phantoms: physical values, anatomy where a radiologist expects it, variation and determinism."""

import argparse
import json

import nibabel as nib
import numpy as np
import pytest
import torch
from nibabel.processing import resample_from_to
from scipy import ndimage

from engine.card import CT_WINDOW
from engine.data.phantoms import (
    MNI_BRAIN_CENTRE_MM,
    MRI_WINDOW,
    PHANTOM_KINDS,
    PhantomDataset,
    make_phantom,
    register,
    write_phantoms,
)
from engine.errors import ConfigError
from engine.nifti import load_nifti, sidecar_path

SIZE = 64


@pytest.fixture(scope="module")
def chests():
    """Four chest CTs at 64^3 (seeds 0..3)."""
    return [make_phantom("chest-ct", SIZE, seed) for seed in range(4)]


@pytest.fixture(scope="module")
def brains():
    return [make_phantom("brain-mri", SIZE, seed) for seed in range(3)]


def world_axes(volume):
    """Millimetre coordinates of the voxel centres along i (x, right), j (y, anterior), k (z, superior)."""
    n = volume.array.shape[0]
    return [volume.affine[d, d] * np.arange(n) + volume.affine[d, 3] for d in range(3)]


def body_and_lungs(array):
    """Body: dense voxels and what they enclose in each axial slice; lungs: air-like voxels inside it."""
    in_plane = np.zeros((3, 3, 3), dtype=bool)
    in_plane[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    body = ndimage.binary_fill_holes(array > -300, structure=in_plane)
    return body, body & (array < -600)


def heart_blob(array, lungs):
    """The largest soft-tissue (0..100 HU) blob lying between the two lungs in its axial row."""
    from_right = np.cumsum(lungs, axis=0) > 0
    from_left = np.cumsum(lungs[::-1], axis=0)[::-1] > 0
    soft = ndimage.binary_opening((array > 0) & (array < 100) & from_left & from_right)
    labels, count = ndimage.label(soft)
    assert count > 0, "no soft tissue between the lungs"
    sizes = ndimage.sum(soft, labels, range(1, count + 1))
    return labels == 1 + int(np.argmax(sizes))


def lung_fraction(volume):
    """Lung voxels as a fraction of the body."""
    body, lungs = body_and_lungs(volume.array)
    return lungs.sum() / body.sum()


# -- chest CT ----------------------------------------------------------------------------------


def test_ct_is_in_hounsfield_units(chests):
    for volume in chests:
        a = volume.array
        assert a.dtype == np.float32 and a.shape == (SIZE,) * 3
        assert a.min() >= -1024 and a.max() <= 2000
        _, lungs = body_and_lungs(a)
        assert -900 < np.median(a[lungs]) < -700  # aerated lung parenchyma
        assert np.mean(a[:, -3:, :]) == pytest.approx(-1000, abs=15)  # air in front of the chest
        assert ((a > -130) & (a < -70)).sum() > 1000  # fat
        assert ((a > 20) & (a < 70)).sum() > 5000  # muscle, heart, blood, liver
        assert (a > 300).sum() > 200  # bone
        assert volume.intensity == CT_WINDOW


@pytest.mark.parametrize("size, seed", [(64, 0), (64, 5), (64, 9), (32, 2)])
def test_ct_anatomy_is_where_it_belongs(size, seed):
    volume = make_phantom("chest-ct", size, seed)
    a = volume.array
    x, y, z = world_axes(volume)
    body, lungs = body_and_lungs(a)
    # Lungs fill much of the chest over 10 cm or more, on both sides of the midline.
    per_slice = lungs.sum(axis=(0, 1))
    widest = int(np.argmax(per_slice))
    assert per_slice[widest] > 0.15 * body[..., widest].sum()
    thorax = per_slice > 0.2 * per_slice[widest]
    assert np.ptp(z[thorax]) > 100
    right = lungs[x > 0].sum() / lungs.sum()
    assert 0.35 < right < 0.65
    lung_y = y[np.nonzero(lungs)[1]].mean()
    # The table: under the back, below every lung voxel, along the whole scan. Air round the rest.
    sagittal = a[size // 2]
    table = np.flatnonzero((sagittal > -500).mean(axis=1) > 0.8).min()
    lung_j = np.nonzero(lungs)[1]
    assert y[table] < y[lung_j].min() - 10
    assert a[:, -2:].max() < -900  # in front of the chest
    beside = a[[0, -1]][:, y > lung_y]
    assert beside.mean() < -950 and beside.max() < -700
    assert (a[[0, -1]][:, y < lung_y] > -500).any(axis=1).mean() > 0.8  # only the table is wider than the body
    # The spine: midline bone at the back of the lungs, in almost every slice of the thorax.
    midline_bone = (a > 300) & (np.abs(x) < 30)[:, None, None]
    bone_y = y[np.nonzero(midline_bone)[1]].mean()
    assert bone_y < lung_y - 5
    assert bone_y < y[lung_j].min() + 0.45 * np.ptp(y[lung_j])
    assert midline_bone[:, y < lung_y].any(axis=(0, 1))[thorax].mean() > 0.8
    if size >= 64:
        # The heart: a big soft-tissue blob between the lungs, left of the midline (-x) and anterior.
        heart = heart_blob(a, lungs)
        hi, hj, _ = np.nonzero(heart)
        assert heart.sum() * np.prod(volume.spacing) > 100_000  # > 100 ml
        assert x[hi].mean() < -5
        assert y[hj].mean() > lung_y + 10


def test_ct_geometry_is_ras_and_centred(chests):
    for seed, volume in enumerate(chests):
        assert nib.orientations.aff2axcodes(volume.affine) == ("R", "A", "S")
        assert not np.allclose(volume.affine, np.eye(4))
        assert volume.spacing == pytest.approx((380 / SIZE,) * 3)
        centre = volume.affine @ np.array([(SIZE - 1) / 2] * 3 + [1.0])
        assert np.allclose(centre[:3], 0)
        expected = {"phantom": "chest-ct", "seed": seed, "synthetic": True, "generator": "engine.data.phantoms"}
        assert volume.provenance == expected


def test_ct_seeds_give_different_subjects(chests):
    arrays = [v.array for v in chests]
    for a, b in zip(arrays, arrays[1:]):
        assert np.mean(np.abs(a - b)) > 50  # HU: different bodies, not different noise
    fractions = [lung_fraction(v) for v in chests]
    assert max(fractions) > 1.2 * min(fractions)
    hearts = []
    for v in chests:
        x, y, _ = world_axes(v)
        hi, hj, _ = np.nonzero(heart_blob(v.array, body_and_lungs(v.array)[1]))
        hearts.append((x[hi].mean(), y[hj].mean()))
    assert np.ptp(np.array(hearts), axis=0).max() > 5  # mm


# -- brain MRI ---------------------------------------------------------------------------------


def priors_on(volume):
    """nilearn's grey- and white-matter maps resampled onto a phantom's grid (its centre at MNI_BRAIN_CENTRE_MM)."""
    from nilearn import datasets

    affine = volume.affine.copy()
    affine[:3, 3] += MNI_BRAIN_CENTRE_MM
    target = (volume.array.shape, affine)
    gm = resample_from_to(datasets.load_mni152_gm_template(resolution=1), target, order=1).get_fdata()
    wm = resample_from_to(datasets.load_mni152_wm_template(resolution=1), target, order=1).get_fdata()
    return gm, wm


def test_mri_is_a_t1_brain(brains):
    for volume in brains:
        a = volume.array
        assert a.dtype == np.float32 and a.shape == (SIZE,) * 3
        assert volume.intensity == MRI_WINDOW
        assert MRI_WINDOW.low <= a.min() and a.max() <= MRI_WINDOW.high
        gm, wm = priors_on(volume)
        white, grey = a[wm > 0.9].mean(), a[gm > 0.9].mean()
        assert white > 1.1 * grey  # T1: white matter brighter than grey matter
        assert a[:3, :3].mean() < 0.1 * white  # dark background
        brain = np.argwhere(a > 0.25 * white)
        centroid = volume.affine[:3, :3] @ brain.mean(axis=0) + volume.affine[:3, 3]
        assert np.linalg.norm(centroid) < 15  # mm: the brain is centred
        assert nib.orientations.aff2axcodes(volume.affine) == ("R", "A", "S")
        assert volume.spacing == pytest.approx((220 / SIZE,) * 3)


def test_mri_seeds_vary(brains):
    arrays = [v.array for v in brains]
    for a, b in zip(arrays, arrays[1:]):
        assert np.mean(np.abs(a - b)) > 20
    volumes = [(a > 0.3 * np.percentile(a, 99.5)).sum() for a in arrays]
    assert max(volumes) > 1.05 * min(volumes)  # deformation changes the head's size


# -- both kinds --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", PHANTOM_KINDS)
def test_same_seed_same_volume(kind):
    first, again, other = (make_phantom(kind, 32, seed) for seed in (7, 7, 8))
    assert np.array_equal(first.array, again.array)
    assert np.array_equal(first.affine, again.affine)
    assert not np.array_equal(first.array, other.array)


@pytest.mark.parametrize("size", [16, 48, 100, 512, 0, -32])
def test_bad_sizes_are_refused(size):
    with pytest.raises(ConfigError, match="power of two"):
        make_phantom("chest-ct", size, 0)


def test_unknown_kind_and_negative_seed_are_refused():
    with pytest.raises(ConfigError, match="unknown phantom kind 'pet'"):
        make_phantom("pet", 64, 0)
    with pytest.raises(ConfigError, match="seed"):
        make_phantom("brain-mri", 64, -1)


@pytest.mark.parametrize("kind", PHANTOM_KINDS)
def test_dataset_items_are_network_tensors(kind):
    data = PhantomDataset(kind, 32, length=3, base_seed=10)
    assert len(data) == 3
    volume, label = data[1]
    assert volume.dtype == torch.float32 and volume.shape == (1, 32, 32, 32)
    assert volume.min() >= -1 and volume.max() <= 1 and volume.std() > 0.1
    assert label == -1
    # (D, H, W) = (k, j, i): the same voxels as the seed's phantom, mapped to [-1, 1]
    expected = make_phantom(kind, 32, 11)
    physical = expected.intensity.to_physical(volume[0].numpy()).transpose(2, 1, 0)
    inside = (expected.array > expected.intensity.low) & (expected.array < expected.intensity.high)
    assert np.allclose(physical[inside], expected.array[inside], atol=1e-2)
    with pytest.raises(IndexError):
        data[3]
    summary = data.summary()
    assert summary["kind"] == kind and summary["count"] == 3 and summary["size"] == 32
    assert summary["base_seed"] == 10
    assert summary["intensity"] == expected.intensity.to_dict()
    assert summary["spacing"] == pytest.approx(list(expected.spacing))


def test_write_phantoms_gives_readable_nifti(tmp_path):
    paths = write_phantoms("chest-ct", 2, 32, tmp_path / "ct", seed=5, progress=False)
    assert [p.name for p in paths] == ["chest-ct-00005.nii.gz", "chest-ct-00006.nii.gz"]
    for seed, path in zip((5, 6), paths):
        loaded, made = load_nifti(path), make_phantom("chest-ct", 32, seed)
        assert np.array_equal(loaded.array, made.array)
        assert np.allclose(loaded.affine, made.affine)
        assert loaded.intensity == CT_WINDOW
        assert loaded.provenance["phantom"] == "chest-ct" and loaded.provenance["seed"] == seed
        header = nib.load(path).header
        assert header["descrip"].tobytes().rstrip(b"\0").decode() == f"PHANTOM chest-ct seed {seed}"
        assert json.loads(sidecar_path(path).read_text())["synthetic"] is True


def run_cli(*argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["phantoms", *argv])
    return args, args.run(args)


def test_cli_writes_phantoms(tmp_path, capsys):
    args, code = run_cli("--kind", "brain-mri", "--count", "2", "--size", "32", "--out", str(tmp_path / "mri"))
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "mri").glob("*.nii.gz")) == [
        "brain-mri-00000.nii.gz",
        "brain-mri-00001.nii.gz",
    ]
    assert "wrote 2 brain-mri phantoms" in capsys.readouterr().out
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    defaults = parser.parse_args(["phantoms", "--kind", "chest-ct", "--out", "x"])
    assert (defaults.count, defaults.size, defaults.seed) == (8, 128, 0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--size", "100"], "power of two"),
        (["--size", "512"], "power of two"),
        (["--count", "0"], "count must be at least 1"),
        (["--seed", "-3"], "seed"),
    ],
)
def test_cli_refuses_bad_settings(tmp_path, argv, message):
    with pytest.raises(ConfigError, match=message) as error:
        run_cli("--kind", "chest-ct", "--out", str(tmp_path / "out"), *argv)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_file_as_output(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("keep me\n")
    with pytest.raises(ConfigError, match="is a file"):
        run_cli("--kind", "chest-ct", "--count", "1", "--size", "32", "--out", str(target))
    assert target.read_text() == "keep me\n"


def test_cli_knows_only_the_phantom_kinds(capsys):
    with pytest.raises(SystemExit):
        run_cli("--kind", "pet-ct", "--out", "x")
    assert "invalid choice" in capsys.readouterr().err
