"""Straightforward versus fast generation, and reduced precision, side by side on this machine.

Cases: the official-size HA-GAN generator (52.5 M parameters, random weights in the official file
layout, CT window) at each ``--sizes``, and the bundled demo models (resources/models). Rows per
case: the straightforward pass in exact fp32 (the reference), the sub-pixel path in exact fp32,
and the sub-pixel path in every reduced precision the device runs (bf16 on CPUs with bf16
instructions; tf32, bf16 and fp16 on CUDA). Each row gives time, peak memory and the max and mean
absolute difference from the reference in the model's physical units (HU for CT). Rows run in
turn, ``--repeat`` times (reference, fast, bf16, reference, fast, bf16, ...), so drifts in load hit
every row alike; times are medians.

CPU: every run is a whole ``python -m engine sample`` process; peak memory is its peak resident
set. Beside it, the generation alone: the model loaded once in this process, each row warmed up
once, then the rows run in turn ``--repeat`` times (one ``generate_part`` of the full volume;
medians). The sub-pixel path changes only that part; the whole process also pays starting
Python, importing torch, reading the model and writing the file, the same for every row.
CUDA: runs happen in this process after a warm-up of each row, timed with CUDA events in
milliseconds; peak memory is ``torch.cuda.max_memory_allocated``. "Exact" on CUDA is strict fp32
(TF32 off). The last lines say which path is faster per case at the device's default precision:
the one ``sample`` and the app pick when ``--reference`` is not given.

    python benchmarks/generate.py [--device cpu|cuda] [--sizes 128 256] [--repeat 3] [--no-demos]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.checkpoints import load_model  # noqa: E402
from engine.demo import demo_models  # noqa: E402
from engine.device import describe_hardware  # noqa: E402
from engine.generate import generate_part  # noqa: E402
from engine.latent import seed_to_z  # noqa: E402
from engine.models.hagan import Generator, HAGANConfig  # noqa: E402
from engine.nifti import load_nifti  # noqa: E402
from engine.precision import allowed_precisions, default_precision  # noqa: E402


@dataclass(frozen=True)
class Row:
    reference: bool
    precision: str

    @property
    def label(self) -> str:
        return f"{'straightforward' if self.reference else 'sub-pixel'} {self.precision}"


@dataclass(frozen=True)
class Case:
    label: str
    checkpoint: Path
    resolution: int | None  # official files do not record it
    part: str = "full"


def write_official_generator(folder: Path, resolution: int) -> Path:
    """A G_iter1.pth in the official layout ({'model': {'module.' + key: tensor}})."""
    torch.manual_seed(resolution)
    state = Generator(HAGANConfig.official(resolution)).state_dict()
    path = folder / f"G{resolution}" / "G_iter1.pth"
    path.parent.mkdir()
    torch.save({"model": {"module." + k: v for k, v in state.items()}}, path)
    return path


def rows_for(device: str) -> list[Row]:
    """The reference, the exact fast path, then the fast path in each reduced precision the device runs."""
    reduced = [p for p in allowed_precisions(device) if p != "fp32"]
    return (
        [Row(True, "fp32"), Row(False, "fp32")]
        + [Row(False, p) for p in reduced]
        + (
            [Row(True, "tf32")] if "tf32" in reduced else []  # CUDA's default: which path is faster there
        )
    )


def run_cli(case: Case, row: Row, out: Path) -> tuple[float, float, np.ndarray]:
    """(wall seconds, peak RSS in GiB, volume) of one whole `sample` process."""
    command = [sys.executable, "-m", "engine", "sample", "--checkpoint", str(case.checkpoint), "--seed", "1"]
    command += ["--resolution", str(case.resolution)] if case.resolution else []
    command += ["--part", case.part, "--device", "cpu", "--precision", row.precision, "--out", str(out), "--force"]
    command += ["--reference"] if row.reference else []
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"sample failed: {child.stderr.read().decode().strip()}")
    return wall, usage.ru_maxrss / 2**20, load_nifti(out).array  # Linux reports KiB


class CudaRunner:
    """One model on the GPU; each row warmed up once, then timed with CUDA events."""

    def __init__(self, case: Case):
        self.model = load_model(case.checkpoint, case.resolution, "cuda", parts=("G",))
        self.z = seed_to_z(1, self.model.config.latent_dim)
        self.part = case.part
        self.warm: set[Row] = set()

    def __call__(self, row: Row) -> tuple[float, float, np.ndarray]:
        run = lambda: generate_part(self.model, self.z, self.part, reference=row.reference, precision=row.precision)  # noqa: E731
        if row not in self.warm:
            run()
            self.warm.add(row)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        volume = run()
        end.record()
        torch.cuda.synchronize()
        physical = self.model.card.intensity.to_physical(volume[0, 0].float().cpu().numpy())
        return start.elapsed_time(end) / 1000, torch.cuda.max_memory_allocated() / 2**30, physical


def measure_loaded(case: Case, rows: list[Row], repeat: int) -> dict[Row, float]:
    """Median seconds of the generation alone per row: the model loaded once, rows in turn after a warm-up each."""
    model = load_model(case.checkpoint, case.resolution, "cpu", parts=("G",))
    z = seed_to_z(1, model.config.latent_dim)
    run = lambda row: generate_part(model, z, case.part, reference=row.reference, precision=row.precision)  # noqa: E731
    for row in rows:
        run(row)
    runs: dict[Row, list[float]] = {row: [] for row in rows}
    for _ in range(repeat):
        for row in rows:
            started = time.perf_counter()
            run(row)
            runs[row].append(time.perf_counter() - started)
    return {row: float(np.median(times)) for row, times in runs.items()}


def measure(case: Case, rows: list[Row], device: str, repeat: int, folder: Path) -> dict[Row, tuple]:
    """Median time, peak memory and the last volume of every row, the rows run in turn ``repeat`` times."""
    runs: dict[Row, list] = {row: [] for row in rows}
    arrays: dict[Row, np.ndarray] = {}
    runner = CudaRunner(case) if device == "cuda" else None
    for _ in range(repeat):
        for row in rows:
            if runner is not None:
                wall, peak, array = runner(row)
            else:
                wall, peak, array = run_cli(case, row, folder / f"{row.reference}-{row.precision}.nii")
            runs[row].append((wall, peak))
            arrays[row] = array
    return {
        row: (float(np.median([w for w, _ in values])), max(p for _, p in values), arrays[row])
        for row, values in runs.items()
    }


def print_case(
    case: Case, rows: list[Row], results: dict[Row, tuple], device: str, unit: str, loaded: dict[Row, float]
) -> str:
    """The case's table rows; returns the faster path at the device's default precision."""
    ref_time, ref_peak, ref_array = results[rows[0]]
    scale, time_unit = (1000, "ms") if device == "cuda" else (1, "s")
    for row in rows:
        wall, peak, array = results[row]
        diff = np.abs(array - ref_array)
        alone = f"{loaded[row]:>10.2f} s {loaded[rows[0]] / loaded[row]:>8.2f}x" if loaded else ""
        print(
            f"{case.label:<24}{row.label:<22}{wall * scale:>10.2f} {time_unit:<3}{ref_time / wall:>8.2f}x{alone}"
            f"{peak:>9.2f} GiB{100 * peak / ref_peak:>7.0f}%{diff.max():>12.3g}{diff.mean():>12.3g} {unit}"
        )
    default = default_precision(device)
    fast = results[Row(False, default)][0]
    slow = results.get(Row(True, default), results[rows[0]])[0]
    return "straightforward" if slow < fast else "sub-pixel"


def print_preview_times(checkpoint: Path, precisions: list[str], repeat: int) -> None:
    """What the app feels on the CPU: the model stays loaded, so only the forward passes count."""
    model = load_model(checkpoint, 256, "cpu", parts=("G",))
    z = seed_to_z(1, model.config.latent_dim)
    print("\nmodel loaded once (as in the app), sub-pixel path, 256^3, median of", repeat)
    for precision in precisions:
        times = {}
        for part in ("anchor", "full"):
            generate_part(model, z, part, precision=precision)  # warm-up
            runs = []
            for _ in range(repeat):
                started = time.perf_counter()
                generate_part(model, z, part, precision=precision)
                runs.append(time.perf_counter() - started)
            times[part] = float(np.median(runs))
        print(f"  {precision}: 64^3 anchor preview {times['anchor']:.2f} s, full volume {times['full']:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--sizes", type=int, nargs="*", default=[128, 256], help="official-size generators")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row, in turn; the median is printed")
    parser.add_argument("--no-demos", action="store_true", help="skip the bundled demo models")
    args = parser.parse_args()
    rows = rows_for(args.device)
    print(f"hardware: {describe_hardware(torch.device(args.device))}, torch {torch.__version__}")
    print(f"batch 1, seed 1; median of {args.repeat} runs per row, rows in turn; differences from the first row\n")
    cpu = args.device == "cpu"
    first = "process" if cpu else "time"
    header = f"{'case':<24}{'path, precision':<22}{first:>14}{'speed-up':>9}"
    header += f"{'generation':>14}{'speed-up':>9}" if cpu else ""
    header += f"{'peak':>13}{'peak %':>8}"
    header += f"{'max |diff|':>12}{'mean |diff|':>12}"
    print(header)
    print("-" * len(header))
    faster = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = [Case(f"official {s}^3 (random)", write_official_generator(folder, s), s) for s in args.sizes]
        if not args.no_demos:
            cases += [Case(path.stem, path, None) for path in demo_models()]
        for case in cases:
            results = measure(case, rows, args.device, args.repeat, folder)
            loaded = measure_loaded(case, rows, args.repeat) if cpu else {}
            unit = load_model(case.checkpoint, case.resolution, "cpu", parts=("G",)).card.intensity.unit
            faster[case.label] = print_case(case, rows, results, args.device, unit or "(model units)", loaded)
        if args.device == "cpu" and 256 in args.sizes:
            print_preview_times(folder / "G256" / "G_iter1.pth", list(allowed_precisions("cpu")), args.repeat)
    print(f"\nfaster path at the default precision ({default_precision(args.device)}) on this device:")
    for label, path in faster.items():
        print(f"  {label}: {path}")
    if cpu:
        print(
            "times and speed-ups: 'process' = a whole `python -m engine sample` process (Python, torch, reading the"
            " model, generating, writing the file); 'generation' = generate_part alone, the model loaded once in"
            " this process (what the sub-pixel path changes; what the app feels). Peaks: whole process, peak"
            " resident set. Differences: the 'process' runs' volumes"
        )
    else:
        print("times: forward pass after warm-up, CUDA events; peaks: GPU memory allocated")


if __name__ == "__main__":
    main()
