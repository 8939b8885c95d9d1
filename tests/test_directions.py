"""SeFa directions: unit eigenvectors of the first layer's WᵀW, strongest first; moving a latent along them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from app_support import make_tiny_model, make_tiny_split_shuffle_model

from engine.card import CT_WINDOW, ModelCard
from engine.checkpoints import load_model
from engine.cli import main
from engine.directions import load_directions, move, move_along, sefa
from engine.latent import seed_to_z
from engine.model import HAGANModel
from engine.models.hagan import HAGANConfig


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("directions") / "tiny.safetensors")


def test_sefa_directions_are_orthonormal_strongest_first_and_the_same_every_time(tiny_file):
    model = load_model(tiny_file, device="cpu", parts=("G",))
    directions = sefa(model, 5)
    vectors = torch.from_numpy(directions.vectors).double()
    assert torch.allclose(vectors @ vectors.T, torch.eye(5, dtype=torch.float64), atol=1e-5)
    w = model.generator.fc1.weight.detach().double()
    gains = (w @ vectors.T).norm(dim=0)  # how much each direction changes fc1's output
    assert torch.all(gains[:-1] >= gains[1:] - 1e-6)
    assert (
        gains[0]
        >= (w @ torch.nn.functional.normalize(torch.randn(16, 100, dtype=torch.float64), dim=0)).norm(dim=0).max()
    )  # no random unit direction moves the first layer more than the first SeFa direction
    assert np.all(np.diff(directions.shares) <= 0) and 0 < directions.shares.sum() <= 1
    assert np.array_equal(sefa(model, 5).vectors, directions.vectors)


def test_conditional_models_use_only_the_z_columns(tiny_config):
    config = HAGANConfig(**{**tiny_config.to_dict(), "num_class": 3})
    model = HAGANModel.build(ModelCard(config=config, intensity=CT_WINDOW), parts=("G",))
    directions = sefa(model, 4)
    assert directions.vectors.shape == (4, config.latent_dim)
    w = model.generator.fc1.weight.detach()[:, : config.latent_dim].double()
    eigenvalues = torch.linalg.eigvalsh(w.T @ w).flip(0)[:4]
    np.testing.assert_allclose(directions.eigenvalues, eigenvalues.numpy(), rtol=1e-6)


def test_split_shuffle_models_have_directions_of_their_fc_layer(tmp_path):
    model = load_model(make_tiny_split_shuffle_model(tmp_path / "ss.safetensors"), device="cpu")
    directions = sefa(model, 3)
    assert directions.layer == "fc" and directions.vectors.shape == (3, 16)


def test_moving_a_latent_zero_leaves_it_and_alpha_moves_it_along_the_unit_direction():
    z = seed_to_z(4, 16)
    direction = np.arange(16, dtype=np.float32)  # not unit length: move normalises it
    assert torch.equal(move(z, direction, 0.0), z)
    unit = torch.from_numpy(direction / np.linalg.norm(direction))
    for alpha in (2.5, -1.5):
        step = move(z, direction, alpha) - z
        torch.testing.assert_close(step[0], alpha * unit, atol=1e-6, rtol=0)


def test_move_along_several_directions_adds_each_step(tiny_file):
    model = load_model(tiny_file, device="cpu", parts=("G",))
    directions = sefa(model, 3)
    z = seed_to_z(1, 16)
    assert torch.equal(move_along(z, directions, [0.0, 0.0, 0.0]), z)
    moved = move_along(z, directions, [1.0, 0.0, -2.0])
    expected = z + torch.from_numpy(directions.vectors[0] - 2 * directions.vectors[2])
    torch.testing.assert_close(moved, expected, atol=1e-5, rtol=0)


def test_cli_writes_the_requested_number_of_directions(tiny_file, tmp_path):
    out = tmp_path / "dirs.json"
    assert main(["directions", "--checkpoint", str(tiny_file), "--count", "4", "--out", str(out)]) == 0
    stored = json.loads(out.read_text())
    assert stored["method"] == "sefa" and len(stored["directions"]) == 4 and stored["latent_dim"] == 16
    assert np.array_equal(load_directions(out).vectors, sefa(load_model(tiny_file, device="cpu"), 4).vectors)
    assert main(["directions", "--checkpoint", str(tiny_file), "--count", "99", "--out", str(out)]) == 2
