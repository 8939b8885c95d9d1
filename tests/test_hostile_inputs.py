"""Hostile and clumsy input to every command: exit 2, one line, no traceback, nothing unnamed changed.

The corpus is written by fixtures into temporary folders (no binary files in the repository): NIfTI
headers declaring huge volumes, degenerate affines, complex data, crafted model cards (bad spacing,
fractional sizes, control characters), official files with wrong-shaped tensors, NaN/Inf weights,
foreign checkpoints in a run folder. Commands run in-process through ``engine.cli.main``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from engine.checkpoints import tensor_hash
from engine.cli import main

ESC = "\x1b"
PROGRESS_BAR = re.compile(r"^[^:]*:\s+\d+%\|")  # a tqdm bar closed before the error (its own line)
TINY_RUN = ["--phantoms", "chest-ct", "--resolution", "32", "--preset", "tiny", "--batch-size", "2"]
TINY_RUN += ["--phantom-count", "4", "--checkpoint-every", "1"]


def run(argv: list[str]) -> int:
    """engine.cli.main, with argparse's own exits turned into return codes."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as exit_:
        return int(exit_.code or 0)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def assert_refused(capsys, argv, *expected: str, watch: Path | None = None, started: bool = False) -> str:
    """Exit 2, exactly one line on stderr starting with 'error: ', no escape codes, ``watch`` unchanged.

    ``started``: the command did work first (training), so other lines came before; the error is
    still one line of its own, the last.
    """
    before = snapshot(watch) if watch else None
    code = run(argv)
    out, err = capsys.readouterr()
    lines = [line for line in err.strip().splitlines() if not PROGRESS_BAR.match(line)]
    if started:
        lines = lines[-1:] if sum(line.startswith("error") for line in lines) == 1 else lines
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and ESC not in err and ESC not in out
    for text in expected:
        assert text in lines[0], (text, lines[0])
    if watch:
        assert snapshot(watch) == before, "a file not named as output was changed"
    return lines[0]


# -- the corpus ---------------------------------------------------------------------------------


