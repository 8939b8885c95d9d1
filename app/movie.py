"""Movie frames of a volume sequence: a windowed slice per volume, marked SYNTHETIC, written as GIF or MP4.

Qt-free, so export jobs can build frames on a worker thread. Slices are laid out as the panes show
them (radiological convention: the patient's right on the left of the image, anterior or superior
at the top) and scaled to their physical aspect ratio.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine.api import ConfigError, Volume, atomic_write

from .render.slices import SYNTHETIC_LABEL, Grid
from .render.window_level import WindowLevel

SLICE_AXES = {"axial": 2, "coronal": 1, "sagittal": 0}  # view -> the axis the slice is normal to
LETTERS = {  # view -> (left, right, top, bottom) edges of the image
    "axial": ("R", "L", "A", "P"),
    "coronal": ("R", "L", "S", "I"),
    "sagittal": ("A", "P", "S", "I"),
}
MOVIE_SUFFIXES = (".gif", ".mp4")
MIN_SIDE = 256  # small volumes are scaled up so the labels stay readable
BLOCK = 16  # MP4 encoders want sides that are multiples of 16
ADAPTIVE = Image.Palette.ADAPTIVE
Progress = Callable[[int, int, str], None]  # (done, total, text); may raise to stop


def movie_kind(path: str | os.PathLike) -> str:
    """'gif' or 'mp4' from the file name; anything else is refused with the reason."""
    suffix = Path(path).suffix.lower()
    if suffix not in MOVIE_SUFFIXES:
        raise ConfigError(f"{Path(path).name}: a movie file name ends in .gif or .mp4")
    return suffix[1:]


def slice_image(volume: Volume, view: str, position_mm, window: WindowLevel) -> np.ndarray:
    """The slice of ``view`` through ``position_mm`` as a (rows, columns) uint8 image in ``window``."""
    grid = Grid.from_volume(volume)  # axis-aligned with positive steps along R, A, S
    axis = SLICE_AXES[view]
    index = int(grid.index(position_mm)[axis])
    plane = np.take(grid.array, index, axis=axis)  # (first, second) of the two remaining axes
    # Rows run down the image from the high end of the second axis (A or S), columns from the
    # high end of the first axis (R for axial/coronal, A for sagittal): the panes' camera layout.
    image = plane[::-1, ::-1].T
    scaled = (image - window.low) / max(window.width, 1e-12)
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def frame_size(volume: Volume, view: str) -> tuple[int, int]:
    """(width, height) in pixels of a slice at its physical aspect, the long side at least MIN_SIDE."""
    axis = SLICE_AXES[view]
    across, down = (a for a in range(3) if a != axis)
    spacing, shape = np.asarray(volume.spacing), np.asarray(volume.array.shape)
    width_mm, height_mm = shape[across] * spacing[across], shape[down] * spacing[down]
    pixel_mm = min(spacing[across], spacing[down], max(width_mm, height_mm) / MIN_SIDE)
    return max(1, round(width_mm / pixel_mm)), max(1, round(height_mm / pixel_mm))


def labelled_frame(image: np.ndarray, size: tuple[int, int], view: str, caption: str) -> np.ndarray:
    """An RGB frame: the slice scaled to ``size`` on a canvas whose sides are multiples of BLOCK,
    with SYNTHETIC, orientation letters and a caption burned in."""
    width, height = (-(-side // BLOCK) * BLOCK for side in size)
    picture = Image.new("RGB", (width, height))
    scaled = Image.fromarray(image, mode="L").resize(size, Image.Resampling.BILINEAR).convert("RGB")
    picture.paste(scaled, ((width - size[0]) // 2, (height - size[1]) // 2))
    return burn_labels(np.asarray(picture), caption, LETTERS[view])


def burn_labels(rgb: np.ndarray, caption: str, letters: tuple[str, str, str, str] | None = None) -> np.ndarray:
    """``rgb`` with SYNTHETIC (top right), a caption (bottom left) and optional edge letters drawn in."""
    picture = Image.fromarray(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8), mode="RGB")
    draw = ImageDraw.Draw(picture)
    width, height = picture.size
    big = ImageFont.load_default(size=max(12, height // 16))
    small = ImageFont.load_default(size=max(10, height // 24))
    outline = {"stroke_width": 1, "stroke_fill": (0, 0, 0)}
    draw.text((width - 6, 4), SYNTHETIC_LABEL, font=big, fill=(255, 80, 80), anchor="ra", **outline)
    draw.text((4, height - 4), caption, font=small, fill=(230, 230, 230), anchor="ld", **outline)
    if letters is not None:
        places = (
            ((4, height // 2), "lm"),
            ((width - 4, height // 2), "rm"),
            ((width // 2, 4), "ma"),
            ((width // 2, height - 4), "md"),
        )
        for text, (xy, anchor) in zip(letters, places):
            draw.text(xy, text, font=small, fill=(240, 192, 64), anchor=anchor, **outline)
    return np.asarray(picture)


def slice_frame(volume: Volume, view: str, position_mm, window: WindowLevel, caption: str) -> np.ndarray:
    """One movie frame of ``volume``: its ``view`` slice through the crosshair, windowed and labelled."""
    return labelled_frame(slice_image(volume, view, position_mm, window), frame_size(volume, view), view, caption)


def write_movie(
    path: str | os.PathLike, frames: list[np.ndarray], fps: float, progress: Progress | None = None
) -> Path:
    """Write RGB frames as an endlessly looping GIF or an H.264 MP4; never leaves a partial file.

    ``progress(done, total, text)`` is called before each frame is encoded; what it raises (a
    cancel) stops the writing and leaves no file.
    """
    import imageio.v2 as imageio_v2

    kind = movie_kind(path)
    if not frames:
        raise ConfigError("a movie needs at least one frame")
    name = Path(path).name

    def encoding(frame_list):
        for index, frame in enumerate(frame_list):
            if progress is not None:
                progress(index, len(frame_list), f"writing {name}: frame {index + 1}/{len(frame_list)}")
            yield frame

    def write(tmp: Path) -> None:
        if kind == "gif":
            # each frame gets its own palette here, as the GIF writer would give it, one frame at a time
            images = [Image.fromarray(frame).convert("P", palette=ADAPTIVE) for frame in encoding(frames)]
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=1000.0 / fps, loop=0)
            return
        writer = imageio_v2.get_writer(tmp, format="FFMPEG", fps=fps, macro_block_size=BLOCK)
        try:
            for frame in encoding(frames):
                writer.append_data(frame)
        finally:
            writer.close()

    return atomic_write(path, write, suffix=f".{kind}")
