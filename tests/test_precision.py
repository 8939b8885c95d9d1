"""Generation precision: bf16 only where the CPU runs it natively, named in every sidecar, exact fp32 by default."""

import json

import numpy as np
import pytest
import torch
from test_fast_generation import lively_generator

from engine.card import CT_WINDOW, ModelCard
from engine.checkpoints import save_model
from engine.cli import main
from engine.device import cpu_has_bf16
from engine.errors import ConfigError
from engine.explore import Explorer
from engine.generate import SampleRequest, generate_part, reference_is_faster
from engine.model import HAGANModel
from engine.models.hagan import HAGANConfig
from engine.nifti import load_nifti, sidecar_path
from engine.precision import allowed_precisions, fast_precision, math_mode, resolve_precision

needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bf16 instructions")


@pytest.fixture(scope="module")
def tiny_ct(tmp_path_factory):
    config = HAGANConfig(resolution=32, latent_dim=16, g_width=16)
    card = ModelCard(config=config, name="tiny-ct", modality="ct", intensity=CT_WINDOW)
    model = HAGANModel(card, lively_generator(config, seed=3))
    return model, save_model(model, tmp_path_factory.mktemp("models") / "tiny.safetensors")


def without_bf16(monkeypatch):
    monkeypatch.setattr("engine.precision.cpu_has_bf16", lambda: False)


def test_bf16_is_refused_in_one_line_where_the_cpu_lacks_the_instructions(monkeypatch, tiny_ct, tmp_path, capsys):
    without_bf16(monkeypatch)
    assert allowed_precisions("cpu") == ("fp32",) and fast_precision("cpu") == "fp32"
    with pytest.raises(ConfigError, match="emulated"):
        resolve_precision("bf16", "cpu")
    _, path = tiny_ct
    out = tmp_path / "x.nii.gz"
    assert main(["sample", "--checkpoint", str(path), "--precision", "bf16", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "AVX512-BF16" in error and not out.exists()


def test_gpu_only_modes_are_refused_on_the_cpu():
    for precision, cause in (("fp16", "GPU"), ("tf32", "CUDA")):
        with pytest.raises(ConfigError, match=cause):
            resolve_precision(precision, "cpu")


def test_auto_is_exact_fp32_on_the_cpu_and_math_mode_leaves_the_cpu_alone():
    assert resolve_precision("auto", "cpu") == "fp32"
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with math_mode("fp32", "cpu"):
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == flags


def test_strict_fp32_switches_tf32_off_during_the_call_and_restores_it():
    """The switches are plain torch flags, so this holds without a GPU too."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    try:
        matmul.allow_tf32, cudnn.allow_tf32 = True, True
        with math_mode("fp32", "cuda"):
            assert not matmul.allow_tf32 and not cudnn.allow_tf32
        assert matmul.allow_tf32 and cudnn.allow_tf32
        matmul.allow_tf32, cudnn.allow_tf32 = False, False
        with pytest.raises(RuntimeError), math_mode("tf32", "cuda"):
            assert matmul.allow_tf32 and cudnn.allow_tf32
            raise RuntimeError("restored even when the call fails")
        assert not matmul.allow_tf32 and not cudnn.allow_tf32
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def test_the_sidecar_names_the_precision_and_the_path(tiny_ct, tmp_path):
    _, path = tiny_ct
    written = []
    for extra in ([], ["--reference"], *([["--precision", "bf16"]] if cpu_has_bf16() else [])):
        out = tmp_path / f"v{len(written)}.nii.gz"
        assert main(["sample", "--checkpoint", str(path), "--seed", "2", *extra, "--out", str(out)]) == 0
        written.append(json.loads(sidecar_path(out).read_text())["provenance"])
    assert (written[0]["precision"], written[0]["path"]) == ("fp32", "sub-pixel")
    assert (written[1]["precision"], written[1]["path"]) == ("fp32", "straightforward")
    if cpu_has_bf16():
        assert written[2]["precision"] == "bf16"


def test_strict_fp32_fast_path_equals_the_reference(tiny_ct):
    model, _ = tiny_ct
    z = torch.randn(2, 16)
    for part in ("full", "anchor", "slab"):
        fast = generate_part(model, z, part, 8, precision="fp32")
        reference = generate_part(model, z, part, 8, reference=True, precision="fp32")
        assert reference.std() > 0.01 and (fast - reference).abs().max() < 1e-4


@needs_bf16
def test_bf16_is_close_to_fp32_in_hounsfield_units_and_faster_paths_agree(tiny_ct):
    model, _ = tiny_ct
    explorer = Explorer(model)
    request = SampleRequest(5)
    exact = explorer.volumes(request, ["anchor", "full"], precision="fp32")
    fast = explorer.volumes(request, ["anchor", "full"], precision="bf16")
    for part in ("anchor", "full"):
        assert exact[part].provenance["precision"] == "fp32" and fast[part].provenance["precision"] == "bf16"
        difference = np.abs(exact[part].array - fast[part].array)
        # bf16 keeps 8 bits of mantissa: a few HU on average, never the image itself changed
        assert 0 < difference.mean() < 20 and difference.max() < 200
    # back to fp32: the cached bf16 features are not reused
    again = explorer.volumes(request, ["full"], precision="fp32")["full"]
    assert np.array_equal(again.array, exact["full"].array)
    reference = generate_part(model, request.z(16), "full", reference=True, precision="bf16")
    assert (reference[0, 0] - generate_part(model, request.z(16), "full", precision="bf16")[0, 0]).abs().mean() < 0.02


def test_a_sample_loads_back_with_its_precision(tiny_ct, tmp_path):
    _, path = tiny_ct
    out = tmp_path / "back.nii.gz"
    assert main(["sample", "--checkpoint", str(path), "--precision", "fp32", "--out", str(out)]) == 0
    assert load_nifti(out).provenance["precision"] == "fp32"


def test_without_reference_the_faster_path_runs_and_the_sidecar_names_it(tiny_ct, tmp_path, monkeypatch):
    model, path = tiny_ct
    assert not reference_is_faster(model, "fp32")  # CPUs: the sub-pixel path, always
    out = tmp_path / "fast.nii.gz"
    assert main(["sample", "--checkpoint", str(path), "--seed", "1", "--out", str(out)]) == 0
    monkeypatch.setattr("engine.generate.reference_is_faster", lambda model, precision: True)  # as a GPU may find
    monkeypatch.setattr("engine.explore.reference_is_faster", lambda model, precision: True)
    chosen = tmp_path / "chosen.nii.gz"
    assert main(["sample", "--checkpoint", str(path), "--seed", "1", "--out", str(chosen)]) == 0
    fast, straightforward = load_nifti(out), load_nifti(chosen)
    assert (fast.provenance["path"], straightforward.provenance["path"]) == ("sub-pixel", "straightforward")
    assert np.abs(fast.array - straightforward.array).max() < 0.1  # HU: the same volume
    shown = Explorer(model).volumes(SampleRequest(1), ["full"], precision="fp32")["full"]
    assert shown.provenance["path"] == "straightforward" and np.abs(shown.array - fast.array).max() < 0.1
