"""CUDA generation checks (marker ``cuda``; skipped without a GPU): scripts/gpu_check.sh runs them.

Official parity in strict fp32, fast versus straightforward, and the error of tf32/bf16/fp16, each
printed for the report. ``GPU_CHECK_DEVICE=cpu`` runs the same checks on the CPU (to try the
script without a GPU); ``GPU_CHECK_SIZES`` picks the official sizes (default "128 256").
"""

from __future__ import annotations

import os

import pytest
import torch
from reference_hagan import reference_eval, write_official_checkpoint

from engine.checkpoints import load_model
from engine.generate import generate_part, reference_is_faster
from engine.latent import seed_to_z
from engine.precision import allowed_precisions, math_mode

DEVICE = os.environ.get("GPU_CHECK_DEVICE", "cuda")
SIZES = [int(s) for s in os.environ.get("GPU_CHECK_SIZES", "128 256").split()]
HU_PER_UNIT = (600.0 + 1024.0) / 2  # the CT window official files are read with

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="no CUDA GPU here"),
]


@pytest.fixture(scope="module", params=SIZES, ids=lambda s: f"{s}^3")
def official(request, tmp_path_factory):
    size = request.param
    folder = tmp_path_factory.mktemp(f"official{size}")
    state = write_official_checkpoint(folder, size, networks=("Generator",))["G"]
    model = load_model(folder, size, DEVICE, parts=("G",))
    z = seed_to_z(7, 1024)
    with math_mode("fp32", DEVICE):  # the independent reference, strict fp32 on the device
        expected = reference_eval({k: v.to(DEVICE) for k, v in state.items()}, z.to(DEVICE), size)
    return size, model, z, expected.float().cpu()


def report(text: str) -> None:
    print(f"\nREPORT {DEVICE}: {text}")


def test_official_parity_and_fast_versus_reference_in_strict_fp32(official):
    size, model, z, expected = official
    fast = generate_part(model, z, "full", reference=False, precision="fp32").cpu()
    straightforward = generate_part(model, z, "full", reference=True, precision="fp32").cpu()
    parity = (fast - expected).abs().max().item()
    between = (fast - straightforward).abs().max().item()
    report(f"{size}^3 strict fp32: fast vs independent reference {parity:.2e}, fast vs straightforward {between:.2e}")
    assert expected.std() > 0.05 and parity < 1e-4 and between < 1e-4


@pytest.mark.parametrize("precision", ["tf32", "bf16", "fp16"])
def test_reduced_precision_error_in_hounsfield_units(official, precision):
    size, model, z, expected = official
    if precision not in allowed_precisions(DEVICE):
        pytest.skip(f"{precision} does not run on {DEVICE}")
    volume = generate_part(model, z, "full", precision=precision).cpu()
    difference = (volume - expected).abs() * HU_PER_UNIT
    report(f"{size}^3 {precision}: max |diff| {difference.max():.2f} HU, mean {difference.mean():.3f} HU")
    assert torch.isfinite(volume).all() and difference.mean() < 20


def test_the_faster_path_is_chosen_by_measurement(official):
    size, model, z, _ = official
    for precision in [p for p in ("tf32", "fp32") if p in allowed_precisions(DEVICE)]:
        choice = "straightforward" if reference_is_faster(model, precision) else "sub-pixel"
        report(f"{size}^3 {precision}: the faster path here is {choice}")
        volume = generate_part(model, z, "full", reference=None, precision=precision)
        assert volume.shape == (1, 1, size, size, size)
