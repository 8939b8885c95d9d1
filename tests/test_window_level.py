"""Windows, 3D presets and iso levels of large MRI volumes: the same for any memory order, and made
from a sample without copying the volume (they run on the UI thread at every new volume or 3D mode)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from app.panels.artifact_panel import difference_window
from app.render.scene3d import isosurface_value, volume_presets
from app.render.window_level import centred_window, default_window, percentile_window
from engine.volume import IntensityMapping, Volume

MRI = IntensityMapping(0.0, 1000.0, "")


def mri_volume(shape: tuple[int, int, int], seed: int = 0) -> Volume:
    """A generated MRI-like volume: Fortran-ordered (i, j, k), as the generator and NIfTI give them."""
    noise = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    head = np.tanh(gaussian_filter(noise, 3.0) * 8.0)  # (D, H, W) in [-1, 1], smooth structures
    return Volume.from_network(head, np.eye(4), MRI)


def looks(volume: Volume) -> dict:
    """What the app derives from a volume on the UI thread."""
    return {
        "window": default_window(volume, "mri"),
        "presets": volume_presets(volume, "mri"),
        "iso": isosurface_value(volume, "mri"),
        "centred": centred_window(volume.array),
    }


def test_fortran_and_c_ordered_copies_of_a_volume_look_the_same():
    fortran = mri_volume((72, 80, 96))  # 550 000 voxels: the sample skips voxels
    assert fortran.array.flags.f_contiguous and not fortran.array.flags.c_contiguous
    c_order = Volume(np.ascontiguousarray(fortran.array), fortran.affine, fortran.intensity)
    assert looks(fortran) == looks(c_order)


def test_sampled_windows_match_the_whole_volume_within_what_a_user_would_see():
    volume = mri_volume((96, 100, 110), seed=1)
    values = volume.array
    low, high = np.percentile(values, [1, 99])
    window = default_window(volume, "mri")
    scale = high - low
    assert abs(window.low - low) < 0.01 * scale and abs(window.high - high) < 0.01 * scale
    preset = volume_presets(volume, "mri")[0]
    assert np.allclose(preset["range"], np.percentile(values, [50, 99.5]), atol=0.01 * scale)
    assert abs(isosurface_value(volume, "mri") - np.percentile(values, 85)) < 0.01 * scale

    difference = Volume(values - mri_volume((96, 100, 110), seed=2).array, volume.affine, volume.intensity)
    exact = np.percentile(np.abs(difference.array), 99.5)
    assert difference_window(difference).high == pytest.approx(exact, rel=0.02)
    empty = Volume(np.zeros((70, 70, 70), np.float32), volume.affine, volume.intensity)
    assert difference_window(empty).width == 2.0  # nothing differs: a unit window, not a zero one
    spike = empty.array.copy()
    spike[5, 6, 7] = -40.0  # fewer differing voxels than the percentile sees: the largest sets the window
    assert centred_window(spike).high == 40.0


@pytest.mark.parametrize("what", ["window", "presets", "iso", "centred", "percentile"])
def test_a_large_volume_is_never_copied_whole(what):
    volume = mri_volume((160, 160, 160))
    call = {
        "window": lambda: default_window(volume, "mri"),
        "presets": lambda: volume_presets(volume, "mri"),
        "iso": lambda: isosurface_value(volume, "mri"),
        "centred": lambda: difference_window(volume),
        "percentile": lambda: percentile_window(volume.array),
    }[what]
    tracemalloc.start()  # numpy reports its buffers to tracemalloc
    try:
        call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < volume.array.nbytes / 2
