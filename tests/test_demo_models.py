"""The bundled demo models: they load, sample without naming a model, and resemble their data."""

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from engine.checkpoints import load_model, read_model_card
from engine.cli import main
from engine.data.phantoms import make_phantom
from engine.demo import DEFAULT_DEMO, demo_models
from engine.generate import SampleRequest, sample_volume
from engine.nifti import load_nifti

MODELS = demo_models()
MAX_BYTES = 30 * 1024 * 1024


def test_both_demo_models_are_bundled_small_and_complete():
    names = sorted(p.name for p in MODELS)
    assert names == ["demo-brain-mri.safetensors", "demo-chest-ct.safetensors"]
    for path in MODELS:
        assert path.stat().st_size < MAX_BYTES
        card = read_model_card(path)
        assert card.config.resolution == 128 and card.parts == ("G", "E", "Sub_E")
        assert card.training["iterations"] > 0 and card.training["hardware"]
        assert card.training["data"]["kind"] in ("chest-ct", "brain-mri")


def _voxels(array: np.ndarray, count: int = 200_000) -> np.ndarray:
    return np.random.default_rng(0).choice(array.ravel(), count)


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_samples_are_closer_to_the_training_data_than_a_constant_or_noise(path):
    model = load_model(path)
    card = model.card
    kind = card.training["data"]["kind"]
    real = np.concatenate([_voxels(make_phantom(kind, 128, seed).array) for seed in (101, 102)])
    generated = np.concatenate([_voxels(sample_volume(model, SampleRequest(seed)).array) for seed in (1, 2)])
    low, high = card.intensity.low, card.intensity.high
    constant = np.full_like(real, real.mean())
    noise = np.random.default_rng(1).uniform(low, high, real.shape)
    to_real = wasserstein_distance(generated, real)
    assert to_real < wasserstein_distance(constant, real)
    assert to_real < wasserstein_distance(noise, real)


def test_sample_without_a_model_uses_the_chest_ct_demo(tmp_path):
    out = tmp_path / "x.nii.gz"
    assert main(["sample", "--seed", "1", "--out", str(out)]) == 0
    volume = load_nifti(out)
    assert volume.array.shape == (128, 128, 128) and volume.intensity.unit == "HU"
    assert volume.provenance["model_hash"] == read_model_card(MODELS[0]).content_hash
    assert MODELS[0].name == DEFAULT_DEMO


def test_demo_model_seeds_differ():
    model = load_model(MODELS[0])
    a, b = (torch.from_numpy(sample_volume(model, SampleRequest(s, part="anchor")).array) for s in (1, 2))
    assert (a - b).abs().mean() > 1.0  # HU: visibly different volumes