def _write_header_only(path: Path, shape, dtype=np.float32) -> None:
    """A NIfTI header declaring ``shape`` with (almost) no data: a small file that would need a lot of memory."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_sform(np.eye(4), code=1)
    path.write_bytes(header.binaryblock + b"\0" * 4)


def _patch_header(path: Path, **fields) -> None:
    """Rewrite header fields of a written .nii file in place (nibabel refuses to write some of them)."""
    raw = bytearray(path.read_bytes())
    with open(path, "rb") as handle:
        header = nib.Nifti1Header.from_fileobj(handle)
    for key, value in fields.items():
        header[key] = value
    raw[:348] = header.binaryblock
    path.write_bytes(bytes(raw))


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile-volumes")
    rng = np.random.default_rng(0)
    data = rng.random((8, 8, 8), dtype=np.float32)
    _write_header_only(folder / "huge.nii", (3000, 3000, 3000))
    _write_header_only(folder / "medium.nii", (600, 600, 600))
    nib.save(nib.Nifti1Image(data, np.eye(4)), folder / "zero_affine.nii")
    zero = [0.0] * 4
    _patch_header(folder / "zero_affine.nii", srow_x=zero, srow_y=zero, srow_z=zero, sform_code=1, qform_code=0)
    nib.save(nib.Nifti1Image(data, np.eye(4)), folder / "nan_affine.nii")
    _patch_header(folder / "nan_affine.nii", srow_x=[np.nan, 0, 0, 0], sform_code=1, qform_code=0)
    nib.save(nib.Nifti1Image(data, np.eye(4)), folder / "singular.nii")
    _patch_header(folder / "singular.nii", srow_x=[1, 1, 0, 0], srow_y=[1, 1, 0, 0], sform_code=1, qform_code=0)
    nib.save(nib.Nifti1Image(data.astype(np.complex64), np.eye(4)), folder / "complex.nii")
    nib.save(nib.Nifti1Image(rng.random((32, 32, 1), dtype=np.float32), np.eye(4)), folder / "flat.nii")
    nib.save(nib.Nifti1Image(np.full((8, 8, 8), 5.0, np.float32), np.eye(4)), folder / "constant.nii")
    good = nib.Nifti1Image(data * 100, np.eye(4))
    nib.save(good, folder / "reversed_window.nii")
    (folder / "reversed_window.json").write_text(json.dumps({"intensity": {"low": 600, "high": -1024}}))
    return folder


def _rewrite_card(source: Path, target: Path, change=None, tensors_change=None) -> Path:
    """A copy of a model file with its card (and optionally its tensors) changed; the hash follows the tensors."""
    with safe_open(str(source), "pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        card = json.loads(handle.metadata()["model_card"])
    if tensors_change:
        tensors_change(tensors)
        card["content_hash"] = tensor_hash(tensors)
    if change:
        change(card)
    save_file(tensors, str(target), metadata={"model_card": json.dumps(card)})
    return target


def _set(key, value):
    return lambda card: card.__setitem__(key, value)


def _poison(value):
    def change(tensors):
        key = next(k for k in tensors if k.startswith("G.") and k.endswith("bias"))
        tensors[key] = torch.full_like(tensors[key], value)

    return change


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_model_file) -> Path:
    folder = tmp_path_factory.mktemp("hostile-models")
    cases = {
        "zero_spacing": _set("spacing_mm", [0, 0, 0]),
        "nan_spacing": _set("spacing_mm", [float("nan"), 1, 1]),
        "two_spacings": _set("spacing_mm", [1, 1]),
        "negative_spacing": _set("spacing_mm", [-1, 1, 1]),
        "fractional_latent": _set("latent_dim", 32.5),
        "text_width": _set("g_width", "16"),
        "family_lines": _set("family", "ha-gan\nsecond line\nthird"),
        "no_hash": _set("content_hash", ""),
        "las": _set("orientation", "LAS"),
    }
    for name, change in cases.items():
        _rewrite_card(tiny_model_file, folder / f"{name}.safetensors", change)
    _rewrite_card(tiny_model_file, folder / "inf_bias.safetensors", tensors_change=_poison(float("inf")))
    _rewrite_card(tiny_model_file, folder / "nan_bias.safetensors", tensors_change=_poison(float("nan")))
    ansi = "evil\x1b]0;pwned\x07\x1b[31mred\x1b[0m\rname"
    _rewrite_card(tiny_model_file, folder / "ansi_name.safetensors", _set("name", ansi))
    official = {
        "fc1_1d": {"fc1.weight": torch.zeros(5), "tp_conv7.weight": torch.zeros(1, 16, 3, 3, 3)},
        "conv_0d": {"fc1.weight": torch.zeros(4, 8), "tp_conv7.weight": torch.tensor(1.0)},
        "int_keys": {1: torch.zeros(2), 2: torch.zeros(3)},
    }
    for name, state in official.items():
        (folder / name).mkdir()
        torch.save({"model": state}, folder / name / "G_iter1.pth")
    return folder


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished 2-iteration tiny run (checkpoints 1 and 2)."""
    run_dir = tmp_path_factory.mktemp("hostile-run") / "run"
    assert run(["train", *TINY_RUN, "--iterations", "2", "--out", run_dir]) == 0
    return run_dir


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    (copy / "model.safetensors").unlink()
    return copy


# -- volumes --------------------------------------------------------------------------------------

VOLUME_CASES = [
    ("huge.nii", "needs about"),
    ("zero_affine.nii", "degenerate"),
    ("nan_affine.nii", "NaN or infinite"),
    ("singular.nii", "degenerate"),
    ("complex.nii", "complex"),
    ("reversed_window.nii", "reversed_window.json"),
]


@pytest.mark.parametrize("name, expected", VOLUME_CASES)
def test_info_volume_refuses_hostile_niftis(capsys, volumes, name, expected):
    assert_refused(capsys, ["info", "--volume", volumes / name], name.split(".")[0], expected, watch=volumes)


@pytest.mark.parametrize("name, expected", [*VOLUME_CASES[:5], ("flat.nii", "at least 2 voxels")])
def test_encode_refuses_hostile_niftis(capsys, volumes, tiny_model_file, tmp_path, name, expected):
    out = tmp_path / "z.npy"
    argv = ["encode", "--checkpoint", tiny_model_file, "--volume", volumes / name, "--out", out]
    assert_refused(capsys, argv, expected, watch=volumes)
    assert not out.exists()


