"""A picture of the built-in phantoms: axial, coronal and sagittal slices of a few seeds of each kind.

    python benchmarks/phantoms_gallery.py /tmp/phantoms_gallery.png [--size 128] [--seeds 0,1,2]

Chest CT is shown in a lung window (W1500/L-600) and a soft-tissue window (W400/L40); brain T1 in
its full range, through two sets of planes. Slices are shown the radiological way: the subject's
right on the left of the picture, anterior up in axial slices and to the right in sagittal ones,
superior up. Also prints the time to make each volume.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from engine.data.phantoms import PHANTOM_KINDS, make_phantom  # noqa: E402

LUNG, SOFT = (-1350.0, 150.0), (-160.0, 240.0)


def lung_voxels(array: np.ndarray) -> np.ndarray:
    """Air-like voxels (< -600 HU) enclosed by the body in their axial slice (not the table foam)."""
    in_plane = np.zeros((3, 3, 3), dtype=bool)
    in_plane[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_fill_holes(array > -300, structure=in_plane) & (array < -600)


def slice_planes(array: np.ndarray, kind: str) -> list[tuple[int, int, int]]:
    """Two sets of planes (i, j, k): through the lungs for CT, through the brain for MRI."""
    size = array.shape[0]
    if kind != "chest-ct":
        return [
            (size // 2 + size // 12, size // 2, size // 2),
            (size // 2 + size // 5, size // 2 - size // 6, size // 2 + size // 8),
        ]
    lung = lung_voxels(array)
    per_k = lung.sum(axis=(0, 1))
    rows = np.flatnonzero(per_k > 0.5 * per_k.max())
    k = int(rows.mean()) if rows.size else size // 2
    per_j = lung.sum(axis=(0, 2))
    centroid = float((per_j * np.arange(size)).sum() / max(per_j.sum(), 1))
    j = int(round(centroid)) + size // 12  # a little in front of the lungs' centroid: through the heart
    i = size // 2 + int(np.argmax(lung[size // 2 :].sum(axis=(1, 2))))
    return [(i, j, k), (i, j, k)]


def views(array: np.ndarray, planes: tuple[int, int, int]) -> list[np.ndarray]:
    """Axial, coronal and sagittal slices oriented for display (origin='lower')."""
    i, j, k = planes
    return [array[::-1, :, k].T, array[::-1, j, :].T, array[i, :, :].T]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for kind in PHANTOM_KINDS:
        for seed in seeds:
            start = time.perf_counter()
            volume = make_phantom(kind, args.size, seed)
            print(f"{kind} seed {seed} {args.size}^3: {time.perf_counter() - start:.2f} s")
            rows.append((kind, seed, volume))
    fig, axes = plt.subplots(len(rows), 6, figsize=(18, 3.2 * len(rows)), squeeze=False)
    for row, (kind, seed, volume) in enumerate(rows):
        first, second = (views(volume.array, planes) for planes in slice_planes(volume.array, kind))
        if kind == "chest-ct":
            panels = [(p, LUNG) for p in first] + [(p, SOFT) for p in second]
        else:
            full = (0.0, float(np.percentile(volume.array, 99.9)))
            panels = [(p, full) for p in first + second]
        for col, (picture, (low, high)) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(picture, origin="lower", cmap="gray", vmin=low, vmax=high, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(f"{kind}\nseed {seed}")
    for col, title in enumerate(["axial", "coronal", "sagittal"] * 2):
        axes[0, col].set_title(title + (" (CT lung window)" if col < 3 else " (CT soft-tissue window)"))
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=60)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
