"""Seam score of full versus stitched generation of the same latents, side by side.

``full`` runs G^H on the whole feature map (HA-GAN's inference); ``stitched`` concatenates the 8
slabs generated independently (what a naive patch-based generator would show). For each seed the
script prints the mean over the 7 slab boundaries of both: the seam score with the same-phase
reference planes the evaluation uses (period 4 from 64^3 up), and the jump relative to the
adjacent planes b-1 and b+1 (``adjacent_jump``), the second number ``evaluate`` reports.

Without ``--checkpoint`` it builds the official-size 128^3 generator with random weights drawn
from normal(0, ``--init-std``) (PyTorch's default initialisation leaves G^H nearly flat).

    python benchmarks/seams.py [--checkpoint FILE [--resolution 128|256]] [--seeds 0-7] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.card import CT_WINDOW, ModelCard  # noqa: E402
from engine.checkpoints import load_model  # noqa: E402
from engine.device import describe_device, resolve_device  # noqa: E402
from engine.generate import FastGenerator  # noqa: E402
from engine.latent import parse_seeds, seed_to_z  # noqa: E402
from engine.metrics.seams import adjacent_jump, hagan_seam_period, mean_seam_score, slab_boundaries  # noqa: E402
from engine.model import HAGANModel  # noqa: E402
from engine.models.hagan import HAGANConfig  # noqa: E402


def random_model(resolution: int, init_std: float, seed: int = 0) -> HAGANModel:
    """The official-size generator with random weights (normal(0, init_std); 0 keeps PyTorch's init)."""
    torch.manual_seed(seed)
    model = HAGANModel.build(ModelCard(config=HAGANConfig.official(resolution), intensity=CT_WINDOW), parts=("G",))
    if init_std > 0:
        for p in model.generator.parameters():
            p.data.normal_(0.0, init_std)
    init = f"normal(0, {init_std})" if init_std > 0 else "PyTorch default init"
    model.card.name = f"random official-size {resolution}^3 G ({init})"
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a model file (default: random official-size generator)")
    parser.add_argument("--resolution", type=int, default=128, choices=(128, 256), help="official files / random G")
    parser.add_argument("--seeds", default="0-7", help='seed list, e.g. "0-7" (default)')
    parser.add_argument("--init-std", type=float, default=0.2, help="std of the random weights (0: PyTorch init)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if args.checkpoint:
        model = load_model(args.checkpoint, args.resolution, device, parts=("G",))
    else:
        model = random_model(args.resolution, args.init_std).to(device)
    config = model.config
    boundaries, period = slab_boundaries(config.resolution), hagan_seam_period(config.resolution)
    runner = FastGenerator(model.generator)
    print(f"model      {model.card.name or args.checkpoint}  ({config.resolution}^3, {describe_device(device)})")
    print(f"boundaries {boundaries}; reference planes b +- k*{period} (k = 1..3); adjacent: b-1 and b+1\n")
    header = f"{'seed':>6}  {'full':>9}  {'stitched':>10}  {'ratio':>9}  {'full adj':>9}  {'stitched adj':>12}"
    print(header)
    rows = []
    started = time.perf_counter()
    for seed in parse_seeds(args.seeds):
        features = runner.features(seed_to_z(seed, config.latent_dim, device))
        full, stitched = runner.full(features)[0, 0], runner.stitched(features)[0, 0]
        row = [
            mean_seam_score(full, boundaries, period=period),
            mean_seam_score(stitched, boundaries, period=period),
            float(adjacent_jump(full, boundaries).mean()),
            float(adjacent_jump(stitched, boundaries).mean()),
        ]
        rows.append(row)
        print(f"{seed:>6}  {row[0]:>9.3f}  {row[1]:>10.3f}  {row[1] / row[0]:>8.1f}x  {row[2]:>9.3f}  {row[3]:>12.3f}")
    mean = np.mean(rows, axis=0)
    print(
        f"{'mean':>6}  {mean[0]:>9.3f}  {mean[1]:>10.3f}  {mean[1] / mean[0]:>8.1f}x  {mean[2]:>9.3f}  {mean[3]:>12.3f}"
    )
    print(f"\n{len(rows)} seeds in {time.perf_counter() - started:.1f} s; 1.0 means no seam")


if __name__ == "__main__":
    main()
