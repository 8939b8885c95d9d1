"""Training: a tiny run end to end, exact resume, torn checkpoint writes, torchrun, bad data."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.training.run_checkpoint import list_checkpoints, load_latest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "tiny", "--batch-size", "2", "--phantom-count", "6", "--log-every", "1"]


def train(run: Path, *extra: str, resolution: int = 32) -> list[dict]:
    """Run `engine train` in-process on chest CT phantoms; returns the JSON progress events."""
    calls = len(list(run.parent.glob(f"{run.name}-progress-*.jsonl")))
    progress = run.parent / f"{run.name}-progress-{calls}.jsonl"  # one file per call
    args = ["train", *extra, "--progress-json", str(progress)]
    if "--resume" not in extra:
        args += ["--phantoms", "chest-ct", "--out", str(run), "--resolution", str(resolution), *TINY]
    assert main(args) == 0
    return [json.loads(line) for line in progress.read_text().splitlines()]


def losses_by_iteration(events: list[dict]) -> dict[int, dict]:
    return {e["iteration"]: e["losses"] for e in events if e["event"] == "progress"}


def test_tiny_64_run_trains_checkpoints_exports_and_samples(tmp_path):
    run = tmp_path / "run"
    events = train(run, "--iterations", "3", "--checkpoint-every", "2", resolution=64)
    losses = losses_by_iteration(events)
    assert sorted(losses) == [1, 2, 3]
    assert all(np.isfinite(v) for step in losses.values() for v in step.values())
    assert set(losses[1]) == {"D", "D_real", "D_fake", "G", "E", "Sub_E"}
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == [
        "checkpoint-00000002.pt",
        "checkpoint-00000003.pt",
    ]
    assert events[-1]["event"] == "finished"
    model = run / "model.safetensors"
    out = tmp_path / "sample.nii.gz"
    assert main(["sample", "--checkpoint", str(model), "--seed", "1", "--out", str(out)]) == 0
    info = json.loads((tmp_path / "sample.json").read_text())
    assert info["intensity"]["unit"] == "HU"
    from engine.checkpoints import read_model_card

    card = read_model_card(model)
    assert card.parts == ("G", "E", "Sub_E") and card.training["iterations"] == 3
    assert card.training["data"]["kind"] == "chest-ct" and card.modality == "ct"
    # the card records the preprocessing its data amounts to, so real scans get the same
    assert card.preprocessing["window"] == [-1024.0, 600.0] and card.preprocessing["geometry"] == "spacing"
    assert card.preprocessing["spacing_mm"] == list(card.spacing_mm)


def test_resuming_reproduces_the_uninterrupted_run(tmp_path):
    straight = losses_by_iteration(train(tmp_path / "straight", "--iterations", "4", "--checkpoint-every", "2"))
    interrupted = tmp_path / "interrupted"
    train(interrupted, "--iterations", "2", "--checkpoint-every", "2")
    resumed = losses_by_iteration(train(interrupted, "--resume", str(interrupted), "--iterations", "4"))
    assert sorted(resumed) == [3, 4]
    for iteration in (3, 4):
        for name, value in straight[iteration].items():
            assert resumed[iteration][name] == pytest.approx(value, rel=1e-6, abs=1e-7), (iteration, name)


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import engine.training.run_checkpoint as rc
    original = rc._write_payload
    def torn_write(payload, path):
        if payload["iteration"] == 4:  # die half-way through writing the second checkpoint
            original(payload, path)
            size = os.path.getsize(path)
            with open(path, "r+b") as handle:
                handle.truncate(size // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        original(payload, path)
    rc._write_payload = torn_write
    from engine.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_a_kill_during_a_checkpoint_write_resumes_from_the_previous_one(tmp_path):
    run = tmp_path / "run"
    args = ["train", "--phantoms", "chest-ct", "--out", str(run), "--resolution", "32", *TINY]
    args += ["--iterations", "6", "--checkpoint-every", "2"]
    killed = subprocess.run([sys.executable, "-c", KILLER, *args], cwd=ROOT, capture_output=True, text=True)
    assert killed.returncode == -9  # SIGKILL, mid-write
    folder = run / "checkpoints"
    assert [p.name for p in list_checkpoints(folder)] == ["checkpoint-00000002.pt"]
    assert any(p.name.endswith(".tmp") for p in folder.iterdir())  # the torn file never got a real name
    events = train(run, "--resume", str(run))
    assert events[0] == {**events[0], "event": "start", "iteration": 2}
    assert sorted(losses_by_iteration(events)) == [3, 4, 5, 6]
    assert load_latest(folder)["iteration"] == 6


def test_two_processes_with_torchrun_match_one_process(tmp_path):
    common = ["--phantoms", "chest-ct", "--resolution", "32", *TINY, "--iterations", "2", "--checkpoint-every", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517"]
    progress = tmp_path / "ddp.jsonl"
    result = subprocess.run(
        [*command, "-m", "engine", "train", *common, "--out", str(tmp_path / "ddp"), "--progress-json", str(progress)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    checkpoint = load_latest(tmp_path / "ddp" / "checkpoints")
    assert checkpoint["iteration"] == 2
    ddp = losses_by_iteration([json.loads(line) for line in progress.read_text().splitlines()])
    single = losses_by_iteration(train(tmp_path / "single", "--iterations", "2", "--checkpoint-every", "2"))
    for name, value in single[1].items():  # same global batch, latents and crop: the same first step
        assert ddp[1][name] == pytest.approx(value, rel=1e-3, abs=1e-4), name
    assert (tmp_path / "ddp" / "model.safetensors").exists()


def test_impossible_settings_are_refused_before_training(tmp_path, capsys):
    few = ["train", "--phantoms", "chest-ct", "--out", str(tmp_path / "r"), "--resolution", "32", "--preset", "tiny"]
    assert main([*few, "--phantom-count", "1", "--batch-size", "2", "--iterations", "1"]) == 2
    assert "fewer than one global batch" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r2")]) == 2
    assert "no such data folder" in capsys.readouterr().err
    run = tmp_path / "done"
    train(run, "--iterations", "1")
    assert main(["train", "--phantoms", "chest-ct", "--out", str(run)]) == 2  # a run is there already
    assert "--resume" in capsys.readouterr().err


def test_bad_files_in_a_data_folder_are_named_and_skipped(tmp_path, capsys):
    import nibabel as nib

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        volume = rng.normal(0, 300, (40, 40, 40)).astype(np.float32)
        nib.save(nib.Nifti1Image(volume, np.diag([1.0, 1.0, 1.0, 1.0])), str(data / f"good{i}.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((40, 40, 40), np.float32), np.eye(4)), str(data / "constant.nii.gz"))
    nan = np.zeros((40, 40, 40), np.float32)
    nan[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(nan, np.eye(4)), str(data / "nan.nii.gz"))
    (data / "broken.nii").write_text("not an image")
    run = tmp_path / "run"
    args = ["train", "--data", str(data), "--modality", "ct", "--out", str(run), "--resolution", "32"]
    assert main([*args, "--preset", "tiny", "--batch-size", "2", "--iterations", "1"]) == 0
    err = capsys.readouterr().err
    for name in ("constant.nii.gz", "nan.nii.gz", "broken.nii"):
        assert name in err
    assert "good0.nii.gz" not in err
    assert (run / "model.safetensors").exists()


def test_run_folders_hold_no_stale_temporary_files_after_a_clean_run(tmp_path):
    run = tmp_path / "run"
    train(run, "--iterations", "2", "--checkpoint-every", "1", "--keep", "1")
    files = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert files == ["checkpoint-00000002.pt"]
    shutil.rmtree(run)


def test_sigterm_stops_after_the_iteration_with_a_checkpoint_and_a_model(tmp_path):
    import signal
    import time

    run, progress = tmp_path / "run", tmp_path / "progress.jsonl"
    args = ["-m", "engine", "train", "--phantoms", "chest-ct", "--out", str(run), "--resolution", "32", *TINY]
    args += ["--iterations", "100000", "--checkpoint-every", "1000", "--progress-json", str(progress)]
    child = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and '"iteration": 3' not in (progress.read_text() if progress.exists() else ""):
        time.sleep(0.2)
    child.send_signal(signal.SIGTERM)  # what the app's stop button sends
    assert child.wait(timeout=120) == 0
    events = [json.loads(line) for line in progress.read_text().splitlines()]
    stopped = events[-1]
    assert stopped["event"] == "stopped" and stopped["iteration"] >= 3
    assert load_latest(run / "checkpoints")["iteration"] == stopped["iteration"]
    assert Path(stopped["model"]).exists()


def test_export_makes_a_model_from_a_run_without_touching_it(tmp_path):
    import torch

    from engine.checkpoints import load_model

    run = tmp_path / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # trained on one thread, exported on more: the card names the training's
    try:
        train(run, "--iterations", "2", "--checkpoint-every", "2")
    finally:
        torch.set_num_threads(max(2, threads))
    before = sorted(p.name for p in run.rglob("*"))
    out = tmp_path / "exported.safetensors"
    assert main(["export", "--run", str(run), "--out", str(out), "--half"]) == 0
    assert sorted(p.name for p in run.rglob("*")) == before  # the run folder is left as it was
    model = load_model(out)
    assert model.card.training["iterations"] == 2 and model.has_encoders
    assert model.card.training["hardware"].endswith(f"CPU ({os.cpu_count()} cores), 1 torch thread")
    torch.set_num_threads(threads)
    assert main(["export", "--run", str(tmp_path / "nothing"), "--out", str(out)]) == 2


def test_export_can_take_an_earlier_kept_checkpoint(tmp_path, capsys):
    """A run's later iterations can be worse (GANs swing): export --iteration picks a kept one."""
    import torch

    from engine.checkpoints import load_model

    run = tmp_path / "run"
    train(run, "--iterations", "3", "--checkpoint-every", "1", "--keep", "2")  # keeps iterations 2 and 3
    earlier, newest = tmp_path / "2.safetensors", tmp_path / "3.safetensors"
    assert main(["export", "--run", str(run), "--out", str(earlier), "--iteration", "2"]) == 0
    assert main(["export", "--run", str(run), "--out", str(newest)]) == 0
    models = [load_model(path) for path in (earlier, newest)]
    assert [m.card.training["iterations"] for m in models] == [2, 3]
    weights = [torch.cat([p.flatten() for p in m.generator.parameters()]) for m in models]
    assert not torch.equal(*weights)
    capsys.readouterr()
    assert main(["export", "--run", str(run), "--out", str(earlier), "--iteration", "1", "--force"]) == 2
    assert "no checkpoint of iteration 1 (kept: 2, 3)" in capsys.readouterr().err