@pytest.mark.parametrize("name, expected", [*VOLUME_CASES[:5], ("flat.nii", "2 voxels"), ("constant.nii", "same")])
def test_evaluate_refuses_hostile_real_sets(capsys, volumes, tiny_model_file, tmp_path, name, expected):
    real = tmp_path / "real"
    real.mkdir()
    shutil.copy(volumes / name, real / name)
    shutil.copy(volumes / name, real / f"copy_{name}")
    argv = ["evaluate", "--checkpoint", tiny_model_file, "--real", real, "--samples", "2", "--no-cache"]
    assert_refused(capsys, [*argv, "--out", tmp_path / "report.json"], expected, watch=real)
    assert not (tmp_path / "report.json").exists()


def test_preprocess_skips_hostile_niftis_by_name(capsys, volumes, tmp_path):
    source = tmp_path / "scans"
    source.mkdir()
    for name in ("huge.nii", "zero_affine.nii", "nan_affine.nii", "complex.nii"):
        shutil.copy(volumes / name, source / name)
    code = run(["preprocess", "--input", source, "--out", tmp_path / "prep", "--modality", "ct", "--size", "32"])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    for name, cause in [("huge", "needs about"), ("zero_affine", "degenerate"), ("nan_affine", "NaN"), ("complex", "")]:
        assert any(name in line and cause in line for line in err.splitlines()), (name, err)


def test_memory_is_estimated_from_the_header_before_reading(capsys, volumes, monkeypatch):
    """600^3 float32 (2.6 GB with the work on it) is refused where 1 GB is free; the file is 352 bytes."""
    monkeypatch.setattr("engine.validation.available_memory", lambda: 2**30)
    line = assert_refused(capsys, ["info", "--volume", volumes / "medium.nii"], "600 x 600 x 600", "GB")
    assert "allowed" in line
    assert (volumes / "medium.nii").stat().st_size < 1000


# -- model files ----------------------------------------------------------------------------------

MODEL_CASES = [
    ("zero_spacing", "spacing"),
    ("nan_spacing", "spacing"),
    ("two_spacings", "spacing"),
    ("negative_spacing", "spacing"),
    ("fractional_latent", "latent_dim must be an integer"),
    ("text_width", "g_width must be an integer"),
    ("family_lines", "not supported"),
    ("no_hash", "no content_hash"),
    ("las", "orientation must be RAS"),
    ("inf_bias", "NaN or infinite weights"),
    ("nan_bias", "NaN or infinite weights"),
]


@pytest.mark.parametrize("name, expected", MODEL_CASES)
def test_hostile_model_cards_are_refused_at_load(capsys, models, tmp_path, name, expected):
    model = models / f"{name}.safetensors"
    out = tmp_path / "x.nii.gz"
    assert_refused(capsys, ["sample", "--checkpoint", model, "--out", out], expected, watch=models)
    assert not out.exists()
    assert_refused(capsys, ["info", "--checkpoint", model], expected)


OFFICIAL_CASES = [("fc1_1d", "1 dimensions"), ("conv_0d", "0 dimensions"), ("int_keys", "keys")]


@pytest.mark.parametrize("name, expected", OFFICIAL_CASES)
def test_official_files_with_wrong_tensors_are_refused(capsys, models, tmp_path, name, expected):
    argv = ["sample", "--checkpoint", models / name, "--resolution", "128", "--out", tmp_path / "x.nii"]
    assert_refused(capsys, argv, expected, watch=models)
    argv = ["convert", "--official", models / name, "--resolution", "128", "--out", tmp_path / "m.safetensors"]
    assert_refused(capsys, argv, expected)
    assert not (tmp_path / "m.safetensors").exists()


def test_card_text_reaches_the_terminal_without_escape_codes(capsys, models, tmp_path):
    model = models / "ansi_name.safetensors"
    assert run(["info", "--checkpoint", model]) == 0
    out, err = capsys.readouterr()
    assert ESC not in out and "\x07" not in out and "evil" in out and "red" in out
    target = tmp_path / "s.nii.gz"
    assert run(["sample", "--checkpoint", model, "--out", target]) == 0
    capsys.readouterr()
    assert run(["info", "--volume", target]) == 0
    out, _ = capsys.readouterr()
    assert ESC not in out and "evil" in out


# -- outputs --------------------------------------------------------------------------------------


