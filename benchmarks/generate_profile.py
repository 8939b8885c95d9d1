"""Where the fast path's time goes, per layer: convolutions, GroupNorm, copies, allocation, output.

Runs the sub-pixel path of the official-size generator (random weights) once to warm up, times
one pass (wall clock and process CPU time), then runs one more under torch.profiler and
attributes every aten operator's own time to the layer it ran in (fc1; G^A's tp_conv1..5 with
their GroupNorms; G^H's tp_conv6 with bn6's statistics, tp_conv7 with bn6's scale, shift and
ReLU applied while its input chunks are copied; the output: tanh, the float32 copy, the array
in NIfTI order and the scaling to HU) and to a kind:

- convolution: the convolution kernels themselves (and fc1's matrix product)
- groupnorm: statistics, scale and shift, ReLU, tanh, scaling to physical units
- copies: copies between tensors (chunk halos, phase interleaving, dtype casts, layout changes)
- allocation: allocating and zero-filling tensors
- other: views and small bookkeeping

Time spent outside aten operators (numpy's scaling to HU) is the output row's "other".

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
from engine.card import CT_WINDOW  # noqa: E402
from engine.device import describe_hardware  # noqa: E402
from engine.models.hagan import Generator, HAGANConfig  # noqa: E402
from engine.volume import Volume  # noqa: E402

KINDS = {
    "convolution": ("conv", "mkldnn_convolution", "convolution", "addmm", "linear"),
    "groupnorm": (
        "group_norm",
        "native_group_norm",
        "var_mean",
        "addcmul",
        "relu",
        "relu_",
        "mul",
        "add",
        "rsqrt",
        "repeat_interleave",
        "tanh",
        "tanh_",
        "sub",
        "div",
        "diagonal",
        "linalg_diagonal",
        "mm",
        "mv",
        "matmul",
        "sum",
    ),
    "copies": ("copy_", "contiguous", "clone", "_to_copy", "cat", "stack", "to", "einsum"),
    "allocation": ("empty", "zero_", "zeros", "ones", "fill_", "empty_strided", "zeros_like"),
}
COLUMNS = (*KINDS, "other")
LAYERS = ("fc1", *(f"tp_conv{i}" for i in range(1, 8)), "output", "rest")


def kind_of(name: str) -> str:
    op = name.removeprefix("aten::")
    for kind, ops in KINDS.items():
        if any(op == o or (o == "conv" and op.startswith("conv")) for o in ops):
            return kind
    return "other"


def label_layers(runner: generate.FastGenerator) -> None:
    """Wrap the runner's per-layer steps in profiler ranges named after the layer."""
    conv, norm = runner._conv, runner._norm_relu
    norms = {id(getattr(runner.generator, f"bn{i}")): f"tp_conv{i}" for i in range(1, 6)}

    def named_conv(name, x):
        with record_function(f"layer {name}"):
            return conv(name, x)

    def named_norm(module, x):
        with record_function(f"layer {norms.get(id(module), 'sub_G')}"):
            return norm(module, x)

    runner._conv, runner._norm_relu = named_conv, named_norm
    statistics, last = generate.group_norm_affine, generate.upsample_conv3d

    def named_statistics(*args, **kwargs):  # bn6, right after tp_conv6
        with record_function("layer tp_conv6"):
            return statistics(*args, **kwargs)

    def named_last(*args, **kwargs):  # tp_conv7, bn6's scale, shift and ReLU included
        with record_function("layer tp_conv7"):
            return last(*args, **kwargs)

    generate.group_norm_affine, generate.upsample_conv3d = named_statistics, named_last


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


def one_volume(runner: generate.FastGenerator, z: torch.Tensor) -> Volume:
    """Features, full volume and the Volume a writer gets (NIfTI order, HU), as ``sample`` makes it."""
    with record_function("layer fc1"):
        runner.generator.fc1(z)  # features() runs fc1 again below: this one is only for its row
    features = runner.features(z)
    volume = runner.full(features)
    with record_function("layer output"):
        return Volume.from_network(volume[0], torch.eye(4).numpy(), CT_WINDOW)


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
    with torch.inference_mode():
        one_volume(runner, z)  # warm-up (oneDNN primitives, derived kernels, allocator)
        wall, cpu = time.perf_counter(), time.process_time()
        one_volume(runner, z)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        label_layers(runner)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            profiled = time.perf_counter()
            one_volume(runner, z)
            profiled = time.perf_counter() - profiled
    table: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for event in prof.events():
        if event.name.startswith("layer "):
            # the range's own time: what ran outside aten operators (numpy, Python)
            table[event.name.removeprefix("layer ")]["other"] += event.self_cpu_time_total / 1e3
        elif event.name.startswith("aten::"):
            table[layer_of(event)][kind_of(top_operator(event).name)] += event.self_cpu_time_total / 1e3
    print(f"hardware: {describe_hardware(torch.device('cpu'))}, torch {torch.__version__}")
    print(f"sub-pixel path, official {args.size}^3 generator, {args.precision}, {args.threads} threads")
    print(f"one volume without the profiler: {wall:.2f} s wall, {cpu:.2f} s CPU (all threads)")
    print(f"under the profiler: {profiled:.2f} s wall; milliseconds per layer and kind, share of the total:\n")
    print("| layer | " + " | ".join(COLUMNS) + " | total | share |")
    print("|---|" + "---:|" * (len(COLUMNS) + 2))
    totals = defaultdict(float)
    grand = sum(sum(row.values()) for row in table.values())
    for layer in [name for name in LAYERS if name in table] + sorted(set(table) - set(LAYERS)):
        values = [table[layer][kind] for kind in COLUMNS]
        for kind, value in zip(COLUMNS, values):
            totals[kind] += value
        cells = " | ".join(f"{v:.0f}" for v in values)
        print(f"| {layer} | {cells} | {sum(values):.0f} | {100 * sum(values) / grand:.0f}% |")
    cells = " | ".join(f"{totals[k]:.0f}" for k in COLUMNS)
    print(f"| **all** | {cells} | {grand:.0f} | 100% |")
    print("| share | " + " | ".join(f"{100 * totals[k] / grand:.0f}%" for k in COLUMNS) + " | 100% | |")


if __name__ == "__main__":
    main()
