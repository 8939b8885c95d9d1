"""Metrics on constructed inputs with known answers: FID, MMD, seam score, (MS-)SSIM, PSNR, NMSE,
intensity statistics, and the Med3D ResNet-50 (shapes, MedicalNet weight files, errors)."""

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from engine.errors import CheckpointError, ConfigError
from engine.metrics import (
    CT_TISSUE_BINS,
    FIDMetric,
    IntensityHistogram,
    Med3DResNet,
    MMDMetric,
    RandomSliceEncoder,
    SliceExtractor,
    build_extractor,
    feature_statistics,
    frechet_distance,
    histogram_wasserstein,
    intensity_wasserstein,
    load_med3d_weights,
    med3d_resnet50,
    median_alpha,
    mmd2_unbiased,
    ms_ssim3d,
    ms_ssim_levels,
    nmse,
    pairwise_ms_ssim,
    psnr,
    reconstruction_metrics,
    seam_score,
    slab_boundaries,
    ssim3d,
    tissue_fractions,
)
from engine.metrics.reconstruction import baseline_metrics
from engine.metrics.seams import STEP_FLOOR, adjacent_jump
from engine.metrics.ssim import ms_ssim_scales

# -- Fréchet distance ------------------------------------------------------------------------


def gaussian_sample(rng, mean, cov, n):
    return rng.multivariate_normal(mean, cov, size=n)


def test_identical_feature_sets_give_fid_near_zero():
    features = np.random.default_rng(0).normal(size=(400, 16))
    assert FIDMetric()(features, features) == pytest.approx(0.0, abs=1e-6)
    assert FIDMetric()(torch.from_numpy(features), torch.from_numpy(features.copy())) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(1)
    rotation, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    a, b = np.array([1.0, 2.0, 0.5, 3.0]), np.array([2.0, 0.5, 0.5, 1.0])
    cov1, cov2 = rotation @ np.diag(a) @ rotation.T, rotation @ np.diag(b) @ rotation.T  # they commute
    mu1, mu2 = np.zeros(4), np.array([1.0, -1.0, 0.5, 0.0])
    # commuting covariances: ||mu1 - mu2||^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(expected, rel=1e-8)
    x, y = gaussian_sample(rng, mu1, cov1, 40000), gaussian_sample(rng, mu2, cov2, 40000)
    assert FIDMetric()(x, y) == pytest.approx(expected, rel=0.05)


def test_fid_survives_singular_covariances_and_rejects_bad_shapes():
    rng = np.random.default_rng(2)
    few, other = rng.normal(size=(5, 64)), rng.normal(size=(6, 64)) + 1.0  # rank 4 and 5 covariances
    value = FIDMetric()(few, other)  # exact, in sample space
    assert math.isfinite(value) and value > 0
    via_sqrtm = frechet_distance(*feature_statistics(few), *feature_statistics(other))  # eps fallback
    assert value == pytest.approx(via_sqrtm, rel=1e-5)
    with pytest.raises(ConfigError, match="feature matrix"):
        FIDMetric()(rng.normal(size=(5,)), few)
    with pytest.raises(ConfigError, match="at least 2 samples"):
        FIDMetric()(few[:1], few)


# -- MMD ---------------------------------------------------------------------------------------


def brute_force_mmd2(x, y, alpha):
    k = lambda a, b: math.exp(-alpha * float(np.sum((a - b) ** 2)))  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(a, b) for a in x for b in y) / (m * n)
    return xx + yy - 2 * xy


def test_mmd_equals_the_unbiased_estimator_with_the_median_heuristic():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3)) + 0.7
    pooled = np.concatenate([x, y])
    distances = [np.linalg.norm(a - b) for i, a in enumerate(pooled) for b in pooled[i + 1 :]]
    alpha = 1.0 / np.median(distances) ** 2
    assert median_alpha(torch.from_numpy(pooled)) == pytest.approx(alpha, rel=1e-9)
    assert mmd2_unbiased(x, y) == pytest.approx(brute_force_mmd2(x, y, alpha), rel=1e-9)


