"""The model card's preprocessing record, and scans prepared by it (encode, evaluate --real, the app)."""

import json

import nibabel as nib
import numpy as np
import pytest
from safetensors import safe_open

from engine.card import ModelCard
from engine.checkpoints import read_model_card
from engine.data.phantoms import MRI_FOREGROUND_REFERENCE, make_phantom, phantom_preprocessing
from engine.data.preprocess import PreprocessSettings, foreground_percentiles
from engine.demo import demo_models
from engine.model_input import card_preprocessing, official_preprocessing, prepare_scan
from engine.models.hagan import HAGANConfig
from engine.volume import IntensityMapping, Volume


def mri_card(preprocessing: dict, resolution: int = 32) -> ModelCard:
    config = HAGANConfig(resolution=resolution, latent_dim=16, g_width=16, d_width=8, e_width=8)
    return ModelCard(
        config=config, modality="mri", intensity=IntensityMapping(0.0, 1000.0, ""), preprocessing=preprocessing
    )


def head(shape=(40, 40, 40), spacing=(2.0, 2.0, 2.0), scale=1.0) -> Volume:
    """A bright ellipsoid ('brain') with a dimmer core over a zero background, in arbitrary units."""
    grid = np.indices(shape, dtype=np.float32)
    centre = (np.asarray(shape) - 1) / 2
    radius = np.sqrt(sum(((g - c) * s / 28.0) ** 2 for g, c, s in zip(grid, centre, spacing)))
    array = np.where(radius < 1, 0.8, 0.0) - np.where(radius < 0.5, 0.3, 0.0)
    return Volume((array * scale).astype(np.float32), np.diag([*spacing, 1.0]))


def test_demo_cards_record_the_phantom_preprocessing_and_keep_their_weights_hash():
    for path in demo_models():
        card = read_model_card(path)
        kind = card.training["data"]["kind"]
        assert card.preprocessing == phantom_preprocessing(kind, 128).to_dict()
        settings = card_preprocessing(card)
        assert settings.resample == "spacing" and settings.spacing_mm == tuple(card.spacing_mm)
        assert settings.window == (card.intensity.low, card.intensity.high)
        assert (settings.reference is not None) == (kind == "brain-mri")
        with safe_open(str(path), "pt") as handle:
            assert {handle.get_tensor(key).dtype for key in handle.keys()} == {__import__("torch").float16}


def test_official_files_get_the_reference_ct_preprocessing():
    settings = PreprocessSettings.from_dict(official_preprocessing(256))
    assert settings.window == (-1024.0, 600.0) and settings.trim_blank and settings.resample == "stretch"


def test_the_record_survives_a_card_round_trip():
    record = phantom_preprocessing("brain-mri", 32).to_dict()
    card = ModelCard.from_json(mri_card(record).to_json())
    assert card.preprocessing == record and card_preprocessing(card) == phantom_preprocessing("brain-mri", 32)


def test_mri_units_do_not_matter_once_foreground_percentiles_are_matched():
    card = mri_card(PreprocessSettings("mri", (0.0, 1000.0), 32, reference=(100.0, 700.0)).to_dict())
    unit = prepare_scan(head(scale=1.0), card)
    thousand = prepare_scan(head(scale=1000.0), card)
    assert np.allclose(unit.volume.numpy(), thousand.volume.numpy(), atol=1e-4)
    # the foreground's bright part lands where the training data's 99.5th percentile was
    assert unit.volume.max().item() == pytest.approx(700.0 / 500.0 - 1.0, abs=0.02)


def test_without_matching_a_unit_scan_in_a_thousand_unit_window_is_refused():
    card = mri_card(PreprocessSettings("mri", (0.0, 1000.0), 32).to_dict())
    with pytest.raises(Exception, match="nearly constant"):
        prepare_scan(head(scale=1.0), card)


