"""Seconds per HA-GAN training iteration in fp32 and bf16, side by side, on the CPU (or a GPU).

One iteration is the trainer's own ``step`` (D, G, E^H, E^G updates) on chest CT phantoms. On a
CPU with AVX512-BF16 or AMX, ``--precision bf16`` lets oneDNN run the 3D convolutions in bf16;
this script measures what that buys, per thread count:

    python benchmarks/train_step.py [--resolution 128] [--preset demo] [--batch 1] [--threads 1 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.device import cpu_has_bf16  # noqa: E402
from engine.training.config import TrainConfig  # noqa: E402
from engine.training.distributed import Distributed  # noqa: E402
from engine.training.hagan_trainer import HAGANTrainer  # noqa: E402


def seconds_per_iteration(args, precision: str, out: str) -> float:
    cfg = TrainConfig(
        data="phantoms:chest-ct",
        out=out,
        resolution=args.resolution,
        preset=args.preset,
        batch_size=args.batch,
        phantom_count=args.batch,
        precision=precision,
    )
    trainer = HAGANTrainer(cfg, Distributed(device=torch.device(args.device)), quiet=True)
    batch = next(trainer.data)
    trainer.step(*batch)  # warm-up: oneDNN / cuDNN pick their kernels
    if args.device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.iterations):
        trainer.step(*batch)
    if args.device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / args.iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.device == "cpu":
        print(f"CPU bf16 instructions: {cpu_has_bf16()}")
    print(f"HA-GAN {args.resolution}^3, preset {args.preset}, batch {args.batch}, {args.device}")
    print(f"{'threads':>8} {'fp32 s/it':>10} {'bf16 s/it':>10} {'speed-up':>9}")
    with tempfile.TemporaryDirectory() as out:
        for threads in args.threads if args.device == "cpu" else [torch.get_num_threads()]:
            torch.set_num_threads(threads)
            fp32 = seconds_per_iteration(args, "fp32", out + "/fp32")
            bf16 = seconds_per_iteration(args, "bf16", out + "/bf16")
            print(f"{threads:>8} {fp32:>10.2f} {bf16:>10.2f} {fp32 / bf16:>8.1f}x")


if __name__ == "__main__":
    main()