def test_mmd_of_a_set_with_itself_is_near_zero_and_grows_with_a_shift():
    x = np.random.default_rng(4).normal(size=(300, 16))
    assert abs(MMDMetric()(x, x)) < 0.01
    values = [MMDMetric()(x, x + shift) for shift in (0.25, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and values[0] > 0.01 and values[-1] > 0.3
    with pytest.raises(ConfigError, match="feature sizes differ"):
        mmd2_unbiased(x, x[:, :3])


# -- seam score --------------------------------------------------------------------------------


def smooth_volume(size=64, seed=0):
    noise = np.random.default_rng(seed).normal(size=(size, size, size))
    return gaussian_filter(noise, 2.0)


def test_slab_boundaries_are_the_inner_multiples_of_s_over_8():
    assert slab_boundaries(32) == [4, 8, 12, 16, 20, 24, 28]
    assert slab_boundaries(256) == [32, 64, 96, 128, 160, 192, 224]
    with pytest.raises(ConfigError):
        slab_boundaries(60)


def test_seam_score_is_near_one_for_a_smooth_volume():
    volume = smooth_volume()
    for axis in (0, 1, 2):
        scores = seam_score(volume, slab_boundaries(64), axis=axis)
        assert scores.shape == (7,)
        assert np.all((scores > 0.75) & (scores < 1.35)), scores
        assert abs(scores.mean() - 1) < 0.15


def test_seam_score_finds_planted_discontinuities():
    volume = smooth_volume()
    scale = np.abs(np.diff(volume, axis=0)).mean()
    planted = volume.copy()
    for k, b in enumerate(slab_boundaries(64)):
        planted[b:] += (-1) ** k * 5 * scale  # a step of 5 typical slice differences at every boundary
    scores = seam_score(planted, slab_boundaries(64))
    assert np.all(scores > 3), scores
    # only the planted planes: other planes and other axes stay seam-free
    assert np.all(seam_score(planted, [4, 12, 20, 36]) < 1.35)
    assert np.all(seam_score(planted, slab_boundaries(64), axis=1) < 1.35)
    # a torch tensor in network layout (1, 1, D, H, W) gives the same
    tensor = torch.from_numpy(planted).float()[None, None]
    assert np.allclose(seam_score(tensor, slab_boundaries(64)), scores, rtol=1e-4)


def test_seam_score_period_compares_like_with_like():
    """A 4-periodic texture puts every boundary on the same phase: period 4 is not fooled by it."""
    volume = smooth_volume(64) * 0.1
    sawtooth = (np.arange(64) % 4) * 0.1  # the step from 3 to 0 falls on every multiple of 4
    textured = volume + sawtooth[:, None, None]
    assert seam_score(textured, slab_boundaries(64)).mean() > 2  # adjacent steps: a false seam
    assert abs(seam_score(textured, slab_boundaries(64), period=4).mean() - 1) < 0.15


def test_seam_score_edge_cases():
    assert np.all(seam_score(np.zeros((16, 4, 4)), [4, 8]) == 1.0)  # flat: no seam
    step = np.zeros((16, 4, 4))
    step[8:] = 1
    # a jump next to flat planes: large but finite (the floor keeps the reference above 0)
    assert seam_score(step, [8])[0] == pytest.approx((1 + STEP_FLOOR) / STEP_FLOOR)
    # a thin object lying on a boundary over a flat background: finite, so a mean stays finite
    thin = np.zeros((32, 8, 8))
    thin[16, 2:6, 2:6] = 0.5
    scores = seam_score(thin, [8, 16, 24], period=4)
    assert np.isfinite(scores).all() and scores[1] > 100 and scores[0] == pytest.approx(1.0)
    assert np.isfinite(adjacent_jump(thin, [8, 16, 24])).all()
    with pytest.raises(ConfigError, match="boundary planes"):
        seam_score(step, [0])
    with pytest.raises(ConfigError, match="no in-slab neighbours"):
        seam_score(step, [4, 5, 6], neighbours=1, period=1)
    with pytest.raises(ConfigError, match="3-D"):
        seam_score(np.zeros((2, 4, 4, 4)), [2])


# -- SSIM, MS-SSIM, PSNR, NMSE -----------------------------------------------------------------


def test_ms_ssim_of_identical_samples_is_one():
    x = torch.from_numpy(smooth_volume(32)).float()[None, None].clamp(-1, 1)
    assert ms_ssim3d(x, x).item() == pytest.approx(1.0, abs=1e-5)
    assert ssim3d(x, x).item() == pytest.approx(1.0, abs=1e-5)
    other = torch.from_numpy(smooth_volume(32, seed=1)).float()[None, None]
    assert ms_ssim3d(x, other).item() < 0.5
    small = torch.rand(2, 1, 8, 8, 8)
    assert torch.allclose(ms_ssim3d(small, small), torch.ones(2), atol=1e-5)  # window shrinks to 7


def test_ms_ssim_scales_follow_the_volume_size():
    assert [ms_ssim_levels((s,) * 3) for s in (8, 32, 64, 128, 256)] == [1, 2, 3, 4, 5]
    standard = ms_ssim_scales((256,) * 3)
    assert standard["standard"] and standard["weights"] == [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    at_128 = ms_ssim_scales((128,) * 3)
    assert not at_128["standard"] and at_128["scales"] == 4 and sum(at_128["weights"]) == pytest.approx(1.0)
    assert at_128["data_range"] == 1.0 and at_128["mapped_from"] == [-1.0, 1.0]


def test_ssim_of_similar_volumes_with_opposite_signs_is_not_clamped_to_zero():
    """On signed data, windows with means of opposite sign made the luminance negative (then 0)."""
    base = torch.from_numpy(smooth_volume(32)).float()[None, None]
    base = base / base.abs().max()  # values on both sides of 0, like a [-1, 1] volume
    similar = (base + 0.3 * torch.from_numpy(smooth_volume(32, seed=5)).float()[None, None]).clamp(-1, 1)
    assert 0.3 < ms_ssim3d(base, similar).item() < 1.0
    assert 0.3 < ssim3d(base, similar).item() < 1.0
    # [0, 1] data compared with value_range (0, 1) gives the same as [-1, 1] data by default
    unit = (base + 1) / 2, (similar + 1) / 2
    assert ssim3d(*unit, value_range=(0.0, 1.0)).item() == pytest.approx(ssim3d(base, similar).item(), abs=1e-5)


def test_pairwise_ms_ssim_is_one_for_copies_and_lower_for_diverse_samples():
    base = torch.from_numpy(smooth_volume(32)).float()[None, None]
    copies = base.repeat(3, 1, 1, 1, 1)
    assert torch.allclose(pairwise_ms_ssim(copies), torch.ones(3), atol=1e-5)
    diverse = torch.cat([torch.from_numpy(smooth_volume(32, s)).float()[None, None] for s in range(3)])
    assert pairwise_ms_ssim(diverse, max_pairs=2).shape == (2,)
    # unrelated volumes around mid-grey on [0, 1]: luminance agrees, structure does not
    assert pairwise_ms_ssim(diverse).max() < 0.6
    similar = torch.cat([base, base + 0.2 * torch.from_numpy(smooth_volume(32, 9)).float()[None, None]])
    assert pairwise_ms_ssim(similar).item() > pairwise_ms_ssim(diverse).max() + 0.2


def test_reconstruction_metrics_known_values():
    zeros, tenth = torch.zeros(1, 1, 12, 12, 12), torch.full((1, 1, 12, 12, 12), 0.1)
    # 0.1 in [-1, 1] is 0.05 on [0, 1] (data range 1): the same PSNR as range 2 on [-1, 1]
    assert psnr(zeros, tenth).item() == pytest.approx(10 * math.log10(1 / 0.05**2), rel=1e-5)
    assert psnr(zeros, tenth, value_range=(0.0, 1.0)).item() == pytest.approx(20.0, rel=1e-5)
    # NMSE on [0, 1]: 1 -> 1, 0.9 -> 0.95
    assert nmse(torch.ones(1, 1, 4, 4, 4), torch.full((1, 1, 4, 4, 4), 0.9)).item() == pytest.approx(0.0025, rel=1e-4)
    # constant volumes: SSIM is the luminance term (2ab + C1) / (a^2 + b^2 + C1) on [0, 1], C1 = 0.01^2
    a, b, c1 = 0.5, 0.25, 0.0001
    value = ssim3d(torch.full((1, 1, 12, 12, 12), a * 2 - 1), torch.full((1, 1, 12, 12, 12), b * 2 - 1)).item()
    assert value == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-5)
    x = torch.rand(2, 1, 16, 16, 16) * 2 - 1
    both = reconstruction_metrics(x, x)
    assert torch.isinf(both["psnr"]).all() and torch.allclose(both["ssim"], torch.ones(2))
    assert torch.all(both["nmse"] == 0)
    with pytest.raises(ConfigError, match="differ in shape"):
        psnr(x, x[:, :, :8])


# -- intensity statistics ----------------------------------------------------------------------


def test_tissue_fractions_use_the_documented_hu_bins():
    assert CT_TISSUE_BINS["lung"] == (-900.0, -400.0) and CT_TISSUE_BINS["bone"][0] == 200.0
    values = np.array([-1000, -900, -401, -100, -30, 149, 200, 1000, -300, 170, -150, -31], dtype=float)
    fractions = tissue_fractions(values)
    expected = {"air": 1, "lung": 2, "fat": 3, "soft_tissue": 2, "bone": 2, "other": 2}
    assert fractions == {k: pytest.approx(v / 12) for k, v in expected.items()}
    assert sum(fractions.values()) == pytest.approx(1.0)


def test_wasserstein_distance_of_histograms_in_physical_units():
    assert intensity_wasserstein([0.0, 1.0], [1.0, 2.0]) == pytest.approx(1.0)
    a = IntensityHistogram(-1024, 600, 512).add(np.full(1000, -1000.0))
    b = IntensityHistogram(-1024, 600, 512).add(np.full(500, -900.0))
    width = 1624 / 512
    assert histogram_wasserstein(a, b) == pytest.approx(100.0, abs=width)
    assert histogram_wasserstein(a, a) == 0.0
    rng = np.random.default_rng(5)
    x, y = rng.normal(-500, 200, 20000), rng.normal(-450, 200, 20000)
    hx, hy = IntensityHistogram(-1024, 600).add(x), IntensityHistogram(-1024, 600).add(y)
    assert histogram_wasserstein(hx, hy) == pytest.approx(intensity_wasserstein(x, y), abs=width)


# -- feature extractors ------------------------------------------------------------------------


def test_slice_extractor_is_deterministic_and_plane_aware():
    extractor = SliceExtractor(slices_per_plane=4)
    volumes = torch.rand(2, 1, 16, 20, 24) * 2 - 1
    with torch.inference_mode():
        features = extractor(volumes)
        assert features.shape == (2, 3 * RandomSliceEncoder().out_features)
        assert torch.equal(features, SliceExtractor(slices_per_plane=4)(volumes))  # same seed, same weights
        # a per-slice extractor injected instead of the random CNN
        mean_only = SliceExtractor(lambda s: s.mean(dim=(2, 3)), slices_per_plane=100)
        assert torch.allclose(mean_only(volumes), volumes.mean(dim=(2, 3, 4)).repeat(1, 3), atol=1e-6)


def medicalnet_state(model: Med3DResNet, seed: int = 0) -> dict:
    """A random state dict in MedicalNet's published file layout.

    BatchNorm ``num_batches_tracked`` counters are written for layer1 only: files from older
    PyTorch versions lack them, newer ones have them, and both forms must load.
    """
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            if key.startswith("layer1."):
                state["module." + key] = torch.tensor(7)
            continue
        if key.endswith("running_var"):
            state["module." + key] = torch.rand(value.shape, generator=generator) + 0.5
        else:
            state["module." + key] = torch.randn(value.shape, generator=generator) * 0.02
    return state


@pytest.fixture(scope="module")
def med3d():
    return med3d_resnet50()


def test_med3d_resnet50_shapes(med3d):
    assert sum(p.numel() for p in med3d.parameters()) == 46_155_072  # the reference backbone's count
    assert med3d.layer3[0].conv2.dilation == (2, 2, 2) and med3d.layer4[0].conv2.dilation == (4, 4, 4)
    assert med3d.layer1[0].downsample is not None and med3d.layer2[0].downsample[0].stride == (2, 2, 2)
    with torch.inference_mode():
        assert med3d(torch.rand(1, 1, 128, 128, 128) * 2 - 1).shape == (1, 2048)  # ~3 s on 2 CPU cores
    with torch.device("meta"):
        traced = Med3DResNet()
        assert traced.feature_map(torch.empty(1, 1, 256, 256, 256)).shape == (1, 2048, 32, 32, 32)  # stride 8
        assert traced(torch.empty(2, 1, 256, 256, 256)).shape == (2, 2048)
        assert traced.feature_map(torch.empty(1, 1, 128, 128, 128)).shape == (1, 2048, 16, 16, 16)


def test_med3d_loads_a_medicalnet_weights_file(tmp_path, med3d):
    state = medicalnet_state(med3d)
    state["module.conv_seg.0.weight"] = torch.zeros(32, 2048, 3, 3, 3)  # segmentation heads are ignored
    path = tmp_path / "resnet_50.pth"
    torch.save({"state_dict": state}, path)
    extractor = build_extractor("med3d", path)
    assert extractor.weights_hash.startswith("sha256:") and extractor.features == 2048
    loaded = extractor.module.state_dict()
    assert torch.equal(loaded["layer1.0.downsample.0.weight"], state["module.layer1.0.downsample.0.weight"])
    assert torch.equal(loaded["layer4.2.bn3.running_var"], state["module.layer4.2.bn3.running_var"])
    assert loaded["layer1.0.bn1.num_batches_tracked"] == 7 and loaded["bn1.num_batches_tracked"] == 0
    features = extractor(torch.rand(2, 1, 24, 24, 24) * 2 - 1)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()


def test_med3d_weight_file_errors_are_one_line(tmp_path, med3d):
    state = medicalnet_state(med3d)
    state["module.layer2.0.conv2.weight"] = torch.zeros(128, 128, 3, 3, 1)
    wrong = tmp_path / "wrong.pth"
    torch.save({"state_dict": state}, wrong)
    with pytest.raises(CheckpointError) as error:
        load_med3d_weights(Med3DResNet(), wrong)
    message = str(error.value)
    assert "\n" not in message and "layer2.0.conv2.weight" in message
    assert "(128, 128, 3, 3, 1)" in message and "(128, 128, 3, 3, 3)" in message
    del state["module.layer2.0.conv2.weight"]
    torch.save({"state_dict": state}, wrong)
    with pytest.raises(CheckpointError, match="'layer2.0.conv2.weight' is missing"):
        load_med3d_weights(Med3DResNet(), wrong)
    junk = tmp_path / "junk.pth"
    junk.write_text("<html>not weights</html>")
    with pytest.raises(CheckpointError, match="not a PyTorch weights file .an HTML page"):
        load_med3d_weights(Med3DResNet(), junk)
    with pytest.raises(ConfigError, match="needs --extractor-weights"):
        build_extractor("med3d")


def test_masked_metrics_and_constant_baselines():
    """On a mostly blank volume a blank guess scores well over the volume, badly in the foreground."""
    volume = -torch.ones(1, 1, 48, 48, 48)
    anatomy = torch.from_numpy(smooth_volume(8)).float()
    volume[0, 0, 20:28, 20:28, 20:28] = (anatomy / anatomy.abs().max()).clamp(-0.8, 1)
    mask = volume > -0.9
    blank_all, blank_fg = baseline_metrics(volume), baseline_metrics(volume, mask)
    assert blank_all["ssim"].item() > 0.8 and blank_fg["ssim"].item() < 0.2
    assert blank_all["psnr"].item() > blank_fg["psnr"].item() + 5
    mean_fg = baseline_metrics(volume, mask, "mean")
    assert mean_fg["psnr"].item() > blank_fg["psnr"].item()  # the best constant in squared error
    noisy = (volume + 0.05 * torch.randn_like(volume)).clamp(-1, 1)
    ours = reconstruction_metrics(volume, noisy, mask)
    assert ours["psnr"].item() > mean_fg["psnr"].item() and ours["ssim"].item() > mean_fg["ssim"].item()
    # masked PSNR counts only the masked voxels
    error = torch.zeros_like(volume)
    error[~mask] = 0.5
    assert torch.isinf(psnr(volume, volume + error, mask)).all()


def test_sqrtm_with_a_sizeable_imaginary_part_is_an_error():
    """Covariance products have real non-negative eigenvalues; a clearly complex root means bad statistics."""
    not_a_covariance = np.diag([-1.0, 1.0])  # a negative eigenvalue: its square root is i
    with pytest.raises(ConfigError, match="imaginary part"):
        frechet_distance(np.zeros(2), not_a_covariance, np.zeros(2), np.eye(2))
    # numerical noise of the root on a valid (singular) product is kept out silently
    singular = np.diag([1.0, 0.0])
    assert frechet_distance(np.zeros(2), singular, np.zeros(2), singular) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("content", "cause"),
    [(b"junk junk junk", "not a PyTorch weights file"), (b"<html>login</html>", "an HTML page, a failed download?")],
)
def test_a_junk_extractor_file_is_one_line_without_unpickling_advice(tmp_path, content, cause):
    path = tmp_path / "resnet_50.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        load_med3d_weights(Med3DResNet(layers=(1, 1, 1, 1)), path)
    assert cause in str(error.value) and "\n" not in str(error.value) and "weights_only" not in str(error.value)


def test_an_extractor_file_with_python_objects_is_refused_in_one_line(tmp_path):
    path = tmp_path / "resnet_50.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "extra": np.zeros(3)}, path)
    with pytest.raises(CheckpointError) as error:
        load_med3d_weights(Med3DResNet(layers=(1, 1, 1, 1)), path)
    message = str(error.value)
    assert "refusing to unpickle" in message and "weights_only=False" not in message and "\n" not in message
