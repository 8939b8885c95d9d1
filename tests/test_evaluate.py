"""``evaluate`` end to end on a tiny model and real set, and the seam score on stitched versus full."""

import argparse
import json

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from engine.card import CT_WINDOW, ModelCard
from engine.checkpoints import load_model, save_model
from engine.errors import ConfigError, EngineError
from engine.generate import generate_part
from engine.latent import seeds_to_z
from engine.metrics import hagan_seam_period, mean_seam_score, slab_boundaries
from engine.metrics.evaluate import register
from engine.model import HAGANModel
from engine.models.hagan import HAGANConfig
from engine.volume import IntensityMapping


def make_model(path, resolution=32, lively=True, seed=0):
    """A random-weight model file; ``lively`` scales G's weights up so G^H is not flat."""
    torch.manual_seed(seed)
    config = HAGANConfig(resolution=resolution, latent_dim=16, g_width=16, d_width=8, e_width=8)
    model = HAGANModel.build(ModelCard(config=config, modality="ct", intensity=CT_WINDOW))
    if lively:
        for p in model.generator.parameters():
            p.data.normal_(0.0, 0.2)
    return save_model(model, path)


def make_real_folder(folder, count=3):
    """CT-like NIfTI files in HU, of different shapes and orientations (resampled to 32^3 on load)."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    shapes = [(40, 36, 30), (32, 32, 32), (64, 48, 40), (28, 30, 34)]
    for i in range(count):
        smooth = gaussian_filter(rng.normal(size=shapes[i % 4]), 2.0)
        hu = (smooth / smooth.std() * 400 - 300).astype(np.float32)
        affine = np.diag([-1.2 if i % 2 else 1.2, 1.0, 1.5, 1.0])  # odd files in LAS orientation
        nib.save(nib.Nifti1Image(hu, affine), folder / f"scan{i}.nii.gz")
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    return make_model(root / "m.safetensors"), make_real_folder(root / "real"), root


def assert_strict_numbers(value, where="report"):
    """Every number finite, nothing null, anywhere in a report."""
    assert value is not None, f"{where} is null"
    if isinstance(value, float):
        assert np.isfinite(value), f"{where} = {value}"
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_strict_numbers(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_strict_numbers(item, f"{where}[{index}]")


def run_evaluate(argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["evaluate", *argv])
    return args.run(args)


def test_evaluate_without_extractor_reports_network_free_statistics(setup, capsys):
    model, real, root = setup
    out = root / "none.json"
    argv = ["--checkpoint", str(model), "--real", str(real), "--samples", "4", "--extractor", "none"]
    assert run_evaluate([*argv, "--seam-samples", "3", "--reconstructions", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "seam score stitched (3 latents)" in printed and "intensity W1 HU" in printed
    report = json.loads(out.read_text())
    m = report["metrics"]
    # metrics that do not apply are left out (the notes say why): no null, no infinity in the JSON
    assert "fid" not in m and "mmd2" not in m and report["extractor"]["name"] == "none"
    assert_strict_numbers(report)
    assert report["preprocessing"]["real_set"]["window"] == [-1024.0, 600.0]
    assert m["ms_ssim"]["scales"] == 2 and m["ms_ssim"]["data_range"] == 1.0 and not m["ms_ssim"]["standard"]
    assert "slab boundary" in m["seam_score"]["compares"] and "b-1 and b+1" in m["adjacent_jump"]["compares"]
    assert m["adjacent_jump"]["stitched"]["mean"] > m["adjacent_jump"]["full"]["mean"]
    assert m["seam_score"]["samples"] == 3 and m["seam_score"]["boundaries"] == slab_boundaries(32)
    assert m["seam_score"]["stitched"]["mean"] > 1.5 * m["seam_score"]["full"]["mean"]
    assert m["intensity"]["unit"] == "HU" and m["intensity"]["wasserstein1"] > 0
    assert set(m["tissue_fractions"]["real"]) == {"air", "lung", "fat", "soft_tissue", "bone", "other"}
    assert sum(m["tissue_fractions"]["generated"].values()) == pytest.approx(1.0)
    assert m["ms_ssim"]["pairs_generated"] == 2 and 0 < m["ms_ssim"]["generated"]["mean"] <= 1
    rec = m["reconstruction"]
    assert rec["volumes"] == 2 and np.isfinite(rec["psnr_db"]["mean"])
    assert {"foreground_psnr", "foreground_blank_psnr", "foreground_mean_ssim"} <= set(rec)
    assert report["real_set"] == {**report["real_set"], "count": 3, "format": "nifti"}
    assert report["model"]["content_hash"].startswith("sha256:") and report["settings"]["seeds"] == "0-3"
    assert {"torch", "numpy", "scipy", "engine"} <= set(report["versions"])


def test_evaluate_with_the_slice_extractor_caches_real_features(setup, capsys):
    model, real, root = setup
    argv = ["--checkpoint", str(model), "--real", str(real), "--samples", "3", "--extractor", "slices"]
    first, second = root / "slices1.json", root / "slices2.json"
    assert run_evaluate([*argv, "--reconstructions", "0", "--out", str(first)]) == 0
    assert run_evaluate([*argv, "--reconstructions", "0", "--out", str(second)]) == 0
    assert "FID (slices, 1440-d)" in capsys.readouterr().out
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    assert a["extractor"]["weights_sha256"].startswith("sha256:") and a["extractor"]["features"] == 1440
    assert np.isfinite(a["metrics"]["fid"]) and a["metrics"]["fid"] > 0 and np.isfinite(a["metrics"]["mmd2"])
    assert not a["real_set"]["cache"]["hit"] and b["real_set"]["cache"]["hit"]
    assert a["real_set"]["cache"]["file"] == b["real_set"]["cache"]["file"]
    assert b["metrics"]["fid"] == pytest.approx(a["metrics"]["fid"], rel=1e-6)
    assert b["metrics"]["ms_ssim"]["real"] == a["metrics"]["ms_ssim"]["real"]
    assert "reconstruction" not in a["metrics"] and any("rank-deficient" in n for n in a["notes"])


def test_evaluate_reads_a_preprocessed_npy_folder(setup, tmp_path):
    model, _, _ = setup
    folder = tmp_path / "prep"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):  # 0 in a [-1000, 1000] HU window is 0 HU (-212 HU in the model's [-1024, 600])
        np.save(folder / f"v{i}.npy", np.clip(rng.normal(0, 0.01, (32, 32, 32)), -1, 1).astype(np.float16))
    manifest = {
        "files": [{"name": "v0", "file": "v0.npy"}, {"name": "v2", "file": "v2.npy"}],
        "intensity": {"low": -1000.0, "high": 1000.0, "unit": "HU", "kind": "window"},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "r.json"
    argv = ["--model", str(model), "--real", str(folder), "--samples", "2", "--extractor", "none"]  # as sample takes it
    assert run_evaluate([*argv, "--reconstructions", "0", "--no-cache", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["real_set"]["format"] == "npy" and report["real_set"]["count"] == 2
    assert "file" not in report["real_set"]["cache"]
    assert report["metrics"]["intensity"]["mean_real"] == pytest.approx(0.0, abs=15)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--samples", "1"], "at least 2"),
        (["--extractor", "med3d"], "needs --extractor-weights"),
        (["--extractor", "slices", "--extractor-weights", "x.pth"], "fixed random weights"),
        (["--seam-samples", "-1"], "--seam-samples"),
    ],
)
def test_bad_settings_are_one_line_errors(setup, extra, message):
    model, real, root = setup
    with pytest.raises(ConfigError, match=message) as error:
        run_evaluate(["--checkpoint", str(model), "--real", str(real), *extra, "--out", str(root / "bad.json")])
    assert "\n" not in str(error.value)


def test_bad_paths_are_one_line_errors(setup, tmp_path):
    model, real, _ = setup
    (tmp_path / "empty").mkdir()
    cases = [
        (["--real", str(tmp_path / "empty"), "--out", str(tmp_path / "r.json")], "no NIfTI"),
        (["--real", str(real), "--out", str(tmp_path / "missing" / "r.json")], "does not exist"),
        (
            ["--real", str(real), "--extractor-weights", str(tmp_path / "no.pth"), "--out", str(tmp_path / "r.json")],
            "no such",
        ),
    ]
    for argv, message in cases:
        with pytest.raises(EngineError, match=message) as error:
            run_evaluate(["--checkpoint", str(model), *argv])
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("resolution", [32, 64])
def test_seam_score_separates_stitched_from_full_generation(tmp_path, resolution):
    model = load_model(make_model(tmp_path / "m.safetensors", resolution))
    z = seeds_to_z([0, 1, 2], model.config.latent_dim)
    boundaries, period = slab_boundaries(resolution), hagan_seam_period(resolution)
    full = [mean_seam_score(v, boundaries, period=period) for v in generate_part(model, z, "full")]
    stitched = [mean_seam_score(v, boundaries, period=period) for v in generate_part(model, z, "stitched")]
    assert min(stitched) > 1.5 * max(full)  # every latent, not only on average
    if period == 4:  # same-phase reference planes: the seam-free volume scores about 1
        assert all(0.8 < s < 1.25 for s in full) and min(stitched) > 3


def test_evaluate_on_brain_phantoms_scores_similar_pairs_and_writes_strict_json(tmp_path, capsys):
    """MRI phantoms in a.u. through the card's record: MS-SSIM of similar brains is well above 0."""
    from engine.data.phantoms import phantom_preprocessing, write_phantoms

    torch.manual_seed(0)
    config = HAGANConfig(resolution=32, latent_dim=16, g_width=16, d_width=8, e_width=8)
    card = ModelCard(
        config=config,
        modality="mri",
        intensity=IntensityMapping(0.0, 1000.0, ""),
        spacing_mm=(220 / 32,) * 3,
        preprocessing=phantom_preprocessing("brain-mri", 32).to_dict(),
    )
    model = save_model(HAGANModel.build(card), tmp_path / "brain.safetensors")
    real = tmp_path / "brains"
    write_phantoms("brain-mri", 4, 32, real, seed=5, progress=False)
    out = tmp_path / "brain.json"
    argv = ["--checkpoint", str(model), "--real", str(real), "--samples", "2", "--extractor", "slices"]
    assert run_evaluate([*argv, "--reconstructions", "1", "--no-cache", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert_strict_numbers(report)
    ms = report["metrics"]["ms_ssim"]
    assert ms["pairs_real"] == 2 and ms["real"]["mean"] - ms["real"]["std"] > 0.2, ms
    assert report["preprocessing"]["real_set"]["reference_values"] is not None
    assert report["extractor"]["name"] == "slices" and "tissue_fractions" not in report["metrics"]


class StopHere(Exception):
    """What a cancelled job's progress call raises."""


def stop_at(word, seen):
    """A progress callback that records its texts and stops the evaluation at the first one naming ``word``."""

    def progress(done, total, what):
        seen.append(what)
        if word in what:
            raise StopHere

    return progress


def test_cancel_during_the_final_metrics_stops_before_mmd(setup, monkeypatch):
    """The bar names each final metric, and a cancel at FID ends the evaluation before MMD is computed."""
    import engine.metrics.evaluate as evaluate_module

    model, real, _ = setup
    mmd_calls = []
    monkeypatch.setattr(evaluate_module.MMDMetric, "__call__", lambda self, *a: mmd_calls.append(1) or 0.0)
    settings = evaluate_module.EvaluationSettings(
        str(model), str(real), samples=3, extractor="slices", reconstructions=0, progress=False
    )
    seen = []
    with pytest.raises(StopHere):
        evaluate_module.evaluate(settings, stop_at("metrics: FID", seen))
    assert seen[-1] == "metrics: FID" and not mmd_calls
    assert seen[:3] == ["finding the real set", "building the feature extractor", "loading the model"]


def test_cancel_between_ms_ssim_pairs_stops_the_pairs(setup, monkeypatch):
    """Each generated volume reports its MS-SSIM pair; a cancel there stops before that pair is scored."""
    import engine.metrics.evaluate as evaluate_module

    model, real, _ = setup
    scored = []
    real_ms_ssim = evaluate_module.ms_ssim3d
    monkeypatch.setattr(evaluate_module, "ms_ssim3d", lambda *a: scored.append(1) or real_ms_ssim(*a))
    settings = evaluate_module.EvaluationSettings(
        str(model), str(real), samples=8, extractor="none", batch_size=8, reconstructions=0, progress=False
    )
    seen = []
    with pytest.raises(StopHere):
        evaluate_module.evaluate(settings, stop_at("MS-SSIM pair 2/4", seen))
    assert "generated 2/8, MS-SSIM pair 1/4" in seen and seen[-1] == "generated 4/8, MS-SSIM pair 2/4"
    assert len(scored) == 1 + 1  # one real pair (3 real volumes), the first generated pair