def test_an_unrelated_json_beside_the_output_is_never_replaced(capsys, tiny_model_file, tmp_path):
    results = tmp_path / "results.json"
    results.write_text('{"accuracy": 0.93}')
    out = tmp_path / "results.nii"
    assert_refused(capsys, ["sample", "--checkpoint", tiny_model_file, "--out", out], "results.json", watch=tmp_path)
    argv = ["sample", "--checkpoint", tiny_model_file, "--out", out, "--force"]
    assert_refused(capsys, argv, "results.json", "not a sidecar written by this engine", watch=tmp_path)
    assert results.read_text() == '{"accuracy": 0.93}' and not out.exists()


def test_named_outputs_are_replaced_only_with_force(capsys, tiny_model_file, tmp_path):
    out = tmp_path / "a.nii.gz"
    assert run(["sample", "--checkpoint", tiny_model_file, "--out", out]) == 0
    capsys.readouterr()
    assert_refused(capsys, ["sample", "--checkpoint", tiny_model_file, "--out", out], "--force", watch=tmp_path)
    assert run(["sample", "--checkpoint", tiny_model_file, "--seed", "3", "--out", out, "--force"]) == 0  # our sidecar
    capsys.readouterr()
    assert json.loads((tmp_path / "a.json").read_text())["provenance"]["seed"] == 3

    frames = tmp_path / "frames"
    argv = ["interpolate", "--checkpoint", tiny_model_file, "--seeds", "1,2", "--steps", "1", "--part", "anchor"]
    assert run([*argv, "--out", frames]) == 0
    capsys.readouterr()
    assert_refused(capsys, [*argv, "--out", frames], "frame0000_anchor.nii.gz", "--force", watch=frames)

    latent = tmp_path / "z.npy"
    latent.write_bytes(b"mine")
    argv = ["encode", "--checkpoint", tiny_model_file, "--volume", out, "--out", latent]
    assert_refused(capsys, argv, "z.npy", "--force", watch=tmp_path)

    model = tmp_path / "model.safetensors"
    model.write_bytes(b"mine")
    argv = ["convert", "--official", tmp_path, "--resolution", "128", "--out", model]
    assert_refused(capsys, argv, "model.safetensors", "--force", watch=tmp_path)


def test_export_never_replaces_a_model_without_force(capsys, tiny_run, tmp_path):
    out = tmp_path / "exported.safetensors"
    out.write_bytes(b"someone's model")
    assert_refused(capsys, ["export", "--run", tiny_run, "--out", out], "--force", watch=tiny_run)
    assert_refused(capsys, ["export", "--run", tiny_run, "--out", tiny_run / "model.safetensors"], "--force")
    assert_refused(capsys, ["export", "--run", tiny_run, "--out", out, "--average", "-1"], "--average -1")
    assert run(["export", "--run", tiny_run, "--out", out, "--force"]) == 0
    assert out.read_bytes()[:8] != b"someone'"


# -- unbounded values and argument errors ---------------------------------------------------------


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--seed", "18446744073709551616"], "2**63"),
        (["--seed", "-1"], "2**63"),
        (["--seeds", "0-10000000000"], "more than 100000 seeds"),
        (["--memory-budget", "nan"], "finite"),
        (["--memory-budget", "inf"], "finite"),
        (["--part", "nothing"], "invalid choice"),
        (["--truncation"], "expected one argument"),
    ],
)
def test_unbounded_and_malformed_options_are_one_line(capsys, tiny_model_file, tmp_path, extra, expected):
    argv = ["sample", "--checkpoint", tiny_model_file, *extra, "--out", tmp_path / "x"]
    assert_refused(capsys, argv, expected, watch=tmp_path)


def test_out_dash_and_huge_interpolations_are_refused(capsys, tiny_model_file, tmp_path):
    assert_refused(capsys, ["sample", "--checkpoint", tiny_model_file, "--out", "-"], "'-'")
    argv = ["interpolate", "--checkpoint", tiny_model_file, "--seeds", "1,2", "--steps", "100000000"]
    assert_refused(capsys, [*argv, "--out", tmp_path / "f"], "at most 10000")
    assert not (tmp_path / "f").exists() and not Path("-").exists()


def test_missing_command_is_one_line(capsys):
    assert_refused(capsys, [], "required")


# -- training runs --------------------------------------------------------------------------------

