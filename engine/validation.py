"""Checks shared by every command: argument types, output paths, geometry, memory.

Each check raises a one-line ``EngineError`` (or argparse's one-line error) naming the cause,
before any file is written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from .errors import ConfigError, VolumeError, clean_text

MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit seed
MAX_SEEDS = 100_000  # seeds one command may name
MAX_FRAMES = 10_000  # frames one interpolation may write


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors on one line (``error: ...``, exit 2), without the usage text."""

    def error(self, message: str):  # noqa: D102 (argparse's hook)
        self.exit(2, f"error: {clean_text(self.prog)}: {clean_text(message)}\n")


# -- argument types (argparse turns ArgumentTypeError into its one-line error) --------------------


def seed_arg(text: str) -> int:
    """A seed: an integer in [0, 2**63 - 1]."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer seed") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"seeds lie in [0, 2**63 - 1], got {text}")
    return value


def positive_float_arg(text: str) -> float:
    """A finite number above 0 (memory budgets, learning rates)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"needs a finite number above 0, got {text}")
    return value


def finite_float_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"needs a finite number, got {text}")
    return value


# -- outputs --------------------------------------------------------------------------------------


def add_force_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="replace output files that already exist")


def check_output(path: str | os.PathLike, force: bool, what: str = "output", folder_made: bool = False) -> Path:
    """A named output: not '-', its folder exists (unless the command makes it: ``folder_made``), and an
    existing file is replaced only with --force."""
    path = Path(path)
    if str(path) in ("-", ""):
        raise ConfigError(f"--out {str(path)!r}: give a file or folder name (writing to stdout is not supported)")
    if path.is_dir() and what != "folder":
        raise ConfigError(f"{path}: is a folder; give a file name for the {what}")
    if not folder_made and not path.parent.exists():
        raise ConfigError(f"{path}: folder {path.parent} does not exist")
    if path.exists() and not force:
        raise ConfigError(f"{path}: already exists; give --force to replace it")
    return path


SIDECAR_MARKER = "engine_version"  # with "provenance" and "intensity": a sidecar this engine wrote


def is_our_sidecar(path: str | os.PathLike) -> bool:
    """True when ``path`` is a JSON sidecar this engine wrote (safe to replace with a new one)."""
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(values, dict) and {SIDECAR_MARKER, "provenance", "intensity"} <= values.keys()


# -- geometry ---------------------------------------------------------------------------------------


def check_affine(affine: np.ndarray, where: str) -> np.ndarray:
    """A usable voxel-to-mm affine: finite, 4x4, an invertible 3x3 part."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise VolumeError(f"{_at(where)}the affine has NaN or infinite entries")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12 or not (np.linalg.norm(affine[:3, :3], axis=0) > 0).all():
        raise VolumeError(f"{_at(where)}the affine is degenerate (zero or singular voxel axes)")
    return affine


def check_spacing(spacing, where: str) -> tuple[float, float, float]:
    """Three finite voxel sizes above 0 (mm)."""
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: spacing must be three numbers (mm), got {clean_text(spacing, 80)}") from None
    if len(values) != 3 or not all(math.isfinite(s) and s > 0 for s in values):
        raise ConfigError(f"{where}: spacing must be three finite sizes above 0 (mm), got {list(values)}")
    return values


# -- memory -----------------------------------------------------------------------------------------


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable on Linux; physical memory elsewhere)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


MEMORY_SHARE = 0.5  # a volume may take at most this share of the available memory


def check_volume_memory(shape: tuple[int, ...], where: str, copies: int = 3) -> None:
    """Refuse a volume whose float32 array (times ``copies`` for the work on it) would not fit."""
    voxels = math.prod(int(n) for n in shape) if shape else 0
    need = voxels * 4 * copies
    limit = int(available_memory() * MEMORY_SHARE)
    if need > limit:
        raise VolumeError(
            f"{_at(where)}a {' x '.join(map(str, shape))} volume needs about {_size(need)} of memory to read "
            f"and use, more than the {_size(limit)} allowed (half of what is free)"
        )


def _at(where: str) -> str:
    return f"{where}: " if where else ""


def _size(count: int) -> str:
    return f"{count / 2**30:.1f} GB" if count >= 2**30 else f"{count / 2**20:.0f} MB"


def write_error_line(text: str) -> None:
    """An error on its own line, after any progress bar has been closed."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
    print(f"error: {clean_text(text)}", file=sys.stderr)
