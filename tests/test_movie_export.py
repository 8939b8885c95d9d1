"""Cancelling an interpolation export while its movie is written: no movie file, and the encoding stops."""

from __future__ import annotations

import pytest
import torch
from imageio.plugins.ffmpeg import FfmpegFormat
from PIL import Image

from app.sequence import SequencePlan, export_sequence
from engine.checkpoints import load_model
from engine.latent import seed_to_z


class StopHere(Exception):
    """What a cancelled job's progress call raises."""


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_a_cancel_while_the_movie_is_written_leaves_no_file(tmp_path, tiny_model_file, monkeypatch, suffix):
    model = load_model(tiny_model_file, None, torch.device("cpu"))
    encoded = []
    if suffix == ".gif":  # a GIF frame is encoded when it gets its palette
        convert = Image.Image.convert
        monkeypatch.setattr(
            Image.Image,
            "convert",
            lambda im, mode=None, *a, **k: (mode == "P" and encoded.append(1), convert(im, mode, *a, **k))[1],
        )
    else:
        append = FfmpegFormat.Writer._append_data
        monkeypatch.setattr(FfmpegFormat.Writer, "_append_data", lambda w, *a: (encoded.append(1), append(w, *a))[1])
    movie = tmp_path / f"path{suffix}"
    keyframes = tuple(seed_to_z(seed, model.config.latent_dim) for seed in (1, 2))
    plan = SequencePlan(keyframes, ("1", "2"), "slerp", frames=6, movie=movie, modality="ct")
    seen = []

    def progress(done, total, text):
        seen.append(text)
        if text == f"writing {movie.name}: frame 3/6":
            raise StopHere

    with pytest.raises(StopHere):
        export_sequence(model, plan, progress)
    assert f"writing {movie.name}: frame 1/6" in seen
    assert len(encoded) == 2  # frames 1 and 2 of 6
    assert not movie.exists() and not list(tmp_path.iterdir())  # nor a partial file beside it


def test_the_bar_moves_forward_from_the_first_frame_to_the_written_movie(tmp_path, tiny_model_file):
    model = load_model(tiny_model_file, None, torch.device("cpu"))
    keyframes = tuple(seed_to_z(seed, model.config.latent_dim) for seed in (1, 2))
    plan = SequencePlan(keyframes, ("1", "2"), "slerp", frames=4, movie=tmp_path / "path.gif", modality="ct")
    seen = []
    export_sequence(model, plan, lambda done, total, text: seen.append((done, total)))
    fractions = [done / total for done, total in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # never back to 0 while the movie is encoded
    assert {total for _, total in seen} == {8}  # 4 frames made, then 4 encoded