def test_export_can_average_g_over_the_last_kept_checkpoints(tmp_path, capsys):
    """export --average K: the model's G is the mean of the EMA G of the newest K kept checkpoints."""
    import torch

    from engine.checkpoints import load_model

    run = tmp_path / "run"
    train(run, "--iterations", "3", "--checkpoint-every", "1", "--keep", "3", "--ema", "0.5")
    files = {name: tmp_path / f"{name}.safetensors" for name in ("2", "3", "mean")}
    assert main(["export", "--run", str(run), "--out", str(files["2"]), "--iteration", "2"]) == 0
    assert main(["export", "--run", str(run), "--out", str(files["3"])]) == 0
    assert main(["export", "--run", str(run), "--out", str(files["mean"]), "--average", "2"]) == 0
    assert "G averaged over 2, 3" in capsys.readouterr().out
    models = {name: load_model(path) for name, path in files.items()}
    weights = {name: torch.cat([p.flatten() for p in m.generator.parameters()]) for name, m in models.items()}
    assert torch.allclose(weights["mean"], (weights["2"] + weights["3"]) / 2, atol=1e-6)
    assert not torch.allclose(weights["mean"], weights["3"])
    assert models["mean"].card.training["averaged_iterations"] == [2, 3]
    assert models["mean"].card.training["iterations"] == 3
    again = ["--average", "3", "--iteration", "2", "--force"]
    assert main(["export", "--run", str(run), "--out", str(files["mean"]), *again]) == 2
    assert "the 2 checkpoints kept up to iteration 2" in capsys.readouterr().err
