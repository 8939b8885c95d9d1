"""Slices of the bundled demo models' samples next to their training phantoms, as one PNG.

python benchmarks/demo_gallery.py resources/images/demo-samples.png [--seeds 1 2 3] [--models A B]
    [--variation N] [--phantom-cache DIR]

The held-out phantoms (seeds 100..) are made directly, or with ``--phantom-cache`` read from (and made
once into) a phantom cache: then, as in training, clipped to the model's intensity window.

Iterations are counted from scratch: a model fine-tuned from another (``train --init-from``) adds
its source's iterations.

With ``--models`` naming several models of one kind, the first is the baseline: each other model's
figures are set against it (closer to the phantoms on spread, lung share and lung median, lower on
the histogram distance), with a count of the measures it is better on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.checkpoints import load_model  # noqa: E402
from engine.data.phantom_cache import PhantomCache  # noqa: E402
from engine.data.phantoms import make_phantom  # noqa: E402
from engine.demo import demo_models  # noqa: E402
from engine.generate import SampleRequest, sample_volume  # noqa: E402
from engine.metrics.intensity import intensity_wasserstein, tissue_fractions  # noqa: E402
from engine.training.init_source import trained_iterations  # noqa: E402

WINDOWS = {"chest-ct": (-1350.0, 150.0), "brain-mri": (0.0, 900.0)}  # lung window W1500/L-600; T1 a.u.


def planes(array):
    """Middle axial, coronal and sagittal slices of an (i, j, k) RAS array, displayed upright."""
    i, j, k = (s // 2 for s in array.shape)
    return [array[:, :, k].T, array[:, j, :].T, array[i, :, :].T]


def spread(volumes: list[np.ndarray]) -> float:
    return float(np.stack(volumes).std(axis=0).mean())


def held_out_phantoms(kind: str, size: int, count: int, cache_dir: str | None, intensity) -> list[np.ndarray]:
    """Phantoms of seeds 100.. (never trained on), as RAS arrays in physical units."""
    seeds = range(100, 100 + count)
    if not cache_dir:
        return [make_phantom(kind, size, seed).array for seed in seeds]
    cache = PhantomCache(cache_dir, kind, size)
    cache.fill(seeds, workers=min(count, 4))
    return [intensity.to_physical(np.asarray(cache.load(seed), np.float32)).transpose(2, 1, 0) for seed in seeds]


def print_figures(model, count: int, cache_dir: str | None = None, phantoms: dict | None = None) -> dict[str, float]:
    """How much samples differ between seeds, next to how much training phantoms differ; how far
    the samples' intensity histogram lies from the phantoms'; for CT, the share of lung voxels.

    Returns each measure as (sample value, phantom value); ``phantoms`` keeps the held-out phantoms
    per kind between calls.
    """
    kind = model.card.training["data"]["kind"]
    samples = [sample_volume(model, SampleRequest(seed)).array for seed in range(1, count + 1)]
    key = (kind, model.config.resolution)
    phantoms = {} if phantoms is None else phantoms
    if key not in phantoms:
        phantoms[key] = held_out_phantoms(kind, model.config.resolution, count, cache_dir, model.card.intensity)
    real_volumes = phantoms[key]
    model_spread, data_spread = spread(samples), spread(real_volumes)
    unit, ratio = model.card.intensity.unit or "a.u.", model_spread / data_spread
    print(f"{kind:>9}: seeds {model_spread:7.1f} {unit}, phantoms {data_spread:7.1f} {unit}, ratio {ratio:.2f}")
    generated, real = voxels(samples), voxels(real_volumes)
    distance = intensity_wasserstein(generated, real)
    print(f"{'':>9}  intensity histogram to the phantoms' (Wasserstein-1): {distance:.1f} {unit}")
    figures = {"spread": (model_spread, data_spread), "histogram W1": (distance, 0.0)}
    if kind == "chest-ct":
        lung = [tissue_fractions(values)["lung"] for values in (generated, real)]
        print(f"{'':>9}  lung voxels (-900..-400 HU): samples {lung[0]:.3f}, phantoms {lung[1]:.3f}")
        haze = [lung_median(volumes) for volumes in (samples, real_volumes)]
        print(f"{'':>9}  lung median (-960..-300 HU, central block): samples {haze[0]:.0f}, phantoms {haze[1]:.0f}")
        figures |= {"lung share": tuple(lung), "lung median": tuple(haze)}
    return figures


def compare(baseline: dict[str, tuple[float, float]], candidate: dict[str, tuple[float, float]]) -> list[str]:
    """The measures on which ``candidate`` lies closer to the phantoms than ``baseline`` does."""
    return [name for name, (value, real) in candidate.items() if abs(value - real) < abs(baseline[name][0] - real)]


def lung_median(volumes: list[np.ndarray]) -> float:
    """Median HU of the chest's lung-range voxels: hazy generated lungs sit above the phantoms'.

    Only the central block (away from the table and the air around the body) counts.
    """
    size = volumes[0].shape[0]  # the block of a 128^3 volume, [20:108, 20:108, 32:96], at any size
    inner, axial = slice(20 * size // 128, 108 * size // 128), slice(size // 4, 3 * size // 4)
    block = np.concatenate([volume[inner, inner, axial].ravel() for volume in volumes])
    return float(np.median(block[(block > -960) & (block < -300)]))


def voxels(volumes: list[np.ndarray], per_volume: int = 200_000) -> np.ndarray:
    """A fixed random subset of each volume's voxels, pooled (exact enough, and quick)."""
    rng = np.random.default_rng(0)
    return np.concatenate([rng.choice(volume.ravel(), per_volume) for volume in volumes])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--models", nargs="+", help="model files (default: the bundled demo models)")
    parser.add_argument(
        "--variation", type=int, default=0, metavar="N", help="also print N samples' spread and histogram distance"
    )
    parser.add_argument("--phantom-cache", metavar="DIR", help="held-out phantoms from (and into) this phantom cache")
    args = parser.parse_args()
    paths = args.models or demo_models()
    rows, kinds_shown = [], set()
    for path in paths:
        model = load_model(path)
        kind = model.card.training["data"]["kind"]
        iterations = trained_iterations(model.card.training)
        name = Path(path).stem if args.models else "demo"
        if kind not in kinds_shown:  # one phantom row per kind, above its first model
            kinds_shown.add(kind)
            rows.append((f"{kind}\ntraining phantom", kind, make_phantom(kind, model.config.resolution, 7).array))
        for seed in args.seeds:
            label = f"{kind}\n{name} seed {seed}\n({iterations} it.)"
            rows.append((label, kind, sample_volume(model, SampleRequest(seed)).array))
    if args.variation:
        print(f"spread: voxel-wise standard deviation over {args.variation} volumes, mean over the volume")
        phantoms, baselines = {}, {}
        for path in paths:
            print(Path(path).name)
            model = load_model(path)
            figures = print_figures(model, args.variation, args.phantom_cache, phantoms)
            kind = model.card.training["data"]["kind"]
            if kind not in baselines:
                baselines[kind] = (Path(path).name, figures)
                continue
            base_name, base = baselines[kind]
            better = compare(base, figures)
            listed = ", ".join(better) or "none"
            print(f"{'':>9}  against {base_name}: better on {len(better)} of {len(figures)} ({listed})")
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.5 * len(rows)))
    for row, (label, kind, array) in zip(axes, rows):
        low, high = WINDOWS[kind]
        for axis, image, title in zip(row, planes(array), ("axial", "coronal", "sagittal")):
            axis.imshow(image, cmap="gray", vmin=low, vmax=high, origin="lower")
            axis.set_xticks([])
            axis.set_yticks([])
            if row is axes[0]:
                axis.set_title(title)
        row[0].set_ylabel(label, fontsize=8)
    what = "HA-GAN models" if args.models else "bundled demo models (HA-GAN 128³)"
    fig.suptitle(f"SYNTHETIC: {what} and their training data", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.985))  # room for the title
    fig.savefig(args.out, dpi=70)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
