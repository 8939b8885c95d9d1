"""Straightforward versus fast generation, side by side, on this machine.

For the official-size HA-GAN generator (52.5 M parameters, random weights in the official file
layout) at 128^3 and 256^3, runs the whole `python -m engine sample` process once with
``--reference`` and once with the default fast path, and prints wall time, peak memory, the max
abs difference of the outputs and the ratios. Also times the 64^3 anchor preview of the 256 model.

CPU: peak memory is the child process's peak resident set. CUDA (``--device cuda``): the runs
happen in this process and peak memory is ``torch.cuda.max_memory_allocated``.

    python benchmarks/generate.py [--device cpu|cuda] [--sizes 128 256] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.checkpoints import load_model  # noqa: E402
from engine.device import describe_hardware  # noqa: E402
from engine.generate import generate_part  # noqa: E402
from engine.latent import seed_to_z  # noqa: E402
from engine.models.hagan import Generator, HAGANConfig  # noqa: E402


def write_official_generator(folder: Path, resolution: int) -> Path:
    """A G_iter1.pth in the official layout ({'model': {'module.' + key: tensor}})."""
    torch.manual_seed(resolution)
    state = Generator(HAGANConfig.official(resolution)).state_dict()
    path = folder / f"G{resolution}" / "G_iter1.pth"
    path.parent.mkdir()
    torch.save({"model": {"module." + k: v for k, v in state.items()}}, path)
    return path


def run_cli(checkpoint: Path, resolution: int, part: str, out: Path, reference: bool) -> tuple[float, float]:
    """(wall seconds, peak RSS in GiB) of one whole `sample` process."""
    command = [sys.executable, "-m", "engine", "sample", "--checkpoint", str(checkpoint)]
    command += ["--resolution", str(resolution), "--seed", "1", "--part", part, "--intensity", "raw"]
    command += ["--device", "cpu", "--out", str(out)] + (["--reference"] if reference else [])
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"sample failed: {child.stderr.read().decode().strip()}")
    return wall, usage.ru_maxrss / 2**20  # Linux reports KiB


def run_cuda(checkpoint: Path, resolution: int, part: str, reference: bool) -> tuple[float, float, np.ndarray]:
    model = load_model(checkpoint, resolution, "cuda")
    z = seed_to_z(1, model.config.latent_dim)
    generate_part(model, z, "anchor", reference=reference)  # warm-up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    volume = generate_part(model, z, part, reference=reference)
    torch.cuda.synchronize()
    wall = time.perf_counter() - started
    return wall, torch.cuda.max_memory_allocated() / 2**30, volume[0, 0].cpu().numpy()


def print_preview_times(checkpoint: Path, repeat: int) -> None:
    """What the app feels: the model stays loaded, so only the forward passes count."""
    model = load_model(checkpoint, 256, "cpu")
    z = seed_to_z(1, model.config.latent_dim)
    times = {}
    for part in ("anchor", "full"):
        generate_part(model, z, part)  # warm-up
        runs = []
        for _ in range(repeat):
            started = time.perf_counter()
            generate_part(model, z, part)
            runs.append(time.perf_counter() - started)
        times[part] = float(np.median(runs))
    print(
        f"\nmodel loaded once (as in the app), fast path, 256^3: 64^3 anchor preview {times['anchor']:.2f} s, "
        f"full volume {times['full']:.2f} s ({times['full'] / times['anchor']:.1f}x longer)"
    )


def hardware(device: str) -> str:
    return f"{describe_hardware(torch.device(device))}, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is printed")
    args = parser.parse_args()
    print(f"hardware: {hardware(args.device)}")
    print("official-size HA-GAN generator (52.5 M parameters), random weights, batch 1, float32\n")
    header = f"{'case':<16}{'reference':>12}{'fast':>10}{'speed-up':>10}{'ref peak':>11}{'fast peak':>11}"
    header += f"{'peak %':>8}{'max |diff|':>12}"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size in args.sizes:
            checkpoint = write_official_generator(folder, size)
            cases = [("full", f"{size}^3 full")] + ([("anchor", f"{size}^3 anchor")] if size == 256 else [])
            for part, label in cases:
                results = {}
                runs = {True: [], False: []}
                for _ in range(args.repeat):  # alternate the two paths so drifts in load hit both
                    for reference in (True, False):
                        out = folder / f"{size}-{part}-{reference}.nii"
                        if args.device == "cuda":
                            wall, peak, array = run_cuda(checkpoint, size, part, reference)
                        else:
                            wall, peak = run_cli(checkpoint, size, part, out, reference)
                            array = np.asarray(nib.load(str(out)).dataobj)
                        runs[reference].append((wall, peak))
                        results[reference] = array
                for reference, values in runs.items():
                    walls, peaks = zip(*values)
                    results[reference] = (float(np.median(walls)), max(peaks), results[reference])
                (rw, rp, ra), (fw, fp, fa) = results[True], results[False]
                diff = float(np.abs(ra - fa).max())
                print(
                    f"{label:<16}{rw:>10.2f} s{fw:>8.2f} s{rw / fw:>9.1f}x{rp:>8.2f} GiB{fp:>7.2f} GiB"
                    f"{100 * fp / rp:>7.0f}%{diff:>12.1e}"
                )
        if args.device == "cpu" and 256 in args.sizes:
            print_preview_times(folder / "G256" / "G_iter1.pth", args.repeat)
    unit = "GPU memory allocated" if args.device == "cuda" else "whole process, peak resident set"
    print(
        f"\ntimes: {'forward pass after warm-up' if args.device == 'cuda' else 'whole sample process'}; peaks: {unit}"
    )


if __name__ == "__main__":
    main()