BAD_TRAINING_OPTIONS = [
    (["--log-every", "0"], "--log-every"),
    (["--preview-every", "0"], "--preview-every"),
    (["--lr-g", "-1"], "--lr-g"),
    (["--lr-d", "nan"], "--lr-d"),
    (["--lr-e", "inf"], "--lr-e"),
    (["--beta1", "2"], "--beta1"),
    (["--beta2", "nan"], "--beta2"),
    (["--g-iter", "0"], "--g-iter"),
    (["--mode-seeking", "nan"], "--mode-seeking"),
    (["--mode-seeking", "inf"], "--mode-seeking"),
    (["--seed", "18446744073709551616"], "--seed"),
    (["--init-from", "no/such/model.safetensors"], "no such model"),
    (["--progress-json", "no/such/folder/p.jsonl"], "--progress-json"),
]


@pytest.mark.parametrize("extra, expected", BAD_TRAINING_OPTIONS)
def test_bad_training_options_leave_no_run_folder(capsys, tmp_path, extra, expected):
    out = tmp_path / "run"
    assert_refused(capsys, ["train", *TINY_RUN, "--iterations", "1", *extra, "--out", out], expected)
    assert not out.exists()


def test_resume_applies_changeable_options_and_refuses_the_rest(capsys, run_copy):
    config = (run_copy / "config.json").read_text()
    assert_refused(capsys, ["train", "--resume", run_copy, "--iterations", "1"], "below the run's iteration 2")
    assert_refused(capsys, ["train", "--resume", run_copy, "--beta1", "0.5"], "--beta1", watch=run_copy)
    assert (run_copy / "config.json").read_text() == config
    assert run(["train", "--resume", run_copy, "--iterations", "3", "--lr-g", "5e-5"]) == 0
    _, err = capsys.readouterr()
    assert "resuming with iterations 2 -> 3, lr_g 0.0001 -> 5e-05" in err
    saved = json.loads((run_copy / "config.json").read_text())
    assert saved["iterations"] == 3 and saved["lr_g"] == 5e-5
    payload = torch.load(run_copy / "checkpoints" / "checkpoint-00000003.pt", weights_only=True)
    assert payload["config"]["lr_g"] == 5e-5
    assert all(group["lr"] == 5e-5 for group in payload["optimizers"]["G"]["param_groups"])


@pytest.mark.parametrize("damage", ["", '{"resolution": 3', "\x00\x00"])
def test_a_torn_config_is_recovered_from_the_newest_checkpoint(capsys, run_copy, damage):
    (run_copy / "config.json").write_text(damage)
    assert run(["train", "--resume", run_copy, "--iterations", "3"]) == 0
    _, err = capsys.readouterr()
    assert "settings recovered from checkpoint-00000002.pt" in err
    assert json.loads((run_copy / "config.json").read_text())["iterations"] == 3
    assert (run_copy / "model.safetensors").exists()


def test_foreign_checkpoints_are_skipped_with_a_warning(capsys, run_copy, tiny_model_file, tmp_path):
    folder = run_copy / "checkpoints"
    torch.save({"iteration": 200}, folder / "checkpoint-00000200.pt")
    other = torch.load(folder / "checkpoint-00000002.pt", weights_only=True)
    other["models"]["G"] = {"fc1.weight": torch.zeros(3, 3)}
    torch.save(other, folder / "checkpoint-00000100.pt")
    out = tmp_path / "m.safetensors"
    assert run(["export", "--run", run_copy, "--out", out]) == 0
    _, err = capsys.readouterr()
    assert "skipped checkpoint checkpoint-00000200.pt: not a run checkpoint" in err
    assert "skipped checkpoint checkpoint-00000100.pt: network G has other layers" in err
    assert "Traceback" not in err
    fine_tuned = tmp_path / "fine-tuned"
    argv = ["train", "--phantoms", "chest-ct", "--batch-size", "2", "--phantom-count", "4", "--iterations", "1"]
    assert run([*argv, "--init-from", run_copy, "--out", fine_tuned]) == 0
    _, err = capsys.readouterr()
    assert "skipped checkpoint checkpoint-00000200.pt" in err and "initialised from" in err


def test_stale_temp_files_are_removed_and_a_second_process_is_locked_out(capsys, run_copy):
    import socket
    import subprocess
    import sys

    stale = run_copy / "checkpoints" / ".checkpoint-00000003.pt.abc123.tmp"
    stale.write_bytes(b"torn")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run_copy / ".lock").write_text(f"{holder.pid} {socket.gethostname()}\n")
        argv = ["train", "--resume", run_copy, "--iterations", "3"]
        line = assert_refused(capsys, argv, f"process {holder.pid}", started=True)
        assert "in use" in line and stale.exists()
    finally:
        holder.kill()
        holder.wait()
    assert run(["train", "--resume", run_copy, "--iterations", "3"]) == 0  # the holder died: a stale lock
    _, err = capsys.readouterr()
    assert f"took over the lock of process {holder.pid}" in err and not stale.exists()
    assert not (run_copy / ".lock").exists()


