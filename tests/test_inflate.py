"""Inflation of 2D weights into 3D twins: each strategy's defining property, layer by layer and end to end."""

import pytest
import torch

from engine.errors import ConfigError
from engine.models.hagan import Discriminator, Generator, HAGANConfig
from engine.models.inflate import STRATEGIES, inflate, inflate_kernel, inflate_matching, inflate_state_dict
from engine.models.split_shuffle import (
    BLOCK_TYPES,
    SplitShuffleConfig,
    SplitShuffleDiscriminator,
    SplitShuffleGenerator,
    make_conv,
)

GEOMETRIES = [(3, 1, 1), (4, 2, 1)]  # the generator's and the discriminator's convolutions


def twins(block: str, geometry, strategy: str, seed: int = 0):
    """A random 2D layer and its 3D twin inflated from it."""
    torch.manual_seed(seed)
    kernel, stride, padding = geometry
    layer_2d = make_conv(7, 5, kernel, stride, padding, dims=2, block=block, groups=3)
    layer_3d = make_conv(7, 5, kernel, stride, padding, dims=3, block=block, groups=3)
    return layer_2d, inflate(layer_2d, layer_3d, strategy)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("block", BLOCK_TYPES)
def test_center_inflation_is_the_2d_layer_slice_by_slice(block, geometry):
    layer_2d, layer_3d = twins(block, geometry, "center")
    kernel, stride, padding = geometry
    x = torch.randn(2, 7, 8, 8, 8)
    with torch.no_grad():
        y = layer_3d(x)
        # output slice j reads input slice j*stride - padding + kernel // 2 (the middle tap)
        slices = [layer_2d(x[:, :, j * stride - padding + kernel // 2]) for j in range(y.shape[2])]
    torch.testing.assert_close(y, torch.stack(slices, dim=2), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("block", BLOCK_TYPES)
def test_average_inflation_responds_like_2d_on_depth_constant_volumes(block, geometry):
    layer_2d, layer_3d = twins(block, geometry, "average")
    image = torch.randn(2, 7, 8, 8)
    volume = image[:, :, None].expand(-1, -1, 8, -1, -1)
    with torch.no_grad():
        y, expected = layer_3d(volume), layer_2d(image)
    inner = y[:, :, 1:-1]  # away from the depth borders, where zero padding enters
    torch.testing.assert_close(inner, expected[:, :, None].expand_as(inner), rtol=1e-5, atol=1e-5)
    if block in ("dense", "grouped"):  # every tap reads padding at the border: the response differs there
        assert (y[:, :, 0] - expected).abs().max() > 1e-3


@pytest.mark.parametrize("block", BLOCK_TYPES)
def test_repeat_inflation_is_kd_times_the_2d_response_per_inflated_branch(block):
    layer_2d, layer_3d = twins(block, (3, 1, 1), "repeat")
    branches_2d = getattr(layer_2d, "branches", [layer_2d])
    branches_3d = getattr(layer_3d, "branches", [layer_3d])
    for conv_2d, conv_3d in zip(branches_2d, branches_3d):
        depth = conv_3d.weight.shape[2]
        image = torch.randn(1, conv_2d.in_channels, 8, 8)
        volume = image[:, :, None].expand(-1, -1, 8, -1, -1)
        with torch.no_grad():
            y = conv_3d(volume)[:, :, 1:-1] - conv_3d.bias[:, None, None, None]
            expected = depth * (conv_2d(image) - conv_2d.bias[:, None, None])
        assert depth in (1, 3)
        torch.testing.assert_close(y, expected[:, :, None].expand_as(y), rtol=1e-5, atol=1e-5)


def test_random_inflation_leaves_the_3d_initialisation_untouched():
    torch.manual_seed(1)
    config = SplitShuffleConfig(resolution=16, latent_dim=8, g_width=8, d_width=8, max_width=32)
    model_2d = SplitShuffleGenerator(SplitShuffleConfig(**{**config.to_dict(), "dims": 2}))
    model_3d = SplitShuffleGenerator(config)
    before = {k: v.clone() for k, v in model_3d.state_dict().items()}
    inflate(model_2d, model_3d, "random")
    assert all(torch.equal(v, before[k]) for k, v in model_3d.state_dict().items())


def test_kernels_fc_and_even_depths():
    w = torch.randn(3, 2, 4, 4)
    center = inflate_kernel(w, 4, "center")
    assert torch.equal(center[:, :, 2], w) and center[:, :, [0, 1, 3]].abs().sum() == 0  # even kd: tap kd // 2
    torch.testing.assert_close(inflate_kernel(w, 3, "average").sum(2), w)
    assert torch.equal(inflate_kernel(w, 1, "average")[:, :, 0], w)  # in-plane kernels are copied exactly
    config = SplitShuffleConfig(resolution=16, latent_dim=8, g_width=8, d_width=8, max_width=32)
    model_2d = SplitShuffleGenerator(SplitShuffleConfig(**{**config.to_dict(), "dims": 2}))
    model_3d = SplitShuffleGenerator(config)
    z = torch.randn(2, 8)
    for strategy, scale in (("center", 1.0), ("average", 0.25), ("repeat", 1.0)):
        state = inflate_state_dict(model_2d.state_dict(), model_3d, strategy)
        model_3d.load_state_dict(state)
        with torch.no_grad():
            flat, deep = model_2d.fc(z).view(2, -1, 4, 4), model_3d.fc(z).view(2, -1, 4, 4, 4)
        for depth in range(4):  # the 2D map tiled along depth
            torch.testing.assert_close(deep[:, :, depth], scale * flat)
    kept = model_3d.fc.weight.clone()
    model_3d.load_state_dict(inflate_state_dict(model_2d.state_dict(), model_3d, "center", fc="random"))
    assert torch.equal(model_3d.fc.weight, kept)


def test_spectral_norm_u_is_copied_center_keeps_sigma_average_divides_it_by_sqrt_kd():
    layer_2d = make_conv(6, 4, 4, 2, 1, dims=2, spectral_norm=True)
    for strategy, factor in (("center", 1.0), ("average", 4**-0.5)):
        layer_3d = inflate(layer_2d, make_conv(6, 4, 4, 2, 1, dims=3, spectral_norm=True), strategy)
        assert torch.equal(layer_3d.u0, layer_2d.u0)
        sigma_2d = torch.linalg.matrix_norm(layer_2d.weight.flatten(1), ord=2)
        sigma_3d = torch.linalg.matrix_norm(layer_3d.weight.flatten(1), ord=2)
        torch.testing.assert_close(sigma_3d, factor * sigma_2d)


@pytest.mark.parametrize("block", BLOCK_TYPES)
def test_a_center_inflated_model_is_the_2d_model_on_every_slice_end_to_end(block):
    """The first forward pass of an inflated 3D GAN: G(z) is the 2D image on every slice, and D of
    a volume repeating one image is the 2D D of that image (spectral norm included, in training mode)."""
    torch.manual_seed(2)
    config = SplitShuffleConfig(resolution=32, latent_dim=8, g_width=8, d_width=8, max_width=32, blocks=block)
    flat = SplitShuffleConfig(**{**config.to_dict(), "dims": 2})
    g_2d, d_2d = SplitShuffleGenerator(flat), SplitShuffleDiscriminator(flat)
    g_3d = inflate(g_2d, SplitShuffleGenerator(config), "center")
    d_3d = inflate(d_2d, SplitShuffleDiscriminator(config), "center")
    z = torch.randn(2, 8)
    with torch.no_grad():
        image, volume = g_2d(z), g_3d(z)
        torch.testing.assert_close(volume, image[:, :, None].expand_as(volume), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(d_3d(volume), d_2d(image), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("strategy", ["average", "repeat"])
def test_every_kernel_of_an_inflated_model_follows_its_strategy(strategy):
    torch.manual_seed(3)
    config = SplitShuffleConfig(resolution=16, latent_dim=8, g_width=8, d_width=8, max_width=32, blocks="planes")
    d_2d = SplitShuffleDiscriminator(SplitShuffleConfig(**{**config.to_dict(), "dims": 2}))
    d_3d = inflate(d_2d, SplitShuffleDiscriminator(config), strategy)
    convs_2d = {name: m for name, m in d_2d.named_modules() if isinstance(m, torch.nn.Conv2d)}
    convs_3d = {name: m for name, m in d_3d.named_modules() if isinstance(m, torch.nn.Conv3d)}
    assert convs_3d.keys() == convs_2d.keys() and len(convs_3d) == 5  # first, 3 branches of a block, logit
    for name, conv in convs_3d.items():
        w2, depth = convs_2d[name].weight, conv.weight.shape[2]
        tap = w2 / depth if strategy == "average" and depth > 1 else w2
        for k in range(depth):  # every depth tap: W2 / kd (average) or W2 (repeat); in-plane kernels W2
            assert torch.equal(conv.weight[:, :, k], tap), (name, k)
        assert torch.equal(conv.bias, convs_2d[name].bias) and torch.equal(conv.u0, convs_2d[name].u0)


def test_what_is_not_a_twin_or_not_a_strategy_is_refused():
    config = SplitShuffleConfig(resolution=16, latent_dim=8, g_width=8, d_width=8, max_width=32)
    other = SplitShuffleConfig(resolution=16, latent_dim=8, g_width=16, d_width=8, max_width=32, dims=2)
    with pytest.raises(ConfigError, match="has no 3D counterpart"):
        inflate(SplitShuffleGenerator(other), SplitShuffleGenerator(config))
    planes = SplitShuffleConfig(**{**config.to_dict(), "dims": 2, "blocks": "planes"})
    with pytest.raises(ConfigError, match="not this network's twin"):
        inflate(SplitShuffleGenerator(planes), SplitShuffleGenerator(config))
    with pytest.raises(ConfigError, match="unknown inflation 'middle'"):
        inflate(
            SplitShuffleGenerator(SplitShuffleConfig(**{**config.to_dict(), "dims": 2})),
            SplitShuffleGenerator(config),
            "middle",
        )
    assert STRATEGIES == ("center", "average", "repeat", "random")


def test_a_2d_model_inflates_into_hagan_where_layers_correspond():
    torch.manual_seed(4)
    hagan = HAGANConfig(resolution=32, latent_dim=16, g_width=16, d_width=8, e_width=8, blocks="mixed")
    # 2D widths that line up with HA-GAN's: g 16 up to 16g = 256 channels, same latent size
    flat = SplitShuffleConfig(resolution=32, dims=2, latent_dim=16, g_width=16, d_width=64, max_width=256)
    g_2d, d_2d = SplitShuffleGenerator(flat), SplitShuffleDiscriminator(flat)
    g_3d, d_3d = Generator(hagan), Discriminator(hagan)
    untouched = {k: v.clone() for k, v in g_3d.state_dict().items()}
    pairs = dict(inflate_matching({"G": g_2d, "D": d_2d}, {"G": g_3d, "D": d_3d}, "center"))
    assert pairs["G.tp_conv4"] == "G.blocks.0" and pairs["G.tp_conv6"] == "G.blocks.2"
    assert pairs["G.tp_conv7"] == "G.out" and pairs["G.sub_G.tp_conv1"] == "G.blocks.2"
    assert pairs["D.conv4"] == "D.first"  # HA-GAN 32's D^H starts at conv4: (2, 4, 4), stride 2
    assert "G.fc1" not in pairs  # 128 x 4x4 in 2D versus 256 x 4x4x4: no correspondence
    k3 = g_3d.tp_conv4.branches[0].weight
    assert torch.equal(k3[:, :, 1], g_2d.blocks[0].branches[0].weight) and k3[:, :, 0].abs().sum() == 0
    assert torch.equal(g_3d.tp_conv4.branches[1].weight[:, :, 0], g_2d.blocks[0].branches[1].weight)
    assert torch.equal(g_3d.bn4.weight, g_2d.norms[0].weight)
    assert torch.equal(g_3d.tp_conv4.branches[0].bias, torch.zeros(32))  # the 2D block has no bias
    assert torch.equal(g_3d.tp_conv1.branches[0].weight, untouched["tp_conv1.branches.0.weight"])
    assert torch.equal(d_3d.conv4.weight[:, :, 1], d_2d.first.weight)
