"""One interpolation sequence for the command line and the app: frame count, frame latents, file names."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from engine.cli import main
from engine.errors import ConfigError
from engine.interpolation import (
    check_frames,
    frame_stem,
    frames_for_steps,
    interpolation_requests,
    path_frames,
    path_point,
)
from engine.latent import lerp, seed_to_z, slerp
from engine.validation import MAX_FRAMES

SEEDS = [3, 8, 5]


def keyframes(dim: int = 64) -> list[torch.Tensor]:
    return [seed_to_z(seed, dim) for seed in SEEDS]


@pytest.mark.parametrize("method, interpolate", [("slerp", slerp), ("lerp", lerp)])
def test_steps_per_segment_are_the_frames_between_keyframes_and_keyframes_are_exact(method, interpolate):
    keys, steps = keyframes(), 3
    frames = path_frames(keys, frames_for_steps(len(keys), steps), method)
    assert len(frames) == 2 * steps + 1 == frames_for_steps(3, steps)
    for index in (0, steps, 2 * steps):  # the keyframes, exactly: the same volume as `sample --seed`
        assert torch.equal(frames[index].z, keys[index // steps])
    for frame in frames:
        segment, k = divmod(frame.index, steps)
        if k:  # frame k of segment a -> b is interpolate(a, b, k / steps), to the bit
            assert (frame.segment, frame.local) == (segment, k / steps)
            assert torch.equal(frame.z, interpolate(keys[segment], keys[segment + 1], k / steps))
        assert frame.t == frame.index / (len(frames) - 1)


def test_frames_are_evenly_spaced_in_t_over_the_whole_path_both_ends_included():
    keys = keyframes()
    frames = path_frames(keys, 4, "slerp")  # t = 0, 1/3, 2/3, 1: the middle keyframe falls between frames
    assert [f.t for f in frames] == [0.0, 1 / 3, 2 / 3, 1.0]
    assert torch.equal(frames[0].z, keys[0]) and torch.equal(frames[-1].z, keys[-1])
    for frame in frames[1:-1]:
        torch.testing.assert_close(frame.z, path_point(keys, frame.t, "slerp"))
        assert not any(torch.allclose(frame.z, key) for key in keys)


def test_the_command_line_requests_carry_the_app_frames_latents():
    frames = 7
    requests = interpolation_requests(SEEDS, 64, frames=frames, method="slerp", part="anchor")
    assert [r.part for r in requests] == ["anchor"] * frames
    for request, frame in zip(requests, path_frames(keyframes(), frames, "slerp")):
        assert torch.equal(request.latent, frame.z)
    assert requests[2].origin == "slerp(seed 3 -> seed 8, t=0.6667)"
    assert requests[-1].origin == "keyframe seed 5"


def test_frame_names_carry_the_part_and_sort_in_frame_order():
    assert frame_stem(7, 30) == "frame0007_full"
    assert frame_stem(0, 3, "anchor") == "frame0000_anchor"
    assert frame_stem(2, 5, "full", "sweep") == "sweep0002_full"
    names = [frame_stem(i, 12_001) for i in range(12_001)]
    assert names == sorted(names) and names[-1] == "frame12000_full"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: check_frames(1, 5), "at least two keyframes"),
        (lambda: check_frames(2, 1), "at least 2 frames"),
        (lambda: check_frames(2, MAX_FRAMES + 1), f"at most {MAX_FRAMES}"),
        (lambda: frames_for_steps(2, 0), "steps per segment must be at least 1"),
        (lambda: path_frames(keyframes(), 5, "cubic"), "unknown interpolation 'cubic'"),
    ],
)
def test_impossible_sequences_are_refused_with_the_cause(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_interpolate_takes_steps_or_frames(tmp_path, tiny_model_file, capsys):
    base = ["interpolate", "--checkpoint", str(tiny_model_file), "--seeds", "1,2,3", "--part", "anchor"]
    assert main([*base, "--steps", "2", "--out", str(tmp_path / "steps")]) == 0
    assert main([*base, "--frames", "5", "--out", str(tmp_path / "frames")]) == 0
    names = [f"frame{i:04d}_anchor" for i in range(5)]
    for out in ("steps", "frames"):
        assert sorted(p.name for p in (tmp_path / out).glob("*.nii.gz")) == [f"{n}.nii.gz" for n in names]

    def latent(out: str, name: str) -> list[float]:
        return json.loads((tmp_path / out / f"{name}.json").read_text())["provenance"]["latent"]

    assert all(latent("steps", n) == latent("frames", n) for n in names)  # --steps 2 is --frames 5 here
    sample = ["sample", "--checkpoint", str(tiny_model_file), "--seed", "2", "--part", "anchor"]
    assert main([*sample, "--out", str(tmp_path / "seed2.nii.gz")]) == 0  # the middle keyframe, sampled alone
    keyframe = np.asarray(nib.load(tmp_path / "frames" / f"{names[2]}.nii.gz").dataobj)
    assert np.array_equal(keyframe, np.asarray(nib.load(tmp_path / "seed2.nii.gz").dataobj))

    assert main([*base, "--frames", "4", "--out", str(tmp_path / "four")]) == 0
    assert len(list((tmp_path / "four").glob("*.nii.gz"))) == 4
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main([*base, "--steps", "2", "--frames", "5", "--out", str(tmp_path / "both")])
    assert refused.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert main([*base, "--frames", "1", "--out", str(tmp_path / "one")]) == 2
    assert "at least 2 frames" in capsys.readouterr().err and not (tmp_path / "one").exists()
