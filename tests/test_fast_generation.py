"""The fast path equals the straightforward forward pass: no tiling approximation, no seams."""

import pytest
import torch
import torch.nn.functional as F

from engine.card import ModelCard
from engine.errors import ConfigError
from engine.generate import FastGenerator, GenerationOptions, SampleRequest, generate_part, sample_volumes
from engine.model import HAGANModel
from engine.models.hagan import Generator, HAGANConfig
from engine.subpixel import conv3d_chunked, group_norm_affine, phase_kernels, upsample_conv3d

TOLERANCE = 1e-4


def lively_generator(config: HAGANConfig, seed: int = 0) -> Generator:
    """Random weights large enough that every layer matters (default init nearly flattens G^H)."""
    torch.manual_seed(seed)
    g = Generator(config)
    for p in g.parameters():
        p.data.normal_(0.0, 0.2)
    return g.eval()


@pytest.mark.parametrize("rows", [1, 3, 5, None])
def test_subpixel_convolution_equals_upsample_then_convolve(rows):
    torch.manual_seed(1)
    x, w, b = torch.randn(2, 5, 7, 6, 5), torch.randn(4, 5, 3, 3, 3) * 0.2, torch.randn(4)
    expected = F.conv3d(F.interpolate(x, scale_factor=2), w, b, padding=1)
    assert (upsample_conv3d(x, phase_kernels(w), b, rows=rows) - expected).abs().max() < TOLERANCE
    assert (conv3d_chunked(x, w, b, rows=rows) - F.conv3d(x, w, b, padding=1)).abs().max() < TOLERANCE


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_group_norm_from_matrix_products_equals_group_norm(dtype):
    torch.manual_seed(2)
    norm = torch.nn.GroupNorm(8, 16)
    norm.weight.data.normal_()
    norm.bias.data.normal_()
    x = (torch.randn(3, 16, 9, 4, 5) * 3 + 1).to(dtype).contiguous(memory_format=torch.channels_last_3d)
    expected = F.relu(norm(x.float()))
    scale, shift = group_norm_affine(x, 8, norm.weight, norm.bias, norm.eps)
    assert (F.relu(x.float() * scale + shift) - expected).abs().max() < 1e-5
    # and applied on the way into the last convolution, as G^H does
    w = torch.randn(2, 16, 3, 3, 3) * 0.2
    ours = upsample_conv3d(x.float(), phase_kernels(w), None, rows=4, normalize=(scale, shift))
    assert (ours - F.conv3d(F.interpolate(expected, scale_factor=2), w, padding=1)).abs().max() < TOLERANCE


# 128 and 256 are checked end to end against an independent reference in test_sample_cli.py
@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("batch", [1, 3])
def test_every_part_equals_the_straightforward_pass(resolution, batch):
    config = HAGANConfig(resolution=resolution, latent_dim=16, g_width=16)
    g = lively_generator(config)
    z = torch.randn(batch, 16)
    # 3 rows per chunk divides none of the depths here (8 .. 64), so chunk edges fall everywhere
    for fast in (FastGenerator(g, chunk_rows=3), FastGenerator(g, budget_mb=0.01), FastGenerator(g)):
        with torch.no_grad():
            expected_features = g.features(z)
            features = fast.features(z)
            assert (features - expected_features).abs().max() < TOLERANCE
            pairs = [
                (fast.anchor(features), g.anchor(expected_features)),
                (fast.full(features), g.full(expected_features)),
                (fast.slab(features, 4), g.slab(expected_features, 4)),
                (fast.stitched(features), g.stitched(expected_features)),
            ]
        for ours, expected in pairs:
            assert ours.shape == expected.shape and expected.std() > 0.01
            assert (ours - expected).abs().max() < TOLERANCE


def test_a_generator_whose_weights_change_gives_the_new_volume():
    config = HAGANConfig(resolution=32, latent_dim=16, g_width=16)
    g = lively_generator(config)
    z = torch.randn(1, 16)
    first = FastGenerator(g)
    before = first.full(first.features(z))  # the derived kernels are kept beside g now
    with torch.no_grad():
        g.tp_conv6.weight.mul_(-1.5)  # in place, as an optimiser step or an EMA update does
        g.tp_conv3.weight = torch.nn.Parameter(g.tp_conv3.weight * 0.5)  # replaced
        expected = g.full(g.features(z))
    fast = FastGenerator(g)
    after = fast.full(fast.features(z))
    assert (after - expected).abs().max() < TOLERANCE and (after - before).abs().max() > 0.1


def test_generate_part_defaults_to_the_fast_path_and_keeps_reference_on_request(monkeypatch):
    config = HAGANConfig(resolution=32, latent_dim=16, g_width=16)
    model = HAGANModel(ModelCard(config=config), lively_generator(config))
    z = torch.randn(1, 16)
    calls = []
    monkeypatch.setattr("engine.generate.upsample_conv3d", lambda *a, **k: calls.append(1) or upsample_conv3d(*a, **k))
    fast = generate_part(model, z, "full")
    assert calls, "the default path must use the sub-pixel convolution"
    calls.clear()
    reference = generate_part(model, z, "full", reference=True)
    assert not calls
    assert (fast - reference).abs().max() < TOLERANCE


def test_batched_seed_lists_equal_one_by_one():
    config = HAGANConfig(resolution=32, latent_dim=16, g_width=16)
    model = HAGANModel(ModelCard(config=config), lively_generator(config))
    requests = [SampleRequest(seed, "full") for seed in (4, 9, 2, 7, 1)]
    one_by_one = [v.array for v in sample_volumes(model, requests, GenerationOptions(batch_size=1))]
    batched = list(sample_volumes(model, requests, GenerationOptions(batch_size=3)))
    assert [v.provenance["seed"] for v in batched] == [4, 9, 2, 7, 1]
    for a, b in zip(one_by_one, batched):
        assert abs(a - b.array).max() < TOLERANCE


def test_reduced_precision_is_refused_on_the_cpu_and_bad_budgets_too():
    g = Generator(HAGANConfig(resolution=32, latent_dim=16, g_width=16))
    with pytest.raises(ConfigError, match="GPU"):
        FastGenerator(g, precision="fp16")
    with pytest.raises(ConfigError, match="budget"):
        FastGenerator(g, budget_mb=0)
