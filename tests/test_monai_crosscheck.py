"""Our metrics against MONAI's (a test-only dependency) on the same inputs.

FID and SSIM / MS-SSIM are the same definitions and must agree closely. MMD differs by
convention: ours is HA-GAN's (torch-two-sample's unbiased MMD^2 with a Gaussian kernel
exp(-alpha ||a - b||^2), alpha from the median heuristic); MONAI's MMDMetric is the same unbiased
estimator with the linear kernel a . b. Since exp(-alpha d^2) = 1 - alpha d^2 + O(alpha^2) and
the constant cancels, ours / (2 alpha) tends to MONAI's as alpha -> 0: that relation is checked.
"""

import numpy as np
import pytest
import torch
from monai.metrics import FIDMetric as MonaiFID
from monai.metrics import MMDMetric as MonaiMMD
from monai.metrics import MultiScaleSSIMMetric, SSIMMetric
from scipy.ndimage import gaussian_filter

from engine.metrics import FIDMetric, mmd2_unbiased, ms_ssim3d, ms_ssim_levels, ssim3d
from engine.metrics.ssim import scale_weights


def smooth_pair(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two related [0, 1] volumes (1, 1, S, S, S): a smooth field and a perturbed copy."""
    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.normal(size=(size,) * 3), 2.0)
    noise = gaussian_filter(rng.normal(size=(size,) * 3), 1.0)
    base = (base - base.min()) / (base.max() - base.min())
    other = np.clip(base + 0.5 * noise * base.std() / noise.std(), 0, 1)
    return torch.from_numpy(base).float()[None, None], torch.from_numpy(other).float()[None, None]


@pytest.mark.parametrize(("samples", "features"), [(300, 16), (20, 64)])
def test_fid_agrees_with_monai(samples, features):
    rng = np.random.default_rng(samples)
    real = rng.normal(size=(samples, features))
    fake = rng.normal(0.3, 1.2, size=(samples, features))
    ours = FIDMetric()(real, fake)
    theirs = float(MonaiFID()(torch.from_numpy(fake), torch.from_numpy(real)))
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_mmd_tends_to_monai_linear_kernel_mmd_for_a_wide_gaussian_kernel():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 8)), rng.normal(0.4, 1.0, size=(40, 8))  # MONAI wants equal counts
    linear = float(MonaiMMD()(torch.from_numpy(y), torch.from_numpy(x)))
    alpha = 1e-7
    assert mmd2_unbiased(x, y, alpha) / (2 * alpha) == pytest.approx(linear, rel=1e-3)
    assert linear > 0.5  # a shift of 0.4 along 8 axes: ||mean difference||^2 is about 1.3


@pytest.mark.parametrize("size", [32, 48])
def test_ssim_agrees_with_monai_on_unit_range_data(size):
    x, y = smooth_pair(size)
    theirs = float(SSIMMetric(spatial_dims=3, data_range=1.0)(y, x))
    assert ssim3d(x, y, value_range=(0.0, 1.0)).item() == pytest.approx(theirs, abs=1e-4)
    # network-range inputs are mapped to [0, 1] first: the same number
    assert ssim3d(x * 2 - 1, y * 2 - 1).item() == pytest.approx(theirs, abs=1e-4)


def test_ms_ssim_agrees_with_monai_with_the_weights_we_record():
    x, y = smooth_pair(64, seed=1)
    levels = ms_ssim_levels(x.shape[2:])
    metric = MultiScaleSSIMMetric(spatial_dims=3, data_range=1.0, weights=scale_weights(levels))
    theirs = float(metric(y, x))
    assert ms_ssim3d(x * 2 - 1, y * 2 - 1).item() == pytest.approx(theirs, abs=1e-4)
    assert 0.3 < theirs < 0.99
