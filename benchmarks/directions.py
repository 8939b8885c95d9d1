"""What the top SeFa directions of the demo models change, measured along α in [-3, 3] on several seeds.

python benchmarks/directions.py [--count 3] [--seeds 0-7] [--level anchor|full] [--models A B]

For every direction and α it prints the mean over seeds of figures a clinician would name, and
on how many seeds each figure moves monotonically (in the mean trend's direction) along α:

- chest CT: body volume (the body outline filled slice by slice: voxels above -500 HU, holes
  included), lung volume (-950 to -400 HU inside the body outline), mean soft-tissue HU
  (-100 to 200 HU inside the body);
- brain MRI: tissue volume (voxels above 250, T1 a.u.: grey and white matter and the bright scalp), ventricle and
  deep-CSF volume (dark voxels, 20 to 250, enclosed by the brain once its holes are filled),
  grey/white contrast (mean of voxels above 550 over the mean of 250 to 550).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.checkpoints import load_model  # noqa: E402
from engine.demo import demo_models  # noqa: E402
from engine.directions import SIGMA_RANGE, move, sefa  # noqa: E402
from engine.generate import SampleRequest, sample_volume  # noqa: E402
from engine.latent import parse_seeds, seed_to_z  # noqa: E402

ALPHAS = np.linspace(-SIGMA_RANGE, SIGMA_RANGE, 7)


def fill_slices(mask: np.ndarray) -> np.ndarray:
    """Fill holes in every axial (k) slice: a body outline includes its lungs."""
    return np.stack([ndimage.binary_fill_holes(mask[:, :, k]) for k in range(mask.shape[2])], axis=2)


def chest_figures(array: np.ndarray, voxel_ml: float) -> dict[str, float]:
    body = fill_slices(ndimage.binary_opening(array > -500))
    lungs = body & (array >= -950) & (array <= -400)
    soft = body & (array >= -100) & (array <= 200)
    return {
        "body (L)": body.sum() * voxel_ml / 1000,
        "lungs (L)": lungs.sum() * voxel_ml / 1000,
        "soft tissue (HU)": float(array[soft].mean()) if soft.any() else float("nan"),
    }


def brain_figures(array: np.ndarray, voxel_ml: float) -> dict[str, float]:
    brain = array > 250
    enclosed = ndimage.binary_fill_holes(brain) & ~brain & (array > 20)
    white, grey = array[array > 550], array[(array > 250) & (array <= 550)]
    return {
        "tissue >250 (mL)": brain.sum() * voxel_ml,
        "ventricles (mL)": enclosed.sum() * voxel_ml,
        "grey/white": float(white.mean() / grey.mean()) if white.size and grey.size else float("nan"),
    }


def monotone_count(series: np.ndarray) -> int:
    """Seeds (rows) whose figure never steps against the mean trend along α."""
    mean = np.nanmean(series, axis=0)
    trend = np.sign(mean[-1] - mean[0])
    steps = np.diff(series, axis=1) * trend
    return int(np.sum(np.all(steps >= -1e-9, axis=1))) if trend else 0


def measure(path: Path, count: int, seeds: list[int], level: str) -> None:
    model = load_model(path, device="cpu", parts=("G",))
    card = model.card
    figures = chest_figures if card.modality == "ct" else brain_figures
    directions = sefa(model, count)
    spacing = np.asarray(card.spacing_mm) * (4 if level == "anchor" else 1)
    voxel_ml = float(np.prod(spacing)) / 1000
    print(f"\n## {card.name} ({level}, {len(seeds)} seeds: {seeds[0]}..{seeds[-1]})")
    print("α: " + " ".join(f"{a:+.0f}" for a in ALPHAS))
    for d in range(count):
        table: dict[str, np.ndarray] = {}
        for s, seed in enumerate(seeds):
            z = seed_to_z(seed, card.config.latent_dim)
            for a, alpha in enumerate(ALPHAS):
                volume = sample_volume(model, SampleRequest(None, level, latent=move(z, directions.vectors[d], alpha)))
                for name, value in figures(volume.array, voxel_ml).items():
                    table.setdefault(name, np.zeros((len(seeds), len(ALPHAS))))[s, a] = value
        print(f"direction {d + 1} (share {100 * directions.shares[d]:.1f}%)")
        for name, series in table.items():
            means = " ".join(f"{v:8.3g}" for v in np.nanmean(series, axis=0))  # nan: a seed without the tissue
            print(f"  {name:<18} {means}   monotone on {monotone_count(series)}/{len(seeds)} seeds")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3, help="top directions to measure (default 3)")
    parser.add_argument("--seeds", default="0-7", help='seeds, e.g. "0-7" (default)')
    parser.add_argument("--level", choices=("anchor", "full"), default="anchor")
    parser.add_argument("--models", nargs="*", type=Path, default=None, help="model files (default: both demos)")
    args = parser.parse_args()
    started = time.perf_counter()
    for path in args.models or demo_models():
        measure(path, args.count, parse_seeds(args.seeds), args.level)
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
