"""A run's settings as `engine train` arguments: parsed back by the train command, they give the same settings."""

from __future__ import annotations

import argparse

import pytest
from app_support import make_tiny_model

from engine.training.cli import config_from_args, register
from engine.training.config import TrainConfig, train_arguments


def parsed(arguments: list[str]) -> TrainConfig:
    """What `python -m engine train ARGUMENTS` would train, without training."""
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return config_from_args(parser.parse_args(["train", *arguments]))


def value_of(arguments: list[str], option: str) -> str:
    return arguments[arguments.index(option) + 1]


@pytest.mark.parametrize(
    "settings",
    [
        {},  # every default: the reference's run
        dict(resolution=32, preset="tiny", iterations=50, batch_size=1, log_every=1, preview_every=2),
        dict(data="folder", modality="ct", window=(-1000.0, 400.0), precision="bf16", mode_seeking=0.05),
        dict(preset="small", latent_dim=24, blocks="grouped", block_groups=2, ema=0.999, lr_g=3e-5, lr_d=1e-3),
        dict(augment=True, grad_checkpoint=True, seed=7, keep=5, workers=2, phantom_count=10, name="chest"),
        dict(family="split-shuffle", resolution=32, preset="tiny", max_width=16, checkpoint_every=25),
        dict(family="split-shuffle", stage="2d", slice_axis="coronal", slices_per_volume=2, beta1=0.5),
    ],
)
def test_arguments_parsed_back_give_the_same_settings(tmp_path, settings):
    data = tmp_path / "scans"
    data.mkdir()
    given = {**settings, "data": str(data)} if settings.get("data") == "folder" else settings
    config = TrainConfig(**{"data": "phantoms:chest-ct", **given, "out": str(tmp_path / "run")})
    arguments = train_arguments(config)
    assert parsed(arguments) == config
    assert value_of(arguments, "--out") == str(tmp_path / "run") and "--preset" in arguments
    assert ("--phantoms" in arguments) == config.data.startswith("phantoms:")
    assert ("--precision" in arguments) == (config.precision != "fp32")
    assert ("--mode-seeking" in arguments) == bool(config.mode_seeking)


def test_only_settings_that_differ_from_the_defaults_are_written(tmp_path):
    arguments = train_arguments(TrainConfig(data="phantoms:brain-mri", out="r", resolution=64, preset="small"))
    assert arguments == ["--phantoms", "brain-mri", "--out", "r", "--resolution", "64", "--preset", "small"]
    split = train_arguments(TrainConfig(data="/d", out="r", family="split-shuffle", stage="2d"))
    assert value_of(split, "--family") == "split-shuffle" and value_of(split, "--stage") == "2d"


def test_a_start_model_brings_its_network(tmp_path):
    model = make_tiny_model(tmp_path / "tiny.safetensors")  # 32^3, latent 16: not a preset's widths
    widths = dict(resolution=32, latent_dim=16, g_width=16, d_width=8, e_width=8, blocks="dense")
    config = TrainConfig(data="phantoms:chest-ct", out=str(tmp_path / "run"), init_from=str(model), **widths)
    arguments = train_arguments(config)
    assert value_of(arguments, "--init-from") == str(model)
    assert not {"--preset", "--resolution", "--latent-dim"} & set(arguments)  # the model file brings them
    assert parsed(arguments) == config

    official = TrainConfig(data="/d", out="r", init_from=str(tmp_path / "G_iter80000.pth"), resolution=128)
    arguments = train_arguments(official)  # official files do not record their resolution
    assert value_of(arguments, "--resolution") == "128" and "--preset" not in arguments