def test_divergence_stops_in_one_line_keeping_the_last_checkpoint(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("engine.training.trainer.MAX_SKIPPED_IN_A_ROW", 2)  # diverged sooner: a faster test
    out = tmp_path / "run"
    argv = ["train", *TINY_RUN, "--iterations", "12", "--out", out, "--lr-g", "1e38", "--lr-d", "1e38"]
    line = assert_refused(capsys, [*argv, "--lr-e", "1e38"], "diverged", "is kept", started=True)
    assert "checkpoint-00000001.pt is kept" in line and (out / "config.json").exists()


def test_a_full_disk_during_a_checkpoint_stops_in_one_line(capsys, run_copy, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("engine.training.run_checkpoint._write_payload", full)
    argv = ["train", "--resume", run_copy, "--iterations", "3"]
    line = assert_refused(capsys, argv, "No space left on device", started=True)
    assert "checkpoint-00000002.pt, is kept" in line
    assert sorted(p.name for p in (run_copy / "checkpoints").iterdir()) == [
        "checkpoint-00000001.pt",
        "checkpoint-00000002.pt",
    ]


KILL_IN_CONFIG_WRITE = """
import os, signal, sys
import engine.training.config as config

def torn_write(path, write, **options):  # half the settings on disk, then killed before the rename
    tmp = path.with_name("." + path.name + ".killed.tmp")
    write(tmp)
    tmp.write_bytes(tmp.read_bytes()[: tmp.stat().st_size // 2])
    os.kill(os.getpid(), signal.SIGKILL)

config.atomic_write = torn_write
from engine.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_kill_while_config_json_is_written_leaves_the_run_resumable(capsys, run_copy):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    argv = ["train", "--resume", str(run_copy), "--iterations", "3"]
    killed = subprocess.run([sys.executable, "-c", KILL_IN_CONFIG_WRITE, *argv], cwd=root, capture_output=True)
    assert killed.returncode == -9
    assert json.loads((run_copy / "config.json").read_text())["iterations"] == 2  # the old settings, whole
    assert (run_copy / ".config.json.killed.tmp").exists()
    assert run(argv) == 0
    _, err = capsys.readouterr()
    assert "removed .config.json.killed.tmp" in err
    assert json.loads((run_copy / "config.json").read_text())["iterations"] == 3
    assert not (run_copy / ".config.json.killed.tmp").exists() and not (run_copy / ".lock").exists()


def test_a_start_that_fails_after_making_its_folder_removes_it(capsys, tmp_path, monkeypatch):
    from engine.errors import CheckpointError
    from engine.training.hagan_trainer import HAGANTrainer

    def broken_source(self):
        raise CheckpointError("source.safetensors: damaged model file")

    monkeypatch.setattr(HAGANTrainer, "initialise", broken_source)
    out = tmp_path / "runs" / "new" / "run"
    argv = ["train", *TINY_RUN, "--iterations", "1", "--out", out]
    assert_refused(capsys, argv, "damaged model file", started=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # runs/new/run, made by the start, is gone


def test_a_pickle_as_extractor_weights_is_refused_without_torch_advice(capsys, volumes, tiny_model_file, tmp_path):
    weights = tmp_path / "resnet_50.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "hook": print}, weights)  # a global: not weights
    real = tmp_path / "real"
    real.mkdir()
    for name in ("a.nii", "b.nii"):
        shutil.copy(volumes / "reversed_window.nii", real / name)
    argv = ["evaluate", "--checkpoint", tiny_model_file, "--real", real, "--samples", "2", "--no-cache"]
    argv += ["--extractor", "med3d", "--extractor-weights", weights, "--out", tmp_path / "report.json"]
    line = assert_refused(capsys, argv, "resnet_50.pth", "refusing to unpickle")
    assert "weights_only" not in line


def test_info_into_a_closed_pipe_ends_quietly(tiny_model_file):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    command = f"{sys.executable} -m engine info --checkpoint {tiny_model_file} | head -n 1"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "" and result.stdout.startswith("name")
