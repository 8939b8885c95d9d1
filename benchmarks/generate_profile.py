"""Where the fast path's time goes, per layer: convolutions, GroupNorm, copies, allocation.

Runs the sub-pixel path of the official-size generator (random weights) once to warm up, then
once under torch.profiler, and attributes every aten operator's own time to the layer it ran in
(G^A's tp_conv1..5 with their GroupNorms, G^H's tp_conv6 + bn6 and tp_conv7) and to a kind:

- convolution: the convolution kernels themselves
- groupnorm: statistics, scale and shift, ReLU, tanh
- copies: copies between tensors (chunk halos, phase interleaving, dtype casts, layout changes)
- allocation: allocating and zero-filling tensors
- other: views and small bookkeeping

    python benchmarks/generate_profile.py [--size 256] [--threads 2] [--precision fp32]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import engine.generate as generate  # noqa: E402
from engine.device import describe_hardware  # noqa: E402
from engine.models.hagan import Generator, HAGANConfig  # noqa: E402

KINDS = {
    "convolution": ("conv", "mkldnn_convolution", "convolution"),
    "groupnorm": ("var_mean", "addcmul", "relu", "mul", "add", "rsqrt", "repeat_interleave", "tanh", "sub", "div"),
    "copies": ("copy_", "contiguous", "clone", "_to_copy", "cat", "stack", "to"),
    "allocation": ("empty", "zero_", "zeros", "fill_", "empty_strided", "zeros_like"),
}
COLUMNS = (*KINDS, "other")


def kind_of(name: str) -> str:
    op = name.removeprefix("aten::")
    for kind, ops in KINDS.items():
        if any(op == o or (o == "conv" and op.startswith("conv")) for o in ops):
            return kind
    return "other"


def label_layers(runner: generate.FastGenerator) -> None:
    """Wrap the runner's per-layer steps in profiler ranges named after the layer."""
    conv, norm = runner._conv, runner._norm_relu
    norms = {id(getattr(runner.generator, f"bn{i}")): f"tp_conv{i}" for i in range(1, 7)}

    def named_conv(name, x):
        with record_function(f"layer {name}"):
            return conv(name, x)

    def named_norm(module, x, bordered=False):
        with record_function(f"layer {norms.get(id(module), 'sub_G')}"):
            return norm(module, x, bordered)

    runner._conv, runner._norm_relu = named_conv, named_norm
    original = generate.upsample_conv3d

    def named_upsample(x, phases, *args, **kwargs):
        # G^H's two convolutions (G^A's run inside named_conv already): g channels out, then 1
        name = {runner.config.g_width: "tp_conv6", 1: "tp_conv7"}.get(phases.shape[0] // 8)
        if name is None:
            return original(x, phases, *args, **kwargs)
        with record_function(f"layer {name}"):
            return original(x, phases, *args, **kwargs)

    generate.upsample_conv3d = named_upsample


def layer_of(event) -> str:
    while event is not None:
        if event.name.startswith("layer "):
            return event.name.removeprefix("layer ")
        event = event.cpu_parent
    return "rest"


def top_operator(event):
    """The outermost aten operator of this one inside its layer range (its kind decides the column)."""
    top = event
    while event.cpu_parent is not None and event.cpu_parent.name.startswith("aten::"):
        event = event.cpu_parent
        top = event
    return top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, choices=(128, 256))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = Generator(HAGANConfig.official(args.size)).eval()
    runner = generate.FastGenerator(generator, precision=args.precision)
    z = torch.randn(1, generator.config.latent_dim)
    runner.full(runner.features(z))  # warm-up (oneDNN primitives, allocator)
    started = time.perf_counter()
    runner.full(runner.features(z))
    wall = time.perf_counter() - started
    label_layers(runner)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        runner.full(runner.features(z))
    table: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        table[layer_of(event)][kind_of(top_operator(event).name)] += event.self_cpu_time_total / 1e6
    print(f"hardware: {describe_hardware(torch.device('cpu'))}, torch {torch.__version__}")
    print(f"sub-pixel path, official {args.size}^3 generator, {args.precision}, {args.threads} threads")
    print(f"one pass without the profiler: {wall:.2f} s; seconds per layer under it:\n")
    print("| layer | " + " | ".join(COLUMNS) + " | total |")
    print("|---|" + "---:|" * (len(COLUMNS) + 1))
    totals = defaultdict(float)
    for layer in sorted(table, key=lambda name: (name == "rest", name)):
        values = [table[layer][kind] for kind in COLUMNS]
        for kind, value in zip(COLUMNS, values):
            totals[kind] += value
        print(f"| {layer} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {sum(values):.3f} |")
    print("| **all** | " + " | ".join(f"{totals[k]:.3f}" for k in COLUMNS) + f" | {sum(totals.values()):.3f} |")


if __name__ == "__main__":
    main()
