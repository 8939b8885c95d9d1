"""The seed -> latent contract, seed lists, truncation, lerp and slerp, and a point along a keyframe path."""

import pytest
import torch

from engine.errors import ConfigError
from engine.interpolation import path_point
from engine.latent import lerp, parse_seeds, seed_to_z, seeds_to_z, slerp, truncate


def test_seed_to_z_follows_the_contract():
    expected = torch.randn(1, 1024, generator=torch.Generator("cpu").manual_seed(42))
    assert torch.equal(seed_to_z(42, 1024), expected)
    assert not torch.equal(seed_to_z(42, 1024), seed_to_z(43, 1024))


def test_a_batch_of_seeds_has_one_row_per_seed_drawn_alone():
    batch = seeds_to_z([5, 1, 5], 64)
    assert torch.equal(batch[0], seed_to_z(5, 64)[0]) and torch.equal(batch[1], seed_to_z(1, 64)[0])
    assert torch.equal(batch[0], batch[2])


@pytest.mark.parametrize(
    "text, seeds",
    [("0,3,10-12", [0, 3, 10, 11, 12]), ("7", [7]), (" 4 - 5 , 1", [4, 5, 1]), ("2,2", [2, 2])],
)
def test_seed_lists(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "5-2", "1,,x", "-3"])
def test_bad_seed_lists_are_refused(text):
    with pytest.raises(ConfigError):
        parse_seeds(text)


def test_truncation_scales_toward_the_mean():
    z = seed_to_z(1, 16)
    assert torch.equal(truncate(z, 1.0), z)
    assert torch.allclose(truncate(z, 0.5), z / 2)
    for bad in (0.0, 1.5, -1):
        with pytest.raises(ConfigError):
            truncate(z, bad)


def test_interpolation_endpoints_and_norms():
    a, b = seed_to_z(1, 1024), seed_to_z(2, 1024)
    for interpolate in (lerp, slerp):
        assert torch.allclose(interpolate(a, b, 0.0), a, atol=1e-5)
        assert torch.allclose(interpolate(a, b, 1.0), b, atol=1e-5)
    # slerp keeps a midpoint latent at a typical norm; lerp shrinks it toward the origin
    typical = (a.norm() + b.norm()) / 2
    assert abs(slerp(a, b, 0.5).norm() - typical) < 1e-3 * typical
    assert lerp(a, b, 0.5).norm() < 0.8 * typical


def test_a_keyframe_path_passes_through_every_keyframe_in_equal_segments():
    keys = [seed_to_z(s, 64) for s in (1, 2, 3)]
    for method, interpolate in (("lerp", lerp), ("slerp", slerp)):
        assert torch.equal(path_point(keys, 0.0, method), keys[0])
        assert torch.equal(path_point(keys, 0.5, method), keys[1])
        assert torch.equal(path_point(keys, 1.0, method), keys[2])
        assert torch.allclose(path_point(keys, 0.25, method), interpolate(keys[0], keys[1], 0.5))
        assert torch.allclose(path_point(keys, 0.875, method), interpolate(keys[1], keys[2], 0.75))


@pytest.mark.parametrize("keys, t, method", [(1, 0.5, "slerp"), (2, 1.5, "slerp"), (2, 0.5, "cubic")])
def test_bad_paths_are_refused(keys, t, method):
    with pytest.raises(ConfigError):
        path_point([seed_to_z(s, 8) for s in range(keys)], t, method)
