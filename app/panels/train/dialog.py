"""Train dialog: run ``python -m engine train`` as a child process, show its losses and previews, stop, resume.

The form (form.py) gives the run's settings, which the engine turns into the command line; the
child reports JSON lines on stdout (app/training_process.py parses them), which feed the results
(results.py). Its stderr carries the tqdm bar, whose newest piece is the status line, and
"error: ..." lines on failure. Stopping sends SIGTERM: the trainer finishes the iteration, writes a
checkpoint and exports the model. Nothing here waits on the child on the UI thread, except
``shutdown`` when the app quits.
"""

from __future__ import annotations

import codecs
import sys
from pathlib import Path

from PySide6.QtCore import QProcess, QProcessEnvironment, Qt
from PySide6.QtWidgets import (
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine.api import EngineError, first_line, read_losses

from ...context import AppContext
from ...training_process import (
    LineBuffer,
    LossHistory,
    error_line,
    is_run,
    last_status,
    parse_event,
    repo_root,
    resume_arguments,
    run_settings,
    saved_iteration,
    start_arguments,
)
from ...workers import BACKGROUND
from .form import TrainForm
from .results import TrainResults

SHUTDOWN_WAIT_MS = 60_000  # quitting the app: time for the child's last iteration and checkpoint


class TrainDialog(QDialog):
    """Settings and run buttons on the left; loss curves, preview slices and the run's status on the right."""

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.setWindowTitle("Train a model")
        self.setModal(False)
        self.resize(980, 620)
        self.process: QProcess | None = None
        self.events: list[dict] = []  # every JSON event of the current child, oldest first
        self.model_path: Path | None = None
        self.form = TrainForm()  # disabled while a run goes on: its settings are fixed then
        self.results = TrainResults()
        layout = QHBoxLayout(self)
        layout.addWidget(self._settings_column())
        layout.addLayout(self._results_column(), 1)
        self.form.run_dir_changed.connect(self._update_buttons)
        self.form.run_dir_changed.connect(self._show_existing_run)
        self._update_buttons()

    def _settings_column(self) -> QWidget:
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Finish the current iteration, save a checkpoint and export the model")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the run in the run folder up to 'Iterations' in total")
        self.open_button = QPushButton("Open result")
        self.open_button.setToolTip("Load the run's exported model in the main window")
        buttons = QGridLayout()
        for i, button in enumerate((self.start_button, self.stop_button, self.resume_button, self.open_button)):
            buttons.addWidget(button, i // 2, i % 2)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.resume_button.clicked.connect(self.resume)
        self.open_button.clicked.connect(self.open_result)
        column = QWidget()
        column.setMaximumWidth(380)
        layout = QVBoxLayout(column)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.form)
        layout.addLayout(buttons)
        layout.addStretch(1)
        return column

    def _results_column(self) -> QVBoxLayout:
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m iterations")
        self.progress.setValue(0)
        self.status_label = QLabel("")  # the newest tqdm line of the child
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label = QLabel("Choose the data and press Start.")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        column = QVBoxLayout()
        column.addWidget(self.results, 1)
        column.addWidget(self.progress)
        column.addWidget(self.status_label)
        column.addWidget(self.message_label)
        return column

    # -- running ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def run_dir(self) -> Path:
        return self.form.run_dir()

    def start(self) -> None:
        """A new run in the run folder, with the form's settings (checked by the engine first)."""
        if self.form.uses_folder() and not Path(self.form.data_folder()).is_dir():
            self.context.report_error(f"{self.form.data_folder() or 'no data folder chosen'}: not a folder")
            return
        run_dir = self.run_dir()
        if is_run(run_dir):
            self.context.report_error(f"{run_dir} already holds a run: Resume it, or press New")
            return
        try:
            config = self.form.settings()
        except EngineError as error:
            self.context.report_error(first_line(error))
            return
        self.results.show_history(LossHistory())
        arguments = start_arguments(config, self.form.device())
        self._launch(arguments, f"Starting a run in {run_dir}…", new_run=True)

    def resume(self) -> None:
        """Continue the run in the run folder from its newest checkpoint up to 'Iterations'."""
        run_dir, total = self.run_dir(), self.form.iterations_box.value()
        done = saved_iteration(run_dir)
        if done is not None and total <= done:
            self.context.report_error(f"the run is at iteration {done}: raise Iterations above it to train further")
            return
        self._launch(resume_arguments(run_dir, total, self.form.device()), f"Resuming {run_dir}…")

    def _launch(self, arguments: list[str], message: str, new_run: bool = False) -> None:
        if self.running:
            return
        if self.process is not None:
            self.process.deleteLater()
        process = QProcess(self)
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert("PYTHONUNBUFFERED", "1")
        process.setProcessEnvironment(environment)
        process.setWorkingDirectory(str(repo_root()))
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_process_error)
        self.process, self.events, self.model_path = process, [], None
        self._stdout, self._decode_out = LineBuffer(), codecs.getincrementaldecoder("utf-8")("replace")
        self._decode_err = codecs.getincrementaldecoder("utf-8")("replace")
        self._stderr_tail, self._stopping, self._quiet, self._new_run = "", False, False, new_run
        self.stop_button.setText("Stop")
        self.message_label.setText(message)
        self.status_label.setText("")
        process.start(sys.executable, arguments)
        self._update_buttons()

    def stop(self) -> None:
        """SIGTERM: the trainer saves a checkpoint and the model, then exits. Pressed again: kill."""
        if not self.running:
            return
        if self._stopping:
            self.process.kill()
            self.message_label.setText("Killed: the run keeps its previous checkpoint.")
            return
        self._stopping = True
        self.process.terminate()
        self.stop_button.setText("Force stop")
        self.stop_button.setToolTip("Kill the training process now (the newest checkpoint stays)")
        if self.started:
            self.message_label.setText("Stopping after the current iteration (saving a checkpoint and the model)…")
        else:
            self.message_label.setText("Stopping before training began…")

    @property
    def started(self) -> bool:
        """Whether the child got past its setup: from then on SIGTERM saves a checkpoint."""
        return any(e["event"] == "start" for e in self.events)

    def shutdown(self) -> None:
        """The app quits: stop the child cleanly (checkpoint + model), waiting for it, then kill if needed."""
        if not self.running:
            return
        self._quiet = True
        self.process.terminate()
        if not self.process.waitForFinished(SHUTDOWN_WAIT_MS):
            self.process.kill()
            self.process.waitForFinished(5_000)

    def reject(self) -> None:
        """Closing the dialog (Esc, the close button) while training asks what to do with the run."""
        if self.running and not self._confirm_close():
            return
        super().reject()

    def _confirm_close(self) -> bool:
        box = QMessageBox(QMessageBox.Icon.Question, "Training is running", "Stop the training run?", parent=self)
        box.setInformativeText("Stopping saves a checkpoint and the model; it can be resumed later.")
        stop = box.addButton("Stop training", QMessageBox.ButtonRole.AcceptRole)
        keep = box.addButton("Keep training", QMessageBox.ButtonRole.RejectRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        if box.clickedButton() is stop:
            self.stop()
        return box.clickedButton() in (stop, keep)

    # -- what the child says ------------------------------------------------------------------------

    def _read_stdout(self) -> None:
        text = self._decode_out.decode(bytes(self.process.readAllStandardOutput()))
        for line in self._stdout.feed(text):
            self._on_line(line)

    def _read_stderr(self) -> None:
        text = self._decode_err.decode(bytes(self.process.readAllStandardError()))
        self._stderr_tail = (self._stderr_tail + text)[-8000:]
        self.status_label.setText(last_status(self._stderr_tail))

    def _on_line(self, line: str) -> None:
        event = parse_event(line)
        if event is None:
            return
        self.events.append(event)
        kind = event["event"]
        if kind == "start":
            self.progress.setRange(0, int(event["iterations"]))
            self.progress.setValue(int(event["iteration"]))
            self.form.set_run_dir(event.get("run_dir", self.form.run_edit.text()))
            self.message_label.setText(f"Training from iteration {event['iteration']}…")
        elif kind == "progress":
            iteration = int(event["iteration"])
            self.progress.setValue(iteration)
            self.results.add_losses(iteration, event.get("losses", {}))
        elif kind == "preview":
            self.results.show_previews(event)
        elif kind == "skipped":
            self.message_label.setText(f"Skipped {event.get('file')}: {event.get('cause')}")
        elif kind in ("stopped", "finished") and event.get("model"):
            self.model_path = Path(event["model"])

    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.message_label.setText("The training process did not start.")
            self.context.report_error(f"cannot start {sys.executable}: {self.process.errorString()}")
            self._update_buttons()

    def _on_finished(self, exit_code: int, status: QProcess.ExitStatus) -> None:
        for line in self._stdout.feed(self._decode_out.decode(b"", final=True)) + self._stdout.flush():
            self._on_line(line)
        last = self.events[-1] if self.events else {}
        run_dir = self.run_dir()
        if self.model_path is None and (run_dir / "model.safetensors").is_file():
            self.model_path = run_dir / "model.safetensors"
        if last.get("event") == "stopped":
            checkpoint = next((e["path"] for e in reversed(self.events) if e["event"] == "checkpoint"), "none")
            self.message_label.setText(
                f"Stopped at iteration {last['iteration']}. Checkpoint: {checkpoint}. Model: {self.model_path}. "
                "Resume continues from there."
            )
        elif last.get("event") == "finished":
            self.message_label.setText(f"Finished at iteration {last['iteration']}. Model: {self.model_path}.")
        elif self._stopping or status == QProcess.ExitStatus.CrashExit:
            done = saved_iteration(run_dir)
            kept = f"its newest checkpoint is at iteration {done}" if done is not None else "nothing was saved"
            self.message_label.setText(f"The training process ended early; {kept}.")
        else:
            cause = error_line(self._stderr_tail) or f"the training process exited with code {exit_code}"
            self.message_label.setText(f"Training failed: {cause}")
            if self._new_run and saved_iteration(run_dir) is None:  # the engine refuses a folder it set up once
                self.form.new_run_dir()
            if not self._quiet:
                self.context.report_error(cause)
        self._update_buttons()

    # -- the chosen run folder -------------------------------------------------------------------

    def _update_buttons(self) -> None:
        running = self.running
        if not running:
            self.stop_button.setText("Stop")
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        run_dir = self.run_dir()
        self.resume_button.setEnabled(not running and is_run(run_dir))
        model = self.model_path or run_dir / "model.safetensors"
        self.open_button.setEnabled(not running and model.is_file())
        self.form.show_run_state()
        self.form.setEnabled(not running)

    def open_result(self) -> None:
        """The run's exported model in the main window."""
        path = self.model_path or self.run_dir() / "model.safetensors"
        if not path.is_file():
            self.context.report_error(f"{path}: no exported model yet")
            return
        opener = getattr(self.context.window, "open_model", None)
        if opener is not None:
            opener(path)
        else:
            self.context.generation.open(path)

    def _show_existing_run(self) -> None:
        """A folder that holds a run: the form shows the run's settings and the plot its losses so far."""
        run_dir = self.run_dir()
        if self.running or not is_run(run_dir):
            return
        config = run_settings(run_dir)
        if config is not None:
            self.form.fill(config)
            self.progress.setRange(0, config.iterations)
            self.progress.setValue(saved_iteration(run_dir) or 0)
        self._load_history(run_dir)

    def _load_history(self, run_dir: Path) -> None:
        """An existing run's losses so far (its TensorBoard files, read in the background)."""

        def show(curves: dict) -> None:
            if self.running or self.run_dir() != run_dir:
                return  # a run started, or another folder was chosen meanwhile
            self.results.show_history(LossHistory(curves))

        self.context.jobs.submit(
            "train-history",
            f"Reading the losses of {run_dir.name}",
            lambda progress: read_losses(run_dir),
            show,
            lambda message: self.message_label.setText(f"Could not read the run's losses: {message}"),
            pool=BACKGROUND,
        )


def open_train_dialog(window) -> TrainDialog:
    """Show the window's Train dialog, made once and kept in ``window.panels`` (its shutdown runs at quit)."""
    dialog = window.panels.get("train")
    if dialog is None:
        dialog = window.panels["train"] = TrainDialog(window.context, window)
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog
