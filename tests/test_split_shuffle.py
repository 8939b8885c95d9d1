"""Split&Shuffle-GAN: channel shuffle, blocks, parameter budgets, HA-GAN with blocks, model files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.checkpoints import load_model, read_model_card
from engine.cli import main
from engine.errors import ConfigError
from engine.generate import SampleRequest, sample_volume, sample_volumes
from engine.interpolation import interpolation_requests
from engine.model import SplitShuffleModel
from engine.models.hagan import Discriminator, Generator, HAGANConfig
from engine.models.split_shuffle import (
    BLOCK_TYPES,
    SplitShuffleConfig,
    SplitShuffleConv,
    SplitShuffleDiscriminator,
    SplitShuffleGenerator,
    channel_shuffle,
    channel_unshuffle,
    count_parameters,
    make_conv,
    replaced_parameters,
)
from engine.training.config import TrainConfig
from engine.training.distributed import Distributed
from engine.training.split_shuffle_trainer import SplitShuffleTrainer


@pytest.mark.parametrize("channels, groups", [(8, 2), (12, 3), (16, 4), (7, 2), (10, 3), (5, 4)])
def test_channel_shuffle_is_a_permutation_and_unshuffle_inverts_it(channels, groups):
    x = torch.arange(channels).float().reshape(1, channels, 1, 1, 1).expand(2, -1, 3, 2, 2)
    shuffled = channel_shuffle(x, groups)
    order = shuffled[0, :, 0, 0, 0].long().tolist()
    assert sorted(order) == list(range(channels)) and order != list(range(channels))
    assert torch.equal(channel_unshuffle(shuffled, groups), x)
    assert torch.equal(channel_shuffle(channel_unshuffle(x, groups), groups), x)
    if channels % groups == 0:  # ShuffleNet's definition: view as (g, n), transpose, flatten
        n = channels // groups
        assert order == [g * n + j for j in range(n) for g in range(groups)]
    else:  # uneven groups, larger first, read round-robin
        assert order == {7: [0, 4, 1, 5, 2, 6, 3], 10: [0, 4, 7, 1, 5, 8, 2, 6, 9, 3], 5: [0, 2, 3, 4, 1]}[channels]


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("block", BLOCK_TYPES)
@pytest.mark.parametrize("geometry", [(3, 1, 1), (4, 2, 1), (4, 1, 0)])
def test_every_block_has_the_shape_of_the_dense_convolution_also_with_odd_channels(dims, block, geometry):
    layer = make_conv(7, 5, *geometry, dims=dims, block=block, groups=3, spectral_norm=True)
    dense = make_conv(7, 5, *geometry, dims=dims)
    x = torch.randn(1, 7, *(8,) * dims)
    assert layer(x).shape == dense(x).shape
    if block != "dense":
        assert sum(layer.in_splits) == 7 and max(layer.in_splits) - min(layer.in_splits) <= 1


def test_the_mixed_block_cuts_the_replaced_convolution_to_a_third():
    ratios = {}
    for block in BLOCK_TYPES:
        layer = make_conv(64, 64, 3, 1, 1, block=block, groups=4, bias=False)
        ratios[block] = count_parameters(layer) / (64 * 64 * 27)
    assert ratios["mixed"] == pytest.approx(1 / 3)  # (k^3 + k^2) / (4 k^3)
    assert ratios["planes"] == pytest.approx(1 / 9, rel=0.01)  # about 1 / (3k)
    assert ratios["grouped"] == pytest.approx(1 / 4) and ratios["dense"] == 1.0
    # whole networks: every replaced convolution together (D's 4^3 kernels: (64 + 16) / 256)
    config = SplitShuffleConfig(resolution=64)
    dense = SplitShuffleConfig(**{**config.to_dict(), "blocks": "dense"})
    with torch.device("meta"):
        before, after = replaced_parameters(SplitShuffleGenerator(dense), SplitShuffleGenerator(config))
        d_before, d_after = replaced_parameters(SplitShuffleDiscriminator(dense), SplitShuffleDiscriminator(config))
    assert after / before == pytest.approx(1 / 3, abs=0.002)
    assert (after + d_after) / (before + d_before) == pytest.approx(1 / 3, abs=0.03)


@pytest.mark.parametrize("resolution", [64, 128])
def test_default_split_shuffle_gan_is_at_most_55_percent_of_dense_fc_included(resolution):
    totals = {}
    for block in ("mixed", "dense"):
        config = SplitShuffleConfig(resolution=resolution, blocks=block)
        with torch.device("meta"):
            g, d = SplitShuffleGenerator(config), SplitShuffleDiscriminator(config)
        totals[block] = count_parameters(g) + count_parameters(d)
    assert totals["mixed"] <= 0.55 * totals["dense"]


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("block", BLOCK_TYPES)
def test_generator_and_discriminator_shapes_with_batch_size_one(dims, block):
    config = SplitShuffleConfig(
        resolution=16, dims=dims, latent_dim=8, g_width=8, d_width=8, max_width=32, blocks=block
    )
    g, d = SplitShuffleGenerator(config), SplitShuffleDiscriminator(config)
    with torch.no_grad():
        x = g(torch.randn(1, 8))
        assert x.shape == (1, 1, *(16,) * dims) and x.abs().max() <= 1
        assert d(x).shape == (1, 1)
    with pytest.raises(ConfigError, match="latents must have shape"):
        g(torch.randn(1, 9))
    with pytest.raises(ConfigError, match="the discriminator takes"):
        d(torch.randn(1, 1, *(32,) * dims))


def test_impossible_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown block type 'sparse'"):
        SplitShuffleConfig(blocks="sparse")
    with pytest.raises(ConfigError, match="resolution 48"):
        SplitShuffleConfig(resolution=48)
    with pytest.raises(ConfigError, match="dims must be 2"):
        SplitShuffleConfig(dims=4)
    with pytest.raises(ConfigError, match="unknown block type"):
        HAGANConfig(resolution=32, blocks="sparse")


@pytest.mark.parametrize("block", ["mixed", "planes", "grouped"])
def test_hagan_with_blocks_keeps_its_hierarchy_and_first_and_last_layers_dense(block):
    from engine.generate import FastGenerator

    config = HAGANConfig(resolution=32, latent_dim=16, g_width=16, d_width=8, e_width=8, blocks=block)
    torch.manual_seed(0)
    g, d = Generator(config), Discriminator(config)
    for dense_layer in (g.tp_conv7, g.sub_G.tp_conv3, d.conv4, d.sub_D.conv4, d.sub_D.conv5):
        assert isinstance(dense_layer, torch.nn.Conv3d)
    assert not isinstance(g.tp_conv1, torch.nn.Conv3d) and not isinstance(d.conv5, torch.nn.Conv3d)
    with torch.no_grad():
        f = g.features(torch.randn(1, 16))
        assert g.full(f).shape == (1, 1, 32, 32, 32) and g.anchor(f).shape == (1, 1, 8, 8, 8)
        assert d(g.slab(f, 4), g.anchor(f), 4).logit.shape == (1, 1)
        fast = FastGenerator(g)  # no sub-pixel kernels for blocks: the straightforward pass
        torch.testing.assert_close(fast.full(fast.features(torch.ones(1, 16))), g(torch.ones(1, 16)))


# -- training, model files and generation end to end (tiny, in-process like tests/test_training.py) --

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--phantoms", "chest-ct", "--resolution", "32", "--batch-size", "2", "--phantom-count", "4", "--log-every", "1"]
SPLIT = ["--family", "split-shuffle", "--preset", "tiny", *TINY]


def train(run, *extra):
    """`engine train` in-process; returns the JSON progress events."""
    progress = run.parent / f"{run.name}-{len(list(run.parent.glob(run.name + '-*.jsonl')))}.jsonl"
    args = ["train", *extra, "--progress-json", str(progress)]
    assert main(args if "--resume" in extra else [*args, "--out", str(run)]) == 0
    return [json.loads(line) for line in progress.read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 2D stage run (3 iterations) and a 3D stage run inflated from it (2 iterations)."""
    folder = tmp_path_factory.mktemp("split-shuffle")
    events_2d = train(folder / "2d", *SPLIT, "--stage", "2d", "--iterations", "2", "--checkpoint-every", "2")
    events_2d += train(folder / "2d", "--resume", str(folder / "2d"), "--iterations", "3")
    events_3d = train(folder / "3d", *SPLIT[:2], *TINY, "--init-from", str(folder / "2d"), "--iterations", "2")
    return folder, events_2d, events_3d


