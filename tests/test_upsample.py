"""G's upsampling option: nearest (the official networks), trilinear or blur, without new weights."""

import dataclasses

import pytest
import torch

from engine.card import ModelCard
from engine.checkpoints import load_model, read_model_card, save_model
from engine.cli import main
from engine.generate import FastGenerator, SampleRequest, sample_volume
from engine.model import HAGANModel
from engine.models.hagan import Generator, HAGANConfig
from engine.models.layers import upsample2

MODES = ("nearest", "trilinear", "blur")


def test_a_smooth_upsampling_leaves_no_two_voxel_staircase():
    ramp = torch.arange(8.0).view(1, 1, 8, 1, 1).expand(1, 1, 8, 8, 8).contiguous()
    bands = {}
    for mode in MODES:
        profile = upsample2(ramp, mode)[0, 0, :, 8, 8]
        second = profile[3:-3] - (profile[2:-4] + profile[4:-2]) / 2  # away from the borders
        bands[mode] = second.abs().max().item()
    assert bands["nearest"] == pytest.approx(0.5)  # each source slice copied twice: a staircase
    assert bands["trilinear"] < 1e-5 and bands["blur"] < 1e-5  # a ramp stays a ramp


@pytest.mark.parametrize("mode", MODES[1:])
def test_every_part_keeps_its_shape_and_the_official_keys(tiny_config, mode):
    smooth = dataclasses.replace(tiny_config, upsample=mode)
    torch.manual_seed(0)
    plain = Generator(tiny_config)
    other = Generator(smooth)
    other.load_state_dict(plain.state_dict())  # the same weights fit: no layer was added
    z = torch.randn(2, tiny_config.latent_dim)
    for g in (plain, other):
        features = g.features(z)
        assert features.shape == (2, 32, 8, 8, 8)
        assert g.anchor(features).shape == (2, 1, 8, 8, 8)
        assert g.slab(features, 8).shape == (2, 1, 4, 32, 32)
        assert g(z).shape == (2, 1, 32, 32, 32)
    assert not torch.allclose(plain(z), other(z), atol=1e-3)  # the option does change the output
    with torch.device("meta"):
        official = Generator(HAGANConfig.official(128)).state_dict()
        switched = Generator(dataclasses.replace(HAGANConfig.official(128), upsample=mode)).state_dict()
    assert {k: v.shape for k, v in official.items()} == {k: v.shape for k, v in switched.items()}


def test_the_card_records_the_upsampling_so_the_file_samples_as_trained(tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, upsample="trilinear")
    torch.manual_seed(1)
    model = HAGANModel.build(ModelCard(config=config, name="smooth"), parts=("G",))
    path = save_model(model, tmp_path / "smooth.safetensors")
    assert read_model_card(path).config.upsample == "trilinear"
    loaded = load_model(path)
    z = torch.randn(1, config.latent_dim)
    expected = loaded.generator(z)
    # the fast generator's sub-pixel kernels hold for nearest only: it must fall back, not differ
    assert torch.allclose(FastGenerator(loaded.generator).full(FastGenerator(loaded.generator).features(z)), expected)
    assert sample_volume(loaded, SampleRequest(3)).array.shape == (32, 32, 32)
    card = ModelCard.from_dict({k: v for k, v in ModelCard(config=tiny_config).to_dict().items() if k != "upsample"})
    assert card.config.upsample == "nearest"  # cards from before the option: the official upsampling


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--upsample", "cubic"], "unknown upsampling 'cubic'; choose one of nearest, trilinear, blur"),
        (["--family", "split-shuffle", "--upsample", "blur"], "--upsample is for HA-GAN"),
    ],
)
def test_a_bad_upsampling_is_a_one_line_error(tmp_path, capsys, extra, expected):
    assert main(["train", "--phantoms", "chest-ct", "--out", str(tmp_path / "r"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]


def test_fine_tuning_may_switch_a_nearest_model_to_a_smooth_upsampling(tiny_config, tmp_path):
    from engine.training.config import TrainConfig
    from engine.training.init_source import adopt_hagan_network, check_sources

    model = HAGANModel.build(ModelCard(config=tiny_config), parts=("G", "E", "Sub_E"))
    path = str(save_model(model, tmp_path / "nearest.safetensors"))
    given = adopt_hagan_network({"init_from": path, "upsample": "trilinear"}, path)
    cfg = TrainConfig(data="phantoms:chest-ct", out=str(tmp_path / "run"), **given)
    check_sources(cfg)  # the same weights fit: no error
    assert cfg.network() == dataclasses.replace(tiny_config, upsample="trilinear")
    assert adopt_hagan_network({"init_from": path}, path)["upsample"] == "nearest"  # taken over unless given
