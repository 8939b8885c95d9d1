"""What the UI thread spends on a new volume's windows, 3D presets and iso level (MRI, Fortran-ordered as
generated or read from NIfTI), from a sample of voxels, against a full copy of the volume first
(``array.ravel()`` of a Fortran-ordered array) and a percentile of every voxel for difference maps.

    python benchmarks/volume_statistics.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.panels.artifact_panel import difference_window  # noqa: E402
from app.render.scene3d import isosurface_value, volume_presets  # noqa: E402
from app.render.window_level import default_window  # noqa: E402
from engine.api import IntensityMapping, Volume  # noqa: E402

SHAPES = [(128, 128, 128), (256, 256, 256), (300, 512, 512)]  # (D, H, W): the last a 512x512x300 MRI


def best_ms(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def with_full_copy(volume: Volume) -> None:
    """The same statistics, each from a sample of a full C-ordered copy of the volume (as before)."""
    step = max(1, volume.array.size // 200_000)
    np.percentile(volume.array.ravel()[::step], [50, 99.5])  # the volume-rendering preset
    np.percentile(volume.array.ravel()[::step], 85)  # the iso level
    np.percentile(np.asarray(volume.array, dtype=np.float32).ravel()[::step], [1, 99])  # the window


def sampled(volume: Volume) -> None:
    volume_presets(volume, "mri")
    isosurface_value(volume, "mri")
    default_window(volume, "mri")


def figures(volume: Volume, repeat: int) -> list[float]:
    """Milliseconds: statistics copied, sampled; difference window over every voxel, sampled."""
    return [
        best_ms(lambda: with_full_copy(volume), repeat),
        best_ms(lambda: sampled(volume), repeat),
        best_ms(lambda: np.percentile(np.abs(volume.array), 99.5), repeat),
        best_ms(lambda: difference_window(volume), repeat),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    print("| volume | presets+iso+window: copied / sampled (ms) | difference window: every voxel / sampled (ms) |")
    print("|---|---|---|")
    for shape in SHAPES:
        network = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        volume = Volume.from_network(network, np.eye(4), IntensityMapping(0.0, 1000.0, ""))
        old, new, old_d, new_d = figures(volume, repeat)
        name = "x".join(str(n) for n in reversed(shape))
        copied = f"{old:.0f} / {new:.0f} ({old / new:.0f}x)"
        print(f"| {name} | {copied} | {old_d:.0f} / {new_d:.0f} ({old_d / new_d:.0f}x) |")


if __name__ == "__main__":
    main()
