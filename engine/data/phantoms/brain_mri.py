"""The brain T1 MRI phantom: the MNI152 template shipped inside nilearn, varied per seed.

Each seed gives the template a random tissue contrast (from the package's grey/white-matter
priors), a random smooth non-rigid deformation, a bias field and Rician noise, in arbitrary units.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import ndimage

from ...volume import IntensityMapping
from .shapes import Array, smooth_field, voxel_axis

MRI_WINDOW = IntensityMapping(0.0, 1000.0, "")  # T1 arbitrary units; white matter sits near 600-760
# Foreground percentiles 0.5 and 99.5 of brain phantoms (a.u.; mean over seeds 0-15 at 128^3, std
# 11 and 98): a real T1 scan in other units is rescaled to match them before the window applies.
MRI_FOREGROUND_REFERENCE = (81.9, 756.8)
MNI_BRAIN_CENTRE_MM = (0.0, -18.0, 8.0)  # MNI world point placed at the volume centre


@lru_cache(maxsize=1)
def _mni() -> tuple[Array, Array, Array, Array]:
    """The 1 mm MNI152 T1 template and grey/white-matter priors that ship with nilearn, and their affine."""
    from nilearn import datasets  # slow to import; only brain phantoms need it

    loaders = (datasets.load_mni152_template, datasets.load_mni152_gm_template, datasets.load_mni152_wm_template)
    images = [load(resolution=1) for load in loaders]
    t1, gm, wm = (np.asarray(image.dataobj, dtype=np.float32) for image in images)
    return t1, gm, wm, np.asarray(images[0].affine, dtype=np.float64)


@lru_cache(maxsize=4)
def _mni_grid(spacing: float) -> tuple[Array, Array]:
    """Template and priors anti-aliased and resampled to ``spacing`` mm: maps (3, X, Y, Z), and origin (mm)."""
    t1, gm, wm, affine = _mni()
    step = max(spacing, 1.0)
    shape = tuple(int(np.ceil(n / step)) for n in t1.shape)
    maps = []
    for volume in (t1, gm, wm):
        if step > 1.0:
            volume = ndimage.gaussian_filter(volume, 0.42 * step, truncate=2.5)
        maps.append(ndimage.affine_transform(volume, [step] * 3, output_shape=shape, order=1))
    return np.stack(maps), affine[:3, 3].copy()


@lru_cache(maxsize=1)
def _tissue_levels() -> tuple[float, float, float]:
    """Template intensity of pure CSF, grey and white matter, read off the priors."""
    t1, gm, wm, _ = _mni()
    brain = t1 > 0.05
    csf = brain & (gm < 0.1) & (wm < 0.1)
    return float(np.median(t1[csf])), float(np.median(t1[gm > 0.9])), float(np.median(t1[wm > 0.9]))


def make_brain_mri(rng: np.random.Generator, size: int, spacing: float) -> Array:
    """One T1-weighted brain in arbitrary units, centred on the volume."""
    maps, origin = _mni_grid(spacing)
    step = max(spacing, 1.0)
    contrast = _t1_contrast(rng, maps)
    coords = _warp(rng, size, spacing, origin, step)
    image = ndimage.map_coordinates(contrast, coords, order=1, cval=0.0, prefilter=False)
    image *= np.exp(rng.uniform(0.06, 0.2) * smooth_field(rng, size, 4))  # bias field
    sigma = np.float32(rng.uniform(0.008, 0.035) * 700.0)
    real = image + sigma * rng.standard_normal(image.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(image.shape, dtype=np.float32)
    image = np.sqrt(real * real + imag * imag)  # magnitude images carry Rician noise
    return np.clip(image, MRI_WINDOW.low, MRI_WINDOW.high, out=image)


def _t1_contrast(rng: np.random.Generator, maps: Array) -> Array:
    """A random T1 contrast: tissue means for CSF, grey and white matter, blended with the priors."""
    t1, gm, wm = maps
    csf_t, gm_t, wm_t = _tissue_levels()
    white = rng.uniform(600, 760)
    grey = white * rng.uniform(0.58, 0.74)
    csf = white * rng.uniform(0.12, 0.3)
    knots = [0.0, 0.6 * csf_t, csf_t, gm_t, wm_t, 1.0]
    means = [0.0, 0.5 * csf, csf, grey, white, white * rng.uniform(1.0, 1.08)]
    remapped = np.interp(t1, knots, means).astype(np.float32)
    csf_prior = np.clip(np.clip(t1 / csf_t, 0, 1) - gm - wm, 0, 1)
    priors = grey * gm + white * wm + csf * csf_prior
    weight = np.float32(rng.uniform(0.0, 0.35))
    return (1 - weight) * remapped + weight * priors


def _warp(rng: np.random.Generator, size: int, spacing: float, origin: Array, step: float) -> Array:
    """Template voxel coordinates (3, S, S, S) of each output voxel: random affine + smooth displacement."""
    angles = np.radians(rng.uniform(-6, 6, 3))
    rotation = _rotation(*angles)
    scale = rng.uniform(0.9, 1.1) * rng.uniform(0.96, 1.04, 3)
    matrix = rotation / scale[None, :]  # output mm -> template mm
    shift = np.asarray(MNI_BRAIN_CENTRE_MM) + rng.uniform(-4, 4, 3)
    ax = voxel_axis(size, spacing)
    grid = (ax[:, None, None], ax[None, :, None], ax[None, None, :])
    amplitude = rng.uniform(2.0, 5.0)
    coords = np.empty((3, size, size, size), dtype=np.float32)
    for row in range(3):
        value = sum(np.float32(matrix[row, col] / step) * grid[col] for col in range(3))
        value = value + np.float32((shift[row] - origin[row]) / step)
        coords[row] = value + smooth_field(rng, size, 5) * np.float32(amplitude / step)
    return coords


def _rotation(ax: float, ay: float, az: float) -> Array:
    """Rotation matrix: about x, then y, then z (radians)."""
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx
