"""Interpolation sequences: frames along a latent path through keyframes, and the names of their files.

The command line (``interpolate``) and the app's exports share one convention. A sequence of
``frames`` frames spans the whole path, both ends included, evenly spaced in t: frame i sits at
t = i / (frames - 1). The K keyframes split t into K - 1 equal segments, so a keyframe falls on a
frame when frames - 1 is a multiple of K - 1; ``steps`` frames per segment is the shorthand for
(K - 1) * steps + 1 frames. Frames on a keyframe are that keyframe's latent exactly.

Frame i is written as ``frame0007_full.nii.gz`` (a DICOM series: the folder ``frame0007_full``),
the index zero-padded to at least four digits so the files sort in frame order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .enums import Part
from .errors import ConfigError
from .generate import SampleRequest
from .latent import lerp, seed_to_z, slerp
from .validation import MAX_FRAMES

INTERPOLATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {"slerp": slerp, "lerp": lerp}
METHODS = tuple(INTERPOLATIONS)  # the first is the default
FRAME_DIGITS = 4


def interpolation(method: str) -> Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]:
    """The function that blends two latents by ``method`` (lerp or slerp)."""
    if method not in INTERPOLATIONS:
        raise ConfigError(f"unknown interpolation '{method}'; choose {' or '.join(METHODS)}")
    return INTERPOLATIONS[method]


def frames_for_steps(keyframes: int, steps: int) -> int:
    """The frame count of ``steps`` frames per segment between ``keyframes`` keyframes, plus the last one."""
    if steps < 1:
        raise ConfigError(f"steps per segment must be at least 1, got {steps}")
    return (keyframes - 1) * steps + 1


def check_frames(keyframes: int, frames: int) -> None:
    """Refuse a sequence that cannot be made, naming the cause."""
    if keyframes < 2:
        raise ConfigError("an interpolation needs at least two keyframes")
    if frames < 2:
        raise ConfigError(f"a sequence needs at least 2 frames, got {frames}")
    if frames > MAX_FRAMES:
        raise ConfigError(f"{keyframes} keyframes with {frames} frames: at most {MAX_FRAMES} frames")


@dataclass(frozen=True)
class PathFrame:
    """One frame of a sequence: where it lies on the path and its latent."""

    index: int
    t: float  # along the whole path, in [0, 1]
    segment: int  # the path runs from keyframe ``segment`` to ``segment + 1`` here
    local: float  # t within that segment, in [0, 1]
    z: torch.Tensor = field(compare=False)


def path_frames(keyframes_z: list[torch.Tensor], frames: int, method: str = "slerp") -> list[PathFrame]:
    """``frames`` latents evenly spaced in t along the keyframe path, both ends included."""
    interpolate = interpolation(method)
    check_frames(len(keyframes_z), frames)
    segments, last = len(keyframes_z) - 1, frames - 1
    result = []
    for index in range(frames):
        segment, rest = divmod(index * segments, last)  # whole numbers: keyframes are hit without round-off
        if segment == segments:  # the last frame closes the last segment
            segment, rest = segments - 1, last
        a, b = keyframes_z[segment], keyframes_z[segment + 1]
        local = rest / last
        z = a.clone() if rest == 0 else b.clone() if rest == last else interpolate(a, b, local)
        result.append(PathFrame(index, index / last, segment, local, z))
    return result


def path_point(keyframes_z: list[torch.Tensor], t: float, method: str = "slerp") -> torch.Tensor:
    """The latent at global ``t`` in [0, 1] along the path (e.g. a slider position between frames).

    The K keyframes split [0, 1] into K - 1 equal segments; segment s runs from keyframe s to
    keyframe s + 1. The keyframes themselves come back exactly (no interpolation round-off).
    """
    interpolate = interpolation(method)
    if len(keyframes_z) < 2:
        raise ConfigError("an interpolation path needs at least two keyframes")
    if not 0.0 <= t <= 1.0:
        raise ConfigError(f"t must lie in [0, 1], got {t}")
    position = t * (len(keyframes_z) - 1)
    segment = min(int(position), len(keyframes_z) - 2)
    local = position - segment
    a, b = keyframes_z[segment], keyframes_z[segment + 1]
    if local == 0.0:
        return a.clone()
    if local == 1.0:
        return b.clone()
    return interpolate(a, b, local)


def path_label(names: list[str] | tuple[str, ...], method: str, t: float) -> str:
    """Where a point on the path came from, e.g. ``slerp t=0.250 (seed 1 → seed 2)``."""
    return f"{method} t={t:.3f} ({' → '.join(names)})"


def frame_stem(index: int, frames: int, part: str = Part.FULL, prefix: str = "frame") -> str:
    """The name of frame ``index`` of ``frames`` without suffix: ``frame0007_full``.

    A NIfTI file adds ``.nii.gz``; a DICOM series is a folder of this name.
    """
    return f"{prefix}{index:0{max(FRAME_DIGITS, len(str(frames - 1)))}d}_{part}"


def interpolation_requests(
    keyframes: list[int],
    latent_dim: int,
    *,
    frames: int,
    method: str = "slerp",
    part: str = Part.FULL,
    **request_options,
) -> list[SampleRequest]:
    """Requests for ``frames`` frames along the path through the keyframe seeds' latents."""
    requests = []
    for frame in path_frames([seed_to_z(seed, latent_dim) for seed in keyframes], frames, method):
        if frame.index == frames - 1:
            origin = f"keyframe seed {keyframes[-1]}"
        else:
            a, b = keyframes[frame.segment], keyframes[frame.segment + 1]
            origin = f"{method}(seed {a} -> seed {b}, t={frame.local:.4f})"
        requests.append(SampleRequest(None, part, latent=frame.z, origin=origin, **request_options))
    return requests