def test_spacing_geometry_keeps_the_aspect_ratio():
    """A sphere in 1 x 1 x 2 mm voxels stays a sphere at the model's spacing; stretching squashes it."""
    shape, spacing = (64, 64, 24), (1.0, 1.0, 2.0)  # a 64 x 64 x 48 mm field of view
    grid = np.indices(shape, dtype=np.float32)
    centre = (np.asarray(shape) - 1) / 2
    radius = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing)))
    sphere = Volume(np.where(radius < 20, 500.0, 0.0).astype(np.float32), np.diag([*spacing, 1.0]))
    kept = mri_card(PreprocessSettings("mri", (0.0, 1000.0), 32, resample="spacing", spacing_mm=(2.0,) * 3).to_dict())
    cube = prepare_scan(sphere, kept).volume[0, 0].numpy()  # (D, H, W) = (k, j, i)
    extents = [(cube > -0.5).any(axis=tuple(a for a in range(3) if a != axis)).sum() for axis in range(3)]
    assert max(extents) - min(extents) <= 1, extents  # about 20 voxels of 2 mm along every axis
    stretched = mri_card(PreprocessSettings("mri", (0.0, 1000.0), 32).to_dict())
    cube = prepare_scan(sphere, stretched).volume[0, 0].numpy()
    extents = [(cube > -0.5).any(axis=tuple(a for a in range(3) if a != axis)).sum() for axis in range(3)]
    assert extents[0] > extents[2] + 4  # 48 mm of k and 64 mm of i both became 32 voxels


def test_percentile_foreground_ignores_denormal_background():
    array = np.full((20, 20, 20), 1e-45, dtype=np.float32)
    array[5:15, 5:15, 5:15] = np.linspace(100, 200, 1000, dtype=np.float32).reshape(10, 10, 10)
    low, high = foreground_percentiles(array, (0.5, 99.5))
    assert low > 99 and high < 201  # the 1e-45 voxels are background, not the low percentile


def test_brain_phantoms_match_the_recorded_reference():
    found = np.mean([foreground_percentiles(make_phantom("brain-mri", 64, s).array, (0.5, 99.5)) for s in (0, 1)], 0)
    assert np.allclose(found, MRI_FOREGROUND_REFERENCE, rtol=0.25), found


def test_nifti_scans_are_read_the_same_as_volumes(tmp_path):
    card = mri_card(phantom_preprocessing("brain-mri", 32).to_dict())
    volume = head(scale=900.0)
    path = tmp_path / "head.nii.gz"
    nib.save(nib.Nifti1Image(volume.array, volume.affine), path)
    from_file, from_volume = prepare_scan(path, card), prepare_scan(volume, card)
    assert np.allclose(from_file.volume.numpy(), from_volume.volume.numpy(), atol=1e-5)
    assert from_file.foreground.any() and json.dumps(from_file.record())


def test_official_cards_trim_blank_axial_slices_as_the_reference_did(tmp_path):
    from engine.card import CT_WINDOW
    from engine.data.preprocess import preprocess_volume

    config = HAGANConfig(resolution=32, latent_dim=16, g_width=16, d_width=8, e_width=8)
    card = ModelCard(config=config, modality="ct", intensity=CT_WINDOW, preprocessing=official_preprocessing(32))
    hu = np.random.default_rng(2).uniform(-900, 500, (40, 40, 40)).astype(np.float32)
    hu[:, :, :6], hu[:, :, 34:] = -2000.0, -1024.0  # blank axial planes below and above the body
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(hu, np.eye(4)), path)
    cube = prepare_scan(path, card).volume[0, 0].numpy()  # (D, H, W): D is the axial axis
    assert cube[0].max() > -0.9 and cube[-1].max() > -0.9  # no blank plane left at either end
    reference, _ = preprocess_volume(path, PreprocessSettings.from_dict(official_preprocessing(32)))
    assert np.allclose(cube, reference, atol=1e-6)