def test_2d_stage_then_inflated_3d_stage_train_resume_and_export(runs):
    folder, events_2d, events_3d = runs
    progress = [e for e in events_2d if e["event"] == "progress"]
    assert [e["iteration"] for e in progress] == [1, 2, 3]  # resumed at 2
    assert set(progress[0]["losses"]) == {"D", "D_real", "D_fake", "G"}
    assert events_3d[-1]["event"] == "finished" and events_3d[-1]["iteration"] == 2
    card_2d, card_3d = (
        read_model_card(folder / "2d" / "model.safetensors"),
        read_model_card(folder / "3d" / "model.safetensors"),
    )
    assert card_2d.family == card_3d.family == "split-shuffle" and card_2d.parts == ("G", "D")
    assert (card_2d.config.dims, card_3d.config.dims) == (2, 3)
    assert card_2d.training["stage"] == "2d" and card_2d.training["slice_axis"] == "axial"
    assert card_3d.config == SplitShuffleConfig(**{**card_2d.config.to_dict(), "dims": 3})  # widths taken over
    assert card_3d.training["init"]["strategy"] == "center" and card_3d.training["init"]["iteration"] == 3


def test_the_inflated_3d_run_starts_as_the_2d_model_on_every_slice(runs):
    folder = runs[0]
    cfg = TrainConfig(
        family="split-shuffle",
        data="phantoms:chest-ct",
        out=str(folder / "probe"),
        resolution=32,
        preset="tiny",
        batch_size=2,
        phantom_count=4,
        init_from=str(folder / "2d" / "model.safetensors"),
        inflate="center",
    )
    trainer = SplitShuffleTrainer(cfg, Distributed(), quiet=True)
    trainer.initialise()  # what `train --init-from` does before the first iteration
    flat = load_model(folder / "2d" / "model.safetensors", parts=("G", "D"))
    z = torch.randn(2, 16)
    with torch.no_grad():
        image, volume = flat.generator(z), trainer.G(z)
        torch.testing.assert_close(volume, image[:, :, None].expand_as(volume), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(trainer.D(volume), flat.discriminator(image), rtol=1e-4, atol=1e-5)


def test_split_shuffle_files_load_sample_and_interpolate_full_volumes_only(runs, tmp_path, capsys):
    model_file = runs[0] / "3d" / "model.safetensors"
    model = load_model(model_file)
    assert isinstance(model, SplitShuffleModel) and not model.hierarchical and not model.has_encoders
    assert model.card.config.resolution == 32 and model.card.intensity.unit == "HU"
    counts = model.parameter_counts()
    assert counts["G total"] == counts["G FC layer"] + counts["G without FC"] and "D total" not in counts
    volume = sample_volume(model, SampleRequest(seed=3, part="full"))
    assert volume.array.shape == (32, 32, 32) and volume.provenance["seed"] == 3
    for part in ("anchor", "slab", "stitched"):
        with pytest.raises(ConfigError, match="^split-shuffle models have no anchor or slabs: "):
            sample_volume(model, SampleRequest(seed=3, part=part))
    frames = list(sample_volumes(model, interpolation_requests([1, 2], model.card.config.latent_dim, frames=3)))
    assert len(frames) == 3 and np.array_equal(frames[-1].array, sample_volume(model, SampleRequest(2)).array)
    assert main(["sample", "--model", str(model_file), "--seeds", "0-1", "--out", str(tmp_path / "s")]) == 0
    assert (
        main(
            ["interpolate", "--model", str(model_file), "--seeds", "0,1", "--steps", "1", "--out", str(tmp_path / "i")]
        )
        == 0
    )
    assert main(["info", "--model", str(model_file)]) == 0
    out = capsys.readouterr().out
    assert "split-shuffle" in out and "G + D" in out and "no anchor or slabs" in out
    assert len(list((tmp_path / "s").glob("*.nii.gz"))) == 2 and len(list((tmp_path / "i").glob("*.nii.gz"))) == 2


def test_two_processes_with_torchrun_match_one_process_on_slices(tmp_path):
    """DDP: each process takes its volumes' slices and latents; together they make one process's step."""
    common = [*SPLIT, "--stage", "2d", "--iterations", "1", "--slices-per-volume", "2"]
    progress = tmp_path / "ddp.jsonl"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531"]
    command += ["-m", "engine", "train", *common, "--out", str(tmp_path / "ddp"), "--progress-json", str(progress)]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-2000:]
    ddp = [json.loads(line) for line in progress.read_text().splitlines() if '"progress"' in line][0]["losses"]
    single = [e for e in train(tmp_path / "single", *common) if e["event"] == "progress"][0]["losses"]
    for name, value in single.items():
        assert ddp[name] == pytest.approx(value, rel=1e-3, abs=1e-4), name


