"""Train dialog: a tiny run started, watched, stopped, resumed and opened from the real window."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.training_process import (
    LossHistory,
    error_line,
    last_status,
    parse_event,
    resume_arguments,
    saved_iteration,
    start_arguments,
)
from engine.api import ConfigError, TrainConfig

WAIT_MS = 90_000  # a child process importing torch on a shared 2-core machine


def test_command_lines_and_progress_lines():
    config = TrainConfig(data="phantoms:chest-ct", out="/runs/a", resolution=32, preset="tiny")
    args = start_arguments(config, "cpu")
    assert args[:5] == ["-m", "engine", "train", "--phantoms", "chest-ct"]
    assert "--family" not in args  # HA-GAN: the engine's default family
    assert args[-4:] == ["--device", "cpu", "--progress-json", "-"] and args[args.index("--resolution") + 1] == "32"
    folder = start_arguments(TrainConfig(data="/scans", out="r", family="split-shuffle", modality="ct"))
    assert folder[3:5] == ["--data", "/scans"] and folder[folder.index("--modality") + 1] == "ct"
    assert "split-shuffle" in folder
    assert resume_arguments(Path("r"), 50)[3:7] == ["--resume", "r", "--iterations", "50"]
    tuned = start_arguments(TrainConfig(data="phantoms:brain-mri", out="r", init_from="m.safetensors"))
    assert tuned[tuned.index("--init-from") + 1] == "m.safetensors"
    assert "--preset" not in tuned and "--resolution" not in tuned  # the model file brings its network
    official = start_arguments(TrainConfig(data="/d", out="r", init_from="G_iter80000.pth", resolution=128))
    assert official[official.index("--resolution") + 1] == "128" and "--preset" not in official
    assert "--precision" not in args
    bf16 = start_arguments(TrainConfig(data="/d", out="r", precision="bf16"))
    assert bf16[bf16.index("--precision") + 1] == "bf16"

    assert "--mode-seeking" not in args  # off unless asked for: the reference's training
    diverse = start_arguments(TrainConfig(data="/d", out="r", mode_seeking=0.05))
    assert diverse[diverse.index("--mode-seeking") + 1] == "0.05"
    with pytest.raises(ConfigError, match="--mode-seeking is for HA-GAN"):  # the form leaves it out there
        TrainConfig(data="/d", out="r", family="split-shuffle", mode_seeking=0.05)

    assert parse_event('{"event": "progress", "iteration": 3}')["iteration"] == 3
    assert parse_event("model written to x") is None and parse_event("{broken") is None
    assert last_status("training: 1/9\rtraining: 2/9\r") == "training: 2/9"
    assert error_line("warning\nerror: no such data folder\n") == "no such data folder"
    assert error_line("Traceback\nFloatingPointError: loss became nan\n") == "FloatingPointError: loss became nan"

    history = LossHistory()
    for step in (1, 2, 3, 4):
        history.add(step, {"G": float(step)})
    history.add(3, {"G": 30.0})  # a resumed run repeats the iterations after its checkpoint
    assert history.curves["G"] == ([1, 2, 3], [1.0, 2.0, 30.0])


def open_dialog(window):
    action = next(a for a in window.tools_menu.actions() if a.text().startswith("&Train"))
    action.trigger()
    return window.panels["train"]


def progress_events(dialog) -> list[dict]:
    return [e for e in dialog.events if e["event"] == "progress"]


def test_train_stop_resume_open(main_window, qtbot, tmp_path):
    dialog = open_dialog(main_window)
    assert dialog.isVisible() and not dialog.isModal()
    dialog.form.data_box.setCurrentIndex(dialog.form.data_box.findData("chest-ct"))
    dialog.form.resolution_box.setCurrentIndex(dialog.form.resolution_box.findData(32))
    dialog.form.preset_box.setCurrentText("tiny")
    dialog.form.iterations_box.setValue(1000)
    dialog.form.batch_box.setValue(1)
    dialog.form.log_box.setValue(1)
    dialog.form.preview_box.setValue(2)
    dialog.form.device_box.setCurrentText("cpu")
    run_dir = tmp_path / "run"
    dialog.form.run_edit.setText(str(run_dir))

    dialog.start_button.click()
    assert dialog.running and not dialog.form.isEnabled()
    qtbot.waitUntil(lambda: len(progress_events(dialog)) >= 2, timeout=WAIT_MS)
    xs, ys = next(iter(dialog.results.curves.values())).getData()
    assert len(xs) >= 2 and set(dialog.results.curves) >= {"D", "G", "E", "Sub_E"}
    qtbot.waitUntil(lambda: "generated_slab" in dialog.results.previews, timeout=WAIT_MS)
    assert not dialog.results.previews["generated_slab"].pixmap().isNull()

    dialog.stop_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=WAIT_MS)
    stopped = saved_iteration(run_dir)
    assert stopped is not None and stopped >= 2
    assert (run_dir / "checkpoints" / f"checkpoint-{stopped:08d}.pt").is_file()
    assert (run_dir / "model.safetensors").is_file()
    assert dialog.message_label.text().startswith(f"Stopped at iteration {stopped}")
    assert dialog.resume_button.isEnabled() and dialog.open_button.isEnabled()
    assert main_window.dialogs == []

    dialog.form.iterations_box.setValue(stopped + 1)
    dialog.resume_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=WAIT_MS)
    assert [e["iteration"] for e in progress_events(dialog)] == [stopped + 1]
    assert dialog.message_label.text().startswith(f"Finished at iteration {stopped + 1}")
    assert saved_iteration(run_dir) == stopped + 1

    dialog.open_button.click()
    qtbot.waitUntil(lambda: main_window.state.model is not None, timeout=WAIT_MS)
    assert Path(main_window.state.model.path) == run_dir / "model.safetensors"
    assert main_window.state.model.resolution == 32


@pytest.mark.parametrize("case", ["run folder in use", "settings the engine refuses", "child error"])
def test_errors_are_one_line_dialogs(main_window, qtbot, tmp_path, case):
    dialog = open_dialog(main_window)
    if case == "run folder in use":
        (tmp_path / "config.json").write_text("{}")
        dialog.form.run_edit.setText(str(tmp_path))
        dialog.start_button.click()
        assert dialog.process is None and "already holds a run" in main_window.dialogs[-1]
        return
    if case == "settings the engine refuses":  # checked by the engine's TrainConfig before any process starts
        dialog.form.precision_box.addItem("fp8", "fp8")
        dialog.form.precision_box.setCurrentIndex(dialog.form.precision_box.findData("fp8"))
        dialog.form.run_edit.setText(str(tmp_path / "run"))
        dialog.start_button.click()
        assert dialog.process is None and main_window.dialogs == ["unknown precision 'fp8'"]
        return
    empty = tmp_path / "empty"
    empty.mkdir()
    dialog.form.data_box.setCurrentIndex(dialog.form.data_box.findData("folder"))
    dialog.form.folder_edit.setText(str(empty))
    dialog.form.resolution_box.setCurrentIndex(dialog.form.resolution_box.findData(32))
    dialog.form.run_edit.setText(str(tmp_path / "run"))
    dialog.start_button.click()
    qtbot.waitUntil(lambda: bool(main_window.dialogs), timeout=WAIT_MS)
    assert "needs --modality" in main_window.dialogs[-1] and "\n" not in main_window.dialogs[-1]
    assert dialog.message_label.text().startswith("Training failed:")
    assert dialog.run_dir() != tmp_path / "run"  # the folder the engine set up is not offered again


def test_a_start_model_brings_its_network(main_window, tmp_path, tiny_model_file):
    dialog = open_dialog(main_window)
    assert dialog.form.preset_box.isEnabled() and dialog.form.resolution_box.isEnabled()
    dialog.form.init_edit.setText(str(tiny_model_file))
    assert not dialog.form.preset_box.isEnabled() and not dialog.form.resolution_box.isEnabled()
    assert dialog.form.resolution_box.currentData() == 32 and "ha-gan, 32³" in dialog.form.init_hint.text()
    dialog.form.init_edit.setText(str(tmp_path / "missing.safetensors"))
    assert "missing.safetensors" in dialog.form.init_hint.text()  # the cause, before Start is pressed
    dialog.form.init_edit.setText(str(tmp_path / "G_iter80000.pth"))  # official files need their resolution
    assert not dialog.form.preset_box.isEnabled() and dialog.form.resolution_box.isEnabled()
    dialog.form.precision_box.setCurrentIndex(dialog.form.precision_box.findData("bf16"))
    request = dialog.form.settings()
    assert request.init_from == str(tmp_path / "G_iter80000.pth") and request.precision == "bf16"
    dialog.form.init_edit.setText("")
    assert dialog.form.preset_box.isEnabled() and dialog.form.resolution_box.isEnabled()
    dialog.form.mode_seeking_box.setValue(0.05)
    dialog.form.family_box.setCurrentText("split-shuffle")
    assert not dialog.form.mode_seeking_box.isEnabled()  # seed diversity is an HA-GAN option
    assert dialog.form.settings().mode_seeking == 0.0  # so a split-shuffle run does not get it
    dialog.form.mode_seeking_box.setValue(0.0)
    dialog.form.family_box.setCurrentText("ha-gan")
    assert dialog.form.mode_seeking_box.isEnabled() and dialog.form.mode_seeking_box.text() == "off"


def test_choosing_an_existing_run_shows_its_settings_and_losses_so_far(main_window, qtbot, tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from engine.training.config import TrainConfig

    run = tmp_path / "run"
    run.mkdir()
    settings = dict(resolution=32, preset="tiny", iterations=300, batch_size=2, checkpoint_every=50, precision="bf16")
    settings["mode_seeking"] = 0.1
    TrainConfig(data="phantoms:brain-mri", out=str(run), **settings).save(run / "config.json")  # as the engine does
    with SummaryWriter(str(run / "tensorboard")) as writer:
        for step in (20, 40, 60):
            writer.add_scalar("loss/D", 1.0 / step, step)
    dialog = open_dialog(main_window)
    dialog.form.run_edit.setText(str(run))
    qtbot.waitUntil(lambda: "D" in dialog.results.curves, timeout=10_000)
    steps, values = dialog.results.curves["D"].getData()
    assert list(steps) == [20, 40, 60] and values[0] == pytest.approx(0.05)
    assert dialog.resume_button.isEnabled() and "Holds a run without a checkpoint" in dialog.form.run_hint.text()
    shown = dialog.form.settings()  # the form now holds the run's settings
    assert shown.data == "phantoms:brain-mri" and Path(shown.out) == run
    assert {key: getattr(shown, key) for key in settings} == settings
    assert dialog.progress.maximum() == 300 and dialog.progress.value() == 0

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    dialog.form.run_edit.setText(str(broken))  # unreadable settings: the form stays as it was
    assert dialog.form.settings().preset == "tiny" and dialog.resume_button.isEnabled()


def test_typing_a_run_folder_reads_it_once_typing_pauses(main_window, qtbot, tmp_path, monkeypatch, tiny_model_file):
    """Each keystroke in the path fields used to look into the folder typed so far (checkpoints, settings,
    losses) or read the start model's card; now the fields are looked at once, when typing pauses."""
    import app.panels.train.dialog as dialog_module
    import app.panels.train.form as form_module

    run = tmp_path / "run"
    run.mkdir()
    TrainConfig(data="phantoms:brain-mri", out=str(run), resolution=32, preset="tiny").save(run / "config.json")
    looked, histories, cards = [], [], []
    saved, losses, card = form_module.saved_iteration, dialog_module.read_losses, form_module.read_model_card
    monkeypatch.setattr(form_module, "saved_iteration", lambda folder: (looked.append(folder), saved(folder))[1])
    monkeypatch.setattr(dialog_module, "read_losses", lambda folder: (histories.append(folder), losses(folder))[1])
    monkeypatch.setattr(form_module, "read_model_card", lambda path: (cards.append(path), card(path))[1])
    dialog = open_dialog(main_window)
    dialog.form.run_edit.setText("")
    looked.clear()
    qtbot.keyClicks(dialog.form.run_edit, str(run))
    qtbot.waitUntil(lambda: "Holds a run" in dialog.form.run_hint.text(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not main_window.jobs.busy(), timeout=WAIT_MS)
    assert looked and set(looked) == {run} and histories == [run]  # never a folder half typed, one history read
    assert dialog.resume_button.isEnabled()

    qtbot.keyClicks(dialog.form.init_edit, str(tiny_model_file))
    qtbot.waitUntil(lambda: "ha-gan, 32³" in dialog.form.init_hint.text(), timeout=WAIT_MS)
    assert cards == [tiny_model_file]
