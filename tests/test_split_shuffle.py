"""Split&Shuffle-GAN: channel shuffle, blocks, parameter budgets, HA-GAN with blocks, model files."""

import pytest
import torch

from engine.errors import ConfigError
from engine.models.hagan import Discriminator, Generator, HAGANConfig
from engine.models.split_shuffle import (
    BLOCK_TYPES,
    SplitShuffleConfig,
    SplitShuffleDiscriminator,
    SplitShuffleGenerator,
    channel_shuffle,
    channel_unshuffle,
    count_parameters,
    make_conv,
    replaced_parameters,
)


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
