"""Volumes and NIfTI files: geometry, units, provenance, exact round trips, bad files."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from engine.errors import VolumeError
from engine.nifti import load_nifti, save_nifti, sidecar_path
from engine.volume import IntensityMapping, Volume, generated_affine

HU = IntensityMapping(-1024.0, 600.0, "HU")


def test_network_layout_maps_to_nifti_voxel_order_and_back():
    tensor = torch.rand(1, 1, 4, 5, 6) * 2 - 1  # (N, C, D, H, W)
    volume = Volume.from_network(tensor, generated_affine(32, (1, 1, 1)), HU)
    assert volume.array.shape == (6, 5, 4)  # (i, j, k) = (W, H, D)
    assert volume.array[5, 4, 3] == pytest.approx(float(HU.to_physical(tensor[0, 0, 3, 4, 5])), abs=1e-3)
    assert torch.allclose(volume.to_network(), tensor, atol=1e-6)


def test_all_parts_of_one_volume_share_one_millimetre_frame():
    spacing = (0.8, 0.8, 1.5)
    full = generated_affine(128, spacing, "full")
    anchor = generated_affine(128, spacing, "anchor")
    slab = generated_affine(128, spacing, "slab", slab_start=40)
    # the full volume is centred on the origin
    assert np.allclose(full @ [0, 0, 0, 1] + full @ [127, 127, 127, 1], [0, 0, 0, 2])
    # anchor voxel a sits at the centre of full voxels 4a .. 4a+3
    assert np.allclose(anchor @ [2, 3, 5, 1], full @ [9.5, 13.5, 21.5, 1])
    # slab voxel 0 along k is full voxel 40
    assert np.allclose(slab @ [7, 9, 0, 1], full @ [7, 9, 40, 1])


def test_export_writes_units_geometry_synthetic_mark_and_sidecar(tmp_path):
    array = np.linspace(-1024, 600, 6 * 5 * 4, dtype=np.float32).reshape(6, 5, 4)
    affine = generated_affine(32, (0.7, 0.8, 1.25))
    volume = Volume(array, affine, HU, {"seed": 3, "model_hash": "sha256:abc"})
    path = save_nifti(volume, tmp_path / "x.nii.gz", "SYNTHETIC test seed 3")
    image = nib.load(str(path))
    assert np.array_equal(np.asarray(image.dataobj), array)
    assert np.allclose(image.affine, affine, atol=1e-5)
    assert image.header.get_xyzt_units()[0] == "mm"
    assert image.header["descrip"].tobytes().startswith(b"SYNTHETIC")
    sidecar = json.loads(sidecar_path(path).read_text())
    assert sidecar_path(path).name == "x.json"
    assert sidecar["synthetic"] is True and sidecar["intensity"]["unit"] == "HU"
    assert sidecar["provenance"]["seed"] == 3 and sidecar["engine_version"]


@pytest.mark.parametrize("name", ["a.nii", "a.nii.gz"])
def test_import_then_export_round_trips_the_array_exactly(tmp_path, name):
    rng = np.random.default_rng(0)
    original = nib.Nifti1Image(rng.normal(size=(7, 6, 5)).astype(np.float32) * 300, np.diag([0.5, 0.6, 2.0, 1]))
    nib.save(original, str(tmp_path / name))
    first = load_nifti(tmp_path / name)
    save_nifti(first, tmp_path / ("b" + name[1:]))
    second = load_nifti(tmp_path / ("b" + name[1:]))
    assert np.array_equal(first.array, second.array)
    assert np.array_equal(first.array, np.asarray(original.dataobj))
    assert np.allclose(first.affine, second.affine)
    assert second.intensity == first.intensity


def test_integer_scaled_files_import_as_physical_values(tmp_path):
    image = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    image.header.set_slope_inter(2.0, -1000.0)
    nib.save(image, str(tmp_path / "scaled.nii"))
    assert load_nifti(tmp_path / "scaled.nii").array[1, 2, 3] == 23 * 2.0 - 1000.0


def test_a_singleton_fourth_dimension_is_accepted(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3, 1), np.float32), np.eye(4)), str(tmp_path / "t.nii"))
    assert load_nifti(tmp_path / "t.nii").array.shape == (3, 3, 3)


def write_bad_niftis(folder):
    """Bad volume files and the cause each must be reported with."""
    nan = np.zeros((4, 4, 4), np.float32)
    nan[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(nan, np.eye(4)), str(folder / "nan.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), str(folder / "series.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((40, 40, 40), np.float32) + 1, np.eye(4)), str(folder / "whole.nii.gz"))
    data = (folder / "whole.nii.gz").read_bytes()
    (folder / "truncated.nii.gz").write_bytes(data[: len(data) // 2])
    (folder / "notes.nii").write_text("this is not an image\n")
    return {
        "nan.nii.gz": "1 voxels are NaN",
        "series.nii.gz": "single 3-D volume",
        "truncated.nii.gz": "not a readable NIfTI",
        "notes.nii": "not a readable NIfTI",
        "missing.nii.gz": "no such file",
    }


def test_bad_volume_files_give_one_line_causes(tmp_path):
    for name, cause in write_bad_niftis(tmp_path).items():
        with pytest.raises(VolumeError) as error:
            load_nifti(tmp_path / name)
        assert cause in str(error.value) and name in str(error.value) and "\n" not in str(error.value)


def test_nan_volumes_are_never_written(tmp_path):
    volume = Volume(np.full((2, 2, 2), np.nan, np.float32), np.eye(4))
    with pytest.raises(VolumeError, match="NaN"):
        save_nifti(volume, tmp_path / "x.nii")
    assert not list(tmp_path.iterdir())


def test_physical_units_in_place_equal_a_copy_and_reuse_the_networks_memory():
    """A generated tensor given away is scaled in its own memory; the values are the copy's."""
    mapping = IntensityMapping(-1024.0, 600.0, "HU")
    tensor = torch.linspace(-1, 1, 2 * 3 * 4).reshape(1, 1, 2, 3, 4)
    copied = Volume.from_network(tensor.clone(), np.eye(4), mapping)
    given = tensor.clone()
    in_place = Volume.from_network(given, np.eye(4), mapping, in_place=True)
    assert np.array_equal(in_place.array, copied.array)
    assert np.shares_memory(in_place.array, given.numpy())
    assert not np.shares_memory(copied.array, tensor.numpy())
