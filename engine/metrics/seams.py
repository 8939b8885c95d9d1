"""Seam score: how much stronger the intensity jump across a plane is than across its neighbours.

For a boundary plane b (the step from slice b-1 to slice b along ``axis``), the jump is the
mean absolute difference between those two slices. The reference is the same quantity for the
``neighbours`` steps on each side of b (every ``period`` planes) that lie inside the slabs.
score = (jump + floor) / (reference + floor), so a volume without seams scores about 1, a visible seam well
above 1. The floor (``STEP_FLOOR``, 0.05% of the [-1, 1] range) keeps the score finite where the
reference planes are flat: a thin object on a boundary over a flat background scores high, not inf.
``adjacent_jump`` is a second, stricter number: the jump relative to the steps just before and
after the boundary (b-1 and b+1), i.e. whether the boundary stands out from its own neighbourhood.
It needs nothing but the volume: volumes from any generator can be checked.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError

SLABS = 8  # HA-GAN's G^H is trained on slabs S/8 thick: 8 slabs per volume
STEP_FLOOR = 1e-3  # network units: added to every reference step, so scores stay finite
SEAM_SCORE_COMPARES = (
    "(mean |slice b - slice b-1| at each slab boundary b + f) / (mean of the same at in-slab planes "
    f"b +- k*period, k = 1..3, + f), f = {STEP_FLOOR:g}; 1 = no seam"
)
ADJACENT_JUMP_COMPARES = (
    f"(mean |slice b - slice b-1| at each slab boundary b + f) / (mean of the steps at b-1 and b+1 + f), "
    f"f = {STEP_FLOOR:g}; 1 = no seam"
)


def slab_boundaries(resolution: int, slabs: int = SLABS) -> list[int]:
    """First slices of slabs 2..8: the multiples of S/8 strictly between 0 and S."""
    if resolution % slabs:
        raise ConfigError(f"resolution {resolution} is not a multiple of {slabs} slabs")
    step = resolution // slabs
    return [k * step for k in range(1, slabs)]


def _as_volume(volume, axis: int) -> np.ndarray:
    """A float32 (D, H, W) array with ``axis`` moved first; leading singleton axes are dropped."""
    array = volume.detach().float().cpu().numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume)
    while array.ndim > 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ConfigError(f"the seam score takes one 3-D volume, got shape {array.shape}")
    return np.moveaxis(array.astype(np.float32, copy=False), axis, 0)


def plane_steps(volume, axis: int = 0) -> np.ndarray:
    """Mean absolute difference between consecutive slices: entry b is the step from b-1 to b (entry 0 is NaN)."""
    array = _as_volume(volume, axis)
    steps = np.abs(np.diff(array, axis=0)).reshape(array.shape[0] - 1, -1).mean(axis=1, dtype=np.float64)
    return np.concatenate([[np.nan], steps])


def seam_score(
    volume, boundaries, axis: int = 0, neighbours: int = 3, period: int = 1, floor: float = STEP_FLOOR
) -> np.ndarray:
    """Per-boundary seam scores (jump / mean jump of the nearby in-slab steps); 1.0 means no seam.

    ``volume``: numpy or torch, (D, H, W) by default (network layout, axis 0 = D; (1, 1, D, H, W)
    is accepted). ``boundaries``: plane indices b, each the step between slices b-1 and b.
    The reference steps are b +- k * ``period`` for k = 1..``neighbours``, stopping at the volume's
    end and at other boundaries. ``period`` > 1 compares like with like in volumes with a periodic
    texture: HA-GAN's G^H upsamples twice by 2, so its steps follow a period of 4 slices and
    boundaries (multiples of S/8) all fall on the same phase (``hagan_seam_period``).
    ``floor`` is added to jump and reference, so a jump next to flat planes scores (jump + floor) / floor.
    """
    steps = plane_steps(volume, axis)
    depth = len(steps)
    boundaries = [int(b) for b in boundaries]
    bad = [b for b in boundaries if not 0 < b < depth]
    if bad:
        raise ConfigError(f"boundary planes must lie in 1..{depth - 1} along axis {axis}, got {bad}")
    if neighbours < 1 or period < 1:
        raise ConfigError(f"neighbours and period must be at least 1, got {neighbours} and {period}")
    fences = set(boundaries)
    scores = []
    for b in boundaries:
        inside = []
        for direction in (-1, 1):
            for k in range(1, neighbours + 1):
                plane = b + direction * k * period
                if not 0 < plane < depth or any(0 < (f - b) * direction <= k * period for f in fences):
                    break  # stop at the volume's end or at the next boundary
                inside.append(steps[plane])
        if not inside:
            raise ConfigError(f"boundary {b} has no in-slab neighbours (boundaries too close together)")
        jump, reference = steps[b], float(np.mean(inside))
        scores.append(float((jump + floor) / (reference + floor)))
    return np.asarray(scores)


def adjacent_jump(volume, boundaries, axis: int = 0, floor: float = STEP_FLOOR) -> np.ndarray:
    """Per-boundary jump relative to the adjacent steps (b-1 and b+1, those inside the volume); finite."""
    steps = plane_steps(volume, axis)
    depth, scores = len(steps), []
    for b in (int(b) for b in boundaries):
        if not 0 < b < depth:
            raise ConfigError(f"boundary planes must lie in 1..{depth - 1} along axis {axis}, got {b}")
        around = [steps[p] for p in (b - 1, b + 1) if 0 < p < depth]
        reference = float(np.mean(around)) if around else 0.0
        scores.append(float((steps[b] + floor) / (reference + floor)))
    return np.asarray(scores)


def hagan_seam_period(resolution: int, slabs: int = SLABS) -> int:
    """4 (G^H's upsampling period) where a slab holds at least two periods, else 1 (adjacent steps)."""
    return 4 if resolution // slabs >= 8 else 1


def mean_seam_score(volume, boundaries, axis: int = 0, neighbours: int = 3, period: int = 1) -> float:
    """The mean of ``seam_score`` over the boundaries: one number per volume."""
    return float(np.mean(seam_score(volume, boundaries, axis, neighbours, period)))
