"""Where a model's 2-voxel banding comes from: G's last upsampling stages, axis by axis.

python benchmarks/banding.py [MODEL ...]      (default: the bundled demo models)

Nearest x2 upsampling copies every voxel twice along each axis (a staircase); only the next 3x3x3
convolution can smooth it. For G^H's convolutions, the "staircase pass" is the part of the kernel
that lets a staircase through along one axis: |w0 - w1 + w2| (taps along that axis, summed over the
other two), relative to |w0 + w1 + w2|, as a norm over channel pairs; 0 means a smoothing kernel
([1, 2, 1]), 1 one that copies (0, 1, 0). Then seed 1's mean profile along each axis (the mean of
every plane across it): its alternation from one plane to the next, signed by parity, in the
model's units, next to a training phantom's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.checkpoints import load_model  # noqa: E402
from engine.data.phantoms import make_phantom  # noqa: E402
from engine.demo import demo_models  # noqa: E402
from engine.generate import SampleRequest, sample_volume  # noqa: E402

AXES = "DHW"  # network layout: D is the slab (axial) axis


def staircase_pass(weight: torch.Tensor) -> list[float]:
    total = weight.sum(dim=(2, 3, 4)).norm()
    ratios = []
    for axis in (2, 3, 4):
        taps = weight.sum(dim=tuple(a for a in (2, 3, 4) if a != axis))
        ratios.append(float((taps[..., 0] - taps[..., 1] + taps[..., 2]).norm() / total))
    return ratios


def alternation(array: np.ndarray) -> list[float]:
    """|mean over planes of (-1)^k times the profile's second difference|, per axis of (D, H, W)."""
    values = []
    for axis in range(3):
        profile = array.mean(axis=tuple(a for a in range(3) if a != axis))
        second = profile[1:-1] - (profile[:-2] + profile[2:]) / 2
        values.append(abs(float((second * (-1.0) ** np.arange(second.size)).mean())))
    return values


def main() -> None:
    torch.set_num_threads(1)
    for path in sys.argv[1:] or demo_models():
        model = load_model(path)
        kind, g = model.card.training["data"]["kind"], model.generator
        print(f"{Path(path).name} (upsampling {model.config.upsample})")
        for name in ("tp_conv6", "tp_conv7"):
            ratios = staircase_pass(g.get_submodule(name).weight.detach().float())
            print(f"  {name} staircase pass  " + "  ".join(f"{a} {r:.2f}" for a, r in zip(AXES, ratios)))
        sample = sample_volume(model, SampleRequest(1)).array.transpose(2, 1, 0)
        phantom = make_phantom(kind, model.config.resolution, 100).array.transpose(2, 1, 0)
        for label, array in (("seed 1", sample), ("phantom", phantom)):
            values = alternation(array)
            print(
                f"  {label:>8} plane-to-plane alternation  " + "  ".join(f"{a} {v:.2f}" for a, v in zip(AXES, values))
            )


if __name__ == "__main__":
    main()