@pytest.mark.parametrize(
    "args, expected",
    [
        (["sample", "--model", "{3d}", "--part", "anchor", "--out", "{tmp}/x.nii.gz"], "no anchor or slabs"),
        (["sample", "--model", "{2d}/model.safetensors", "--out", "{tmp}/x.nii.gz"], "is a 2D slice model"),
        (
            ["train", *SPLIT, "--init-from", "{2d}", "--inflate", "middle", "--out", "{tmp}/r"],
            "unknown inflation 'middle'",
        ),
        (["train", *SPLIT, "--init-from", "{hagan}", "--out", "{tmp}/r"], "is an ha-gan model; --init-from takes a 2D"),
        (["train", *SPLIT, "--init-from", "{3d}", "--out", "{tmp}/r"], "is a 3D split-shuffle model"),
        (["train", *SPLIT, "--init-from", "{2d}", "--g-width", "16", "--out", "{tmp}/r"], "has g_width 8, this run 16"),
        (
            ["train", *SPLIT, "--stage", "2d", "--init-from", "{2d}", "--out", "{tmp}/r"],
            "--init-from is for --stage 3d",
        ),
        (
            ["train", "--preset", "tiny", *TINY, "--stage", "2d", "--out", "{tmp}/r"],
            "--stage is for --family split-shuffle",
        ),
        (["train", *SPLIT, "--blocks", "sparse", "--out", "{tmp}/r"], "unknown block type 'sparse'"),
    ],
)
def test_bad_input_is_a_one_line_error(runs, hagan_file, tmp_path, capsys, args, expected):
    folder = runs[0]
    names = {"3d": folder / "3d" / "model.safetensors", "2d": folder / "2d", "hagan": hagan_file, "tmp": tmp_path}
    assert main([a.format(**names) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err
    assert not (tmp_path / "r").exists()  # refused before a run folder is made


@pytest.fixture(scope="module")
def hagan_file(runs):
    """HA-GAN with mixed blocks, its layers inflated from a 2D model of matching widths, 1 iteration."""
    folder = runs[0]
    widths = ["--latent-dim", "32", "--g-width", "16", "--d-width", "64", "--max-width", "256"]
    train(folder / "wide-2d", "--family", "split-shuffle", *TINY, "--stage", "2d", *widths, "--iterations", "1")
    train(
        folder / "hagan",
        "--preset",
        "tiny",
        *TINY,
        "--blocks",
        "mixed",
        "--init-from-2d",
        str(folder / "wide-2d"),
        "--iterations",
        "1",
    )
    return folder / "hagan" / "model.safetensors"


def test_hagan_with_blocks_inflated_from_2d_records_both_and_samples_every_part(hagan_file, tmp_path):
    card = read_model_card(hagan_file)
    assert card.config.blocks == "mixed" and card.family == "ha-gan"
    assert "G.tp_conv4 <- G.blocks.0" in card.training["init"]["layers"]
    model = load_model(hagan_file)
    assert model.hierarchical and isinstance(model.generator.tp_conv1, SplitShuffleConv)
    for part in ("anchor", "slab", "full"):
        out = tmp_path / f"{part}.nii.gz"
        assert main(["sample", "--model", str(hagan_file), "--part", part, "--slab-start", "4", "--out", str(out)]) == 0
