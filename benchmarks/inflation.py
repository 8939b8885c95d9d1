"""Inflation ablation: one 2D Split&Shuffle model, inflated four ways, trained for the same budget, evaluated.

1. stage 2d: a 2D model on axial slices of built-in phantoms;
2. stage 3d, once per strategy (center, average, repeat, random = no inflation, the baseline):
   the same data order, latents, seed and iterations, only the initialisation differs;
3. ``engine evaluate`` of every 3D model against held-out phantoms (other seeds), at equal
   sample counts; the metrics are printed side by side and written to OUT/inflation.json.

Defaults are tiny so the whole ablation runs in minutes on a 2-core CPU; on a GPU raise them, e.g.
``--resolution 64 --preset default --iterations-2d 5000 --iterations-3d 5000 --batch-size 8
--samples 256 --real-count 256 --device cuda``.

    python benchmarks/inflation.py [--out runs/inflation] [--resolution 32] [--iterations-3d 150] ...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.cli import main as engine  # noqa: E402
from engine.data.phantoms import write_phantoms  # noqa: E402
from engine.device import describe_hardware, resolve_device  # noqa: E402
from engine.metrics.evaluate import EvaluationSettings, evaluate  # noqa: E402
from engine.models.inflate import STRATEGIES  # noqa: E402


def train(run: Path, args, *extra: str) -> float:
    """One ``engine train`` run; returns its wall time in seconds."""
    common = ["--family", "split-shuffle", "--phantoms", args.kind, "--resolution", str(args.resolution)]
    common += ["--batch-size", str(args.batch_size), "--phantom-count", str(args.phantom_count)]
    common += ["--seed", str(args.seed), "--device", args.device, "--checkpoint-every", "100000"]
    started = time.perf_counter()
    if engine(["train", *common, "--out", str(run), *extra]) != 0:
        raise SystemExit(f"training {run} failed")
    return time.perf_counter() - started


def metrics(report: dict) -> dict[str, float | None]:
    """The numbers compared across strategies."""
    m = report["metrics"]
    tissue, intensity = m["tissue_fractions"], m["intensity"]
    unit = f" {intensity['unit']}" if intensity["unit"] else ""
    return {
        "FID (2.5-D random features) ↓": m["fid"],
        "MMD² ↓": m["mmd2"],
        f"MS-SSIM between samples (real {(m['ms_ssim']['real'] or {}).get('mean', 0):.3f})": (
            m["ms_ssim"]["generated"] or {}
        ).get("mean"),
        f"intensity W1{unit} ↓": intensity["wasserstein1"],
        f"mean intensity{unit} (real {intensity['mean_real']:.4g})": intensity["mean_generated"],
        "tissue fractions, summed abs. difference ↓": sum(tissue["abs_difference"].values()) if tissue else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/inflation", help="a new folder for the runs and the report")
    parser.add_argument("--kind", default="chest-ct", choices=("chest-ct", "brain-mri"))
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--preset", default="tiny", help="split-shuffle widths: tiny, small or default")
    parser.add_argument("--blocks", default="mixed")
    parser.add_argument("--iterations-2d", type=int, default=400)
    parser.add_argument("--iterations-3d", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--phantom-count", type=int, default=48, help="training phantoms")
    parser.add_argument("--real-count", type=int, default=24, help="held-out phantoms to compare with")
    parser.add_argument("--samples", type=int, default=24, help="generated volumes per model")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists; give a new --out folder")
    network = ["--preset", args.preset, "--blocks", args.blocks]
    times = {"2d": train(out / "2d", args, "--stage", "2d", *network, "--iterations", str(args.iterations_2d))}
    for strategy in args.strategies:
        extra = ["--init-from", str(out / "2d"), "--inflate", strategy, "--iterations", str(args.iterations_3d)]
        times[strategy] = train(out / f"3d-{strategy}", args, *extra)
    real = out / "real"
    write_phantoms(args.kind, args.real_count, args.resolution, real, seed=1_000_000, progress=False)
    results = {}
    for strategy in args.strategies:
        settings = EvaluationSettings(
            checkpoint=str(out / f"3d-{strategy}" / "model.safetensors"),
            real=str(real),
            samples=args.samples,
            seed_start=10_000,
            device=args.device,
            seam_samples=0,
            msssim_pairs=args.samples // 2,
            reconstructions=0,
            cache_dir=str(out / "evaluate_cache"),
            progress=False,
        )
        results[strategy] = metrics(evaluate(settings))
    device = resolve_device(args.device)
    print_table(results, times, args, describe_hardware(device))
    report = {"settings": vars(args), "hardware": describe_hardware(device), "seconds": times, "metrics": results}
    (out / "inflation.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {out / 'inflation.json'}", file=sys.stderr)


def print_table(results: dict, times: dict, args, hardware: str) -> None:
    strategies = list(results)
    head = f"metric ({args.samples} samples vs {args.real_count} held-out phantoms)"
    print(f"| {head} | " + " | ".join(strategies) + " |")
    print("|---|" + "---|" * len(strategies))
    for name in next(iter(results.values())):
        values = [results[s][name] for s in strategies]
        print(f"| {name} | " + " | ".join("-" if v is None else f"{v:.4g}" for v in values) + " |")
    print("| 3D training time | " + " | ".join(f"{times[s]:.0f} s" for s in strategies) + " |")
    print(
        f"\n{args.kind} phantoms {args.resolution}³, preset {args.preset}, {args.blocks} blocks, batch "
        f"{args.batch_size}; 2D stage {args.iterations_2d} iterations ({times['2d']:.0f} s), 3D stage "
        f"{args.iterations_3d} iterations per strategy; {hardware}"
    )


if __name__ == "__main__":
    main()
