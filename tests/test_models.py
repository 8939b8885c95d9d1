"""The networks: official layouts, every resolution, batch size 1, hierarchy semantics."""

import pytest
import torch
from reference_hagan import official_keys, official_listing

from engine.errors import ConfigError
from engine.models.hagan import Discriminator, Encoder, Generator, HAGANConfig, SubEncoder, encode_volume

NETWORKS = {"Generator": Generator, "Discriminator": Discriminator, "Encoder": Encoder, "Sub_Encoder": SubEncoder}


@pytest.mark.parametrize("resolution", [128, 256])
@pytest.mark.parametrize("network", list(NETWORKS))
def test_official_preset_has_the_official_keys_and_shapes(resolution, network):
    net = NETWORKS[network](HAGANConfig.official(resolution))
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert ours == official_keys(resolution, network)
    expected = official_listing()["variants"][str(resolution)][network]["num_parameters"]
    assert sum(p.numel() for p in net.parameters()) == expected


def test_conditional_preset_matches_the_official_changes():
    listing = official_listing()["variants"]["128"]["conditional_example_num_class_3"]
    config = HAGANConfig.official(128, num_class=3)
    g, d = Generator(config).state_dict(), Discriminator(config).state_dict()
    for key, shape in listing["Generator_changed_or_added"].items():
        assert tuple(g[key].shape) == tuple(shape)
    for key, shape in listing["Discriminator_changed_or_added"].items():
        assert tuple(d[key].shape) == tuple(shape)


@pytest.mark.parametrize("resolution", [32, 64, 128])
def test_every_part_has_the_documented_shape_with_batch_size_one(resolution):
    config = HAGANConfig(resolution=resolution, latent_dim=32, g_width=16, d_width=8, e_width=8)
    g, d, e, sub_e = Generator(config), Discriminator(config), Encoder(config), SubEncoder(config)
    s, q, t = resolution, resolution // 4, resolution // 8
    with torch.no_grad():
        f = g.features(torch.randn(1, 32))
        assert f.shape == (1, 32, q, q, q)
        assert g.anchor(f).shape == (1, 1, q, q, q)
        assert g.slab(f, 4).shape == (1, 1, t, s, s)
        assert g.full(f).shape == (1, 1, s, s, s)
        assert g.stitched(f).shape == (1, 1, s, s, s)
        out = d(g.slab(f, 4), g.anchor(f), 4)
        assert out.logit.shape == (1, 1) and out.class_logits is None
        assert e(g.slab(f, 0)).shape == (1, 32, t // 4, q, q)
        assert sub_e(f).shape == (1, 32)
        assert encode_volume(e, sub_e, g.full(f)).shape == (1, 32)


def test_slab_is_the_full_pass_on_the_cropped_features(tiny_config):
    g = Generator(tiny_config)
    with torch.no_grad():
        f = g.features(torch.randn(2, 16))
        assert torch.equal(g.slab(f, 8), g.high_res(f[:, :, 2:3]))
        # slab statistics differ from whole-volume statistics: stitched slabs are not the full volume
        assert (g.stitched(f) - g.full(f)).abs().max() > 1e-3


def test_slab_start_must_be_a_multiple_of_four_inside_the_volume(tiny_config):
    g = Generator(tiny_config)
    f = g.features(torch.randn(1, 16))
    for bad in (2, -4, 32):
        with pytest.raises(ConfigError, match="multiple of 4"):
            g.slab(f, bad)
    assert g.slab(f, 28).shape[2] == 4  # the last valid start, 7S/8


def test_conditional_generator_needs_and_uses_the_label():
    config = HAGANConfig(resolution=32, latent_dim=16, num_class=3, g_width=16, d_width=8, e_width=8)
    g, d = Generator(config), Discriminator(config)
    z = torch.randn(1, 16)
    with pytest.raises(ConfigError, match="class label"):
        g.features(z)
    with torch.no_grad():
        a, b = g.features(z, torch.tensor([0])), g.features(z, torch.tensor([2]))
        assert (a - b).abs().max() > 0
        out = d(g.slab(a, 0), g.anchor(a), 0)
    assert out.class_logits.shape == (1, 3)


def test_discriminator_uses_the_crop_position(tiny_config):
    d = Discriminator(tiny_config).eval()
    slab, anchor = torch.randn(1, 1, 4, 32, 32), torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        assert d(slab, anchor, 0).logit != d(slab, anchor, 28).logit


def test_spectral_norm_bounds_the_largest_singular_value(tiny_config):
    d = Discriminator(tiny_config).train()
    layer = d.conv4
    for _ in range(50):  # power iterations converge in training mode
        layer.normalised_weight()
    sigma = torch.linalg.matrix_norm(layer.normalised_weight().flatten(1), ord=2)
    assert abs(float(sigma.detach()) - 1.0) < 1e-2
    u_before = layer.u0.clone()
    d.eval()
    layer.normalised_weight()
    assert torch.equal(u_before, layer.u0)  # eval mode leaves the estimate alone


@pytest.mark.parametrize("bad", [dict(resolution=100), dict(g_width=24), dict(d_width=4), dict(latent_dim=0)])
def test_impossible_configurations_are_refused(bad):
    with pytest.raises(ConfigError):
        HAGANConfig(**{"resolution": 64, **bad})
