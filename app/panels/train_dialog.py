"""Train dialog: run ``python -m engine train`` as a child process, show its losses and previews, stop, resume.

The child reports JSON lines on stdout (app/training_process.py parses them); its stderr carries
the tqdm bar, whose newest piece is the status line, and "error: ..." lines on failure. Stopping
sends SIGTERM: the trainer finishes the iteration, writes a checkpoint and exports the model.
Nothing here waits on the child on the UI thread, except ``shutdown`` when the app quits.
"""

from __future__ import annotations

import codecs
import sys
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QProcess, QProcessEnvironment, Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.api import (
    DEVICE_CHOICES,
    FAMILIES,
    PHANTOM_KINDS,
    EngineError,
    available_devices,
    read_losses,
    read_model_card,
)

from ..context import AppContext
from ..settings import user_data_dir
from ..training_process import (
    DEFAULT_FAMILY,
    RESOLUTIONS,
    LineBuffer,
    LossHistory,
    TrainRequest,
    default_run_dir,
    error_line,
    family_presets,
    is_run,
    last_status,
    parse_event,
    records_network,
    repo_root,
    request_from_run,
    resume_arguments,
    saved_iteration,
    start_arguments,
)
from ..workers import BACKGROUND

FOLDER = "folder"  # the data combo's entry for a data folder (the others are phantom kinds)
SHUTDOWN_WAIT_MS = 60_000  # quitting the app: time for the child's last iteration and checkpoint
PREVIEW_SIZE = 128
# distinct on white (Tableau 10): one colour per loss curve
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")


def spin(low: int, high: int, value: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setToolTip(tip)
    return box


class TrainDialog(QDialog):
    """Settings on the left; loss curves, preview slices and the run's status on the right."""

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.setWindowTitle("Train a model")
        self.setModal(False)
        self.resize(980, 620)
        self.process: QProcess | None = None
        self.history = LossHistory()
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.previews: dict[str, QLabel] = {}
        self.events: list[dict] = []  # every JSON event of the current child, oldest first
        self.model_path: Path | None = None
        self._build_settings()
        self._build_results()
        layout = QHBoxLayout(self)
        layout.addWidget(self.settings_box)
        layout.addLayout(self.results, 1)
        self._offer_families()
        self._update_buttons()

    # -- layout ----------------------------------------------------------------------------------

    def _build_settings(self) -> None:
        self.data_box = QComboBox()
        for kind in PHANTOM_KINDS:
            self.data_box.addItem(f"Built-in phantoms: {kind}", kind)
        self.data_box.addItem("Data folder…", FOLDER)
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("preprocessed or NIfTI folder")
        folder_button = browse_button(self._choose_data)
        self.modality_box = QComboBox()
        self.modality_box.addItem("from the folder", "")
        self.modality_box.addItem("CT", "ct")
        self.modality_box.addItem("MRI", "mri")
        self.modality_box.setToolTip("Needed for a plain NIfTI folder; a preprocessed folder records its own")
        self.family_box = QComboBox()
        self.resolution_box = QComboBox()
        for size in RESOLUTIONS:
            self.resolution_box.addItem(f"{size}³", size)
        self.resolution_box.setCurrentIndex(RESOLUTIONS.index(64))
        self.preset_box = QComboBox()  # filled per family
        self.iterations_box = spin(1, 10_000_000, 5000, "Total iterations; Resume continues up to this number")
        self.batch_box = spin(1, 1024, 4, "Volumes per iteration")
        self.log_box = spin(1, 100_000, 20, "Iterations between points of the loss curves")
        self.preview_box = spin(1, 1_000_000, 200, "Iterations between preview slices")
        self.checkpoint_box = spin(1, 1_000_000, 500, "Iterations between run checkpoints")
        self.init_edit = QLineEdit()
        self.init_edit.setPlaceholderText("nothing: train from scratch")
        self.init_edit.setToolTip(
            "HA-GAN: a model of the same network (ours, official G_iterN.pth, a run folder) to fine-tune; "
            "Split&Shuffle 3D: a 2D model to inflate. The network settings come from it."
        )
        init_button = browse_button(self._choose_init)
        self.init_hint = QLabel("")
        self.init_hint.setWordWrap(True)
        self.init_hint.setVisible(False)
        self.precision_box = QComboBox()
        self.precision_box.addItem("fp32", "fp32")
        self.precision_box.addItem("bf16 (faster)", "bf16")
        self.precision_box.setToolTip(
            "bf16: mixed precision on CUDA GPUs and on CPUs with bf16 instructions (about 3x faster there)"
        )
        self.mode_seeking_box = QDoubleSpinBox()
        self.mode_seeking_box.setRange(0.0, 10.0)
        self.mode_seeking_box.setDecimals(2)
        self.mode_seeking_box.setSingleStep(0.05)
        self.mode_seeking_box.setSpecialValueText("off")  # 0: the reference's training
        self.mode_seeking_box.setToolTip(
            "HA-GAN: weight of a mode-seeking term (MSGAN) that rewards different volumes for different "
            "seeds, up to the training data's own spread; try 0.02-0.1 when a model's seeds look alike. "
            "Its curve G_spread shows how far apart they are."
        )
        self.device_box = QComboBox()
        self.device_box.addItems(DEVICE_CHOICES)
        self.device_box.setToolTip("Detected here: " + ", ".join(available_devices()))
        self.run_edit = QLineEdit(str(default_run_dir(user_data_dir() / "runs")))
        run_button = browse_button(self._choose_run)
        new_button = QPushButton("New")
        new_button.setToolTip("A fresh run folder under the user data folder")
        new_button.clicked.connect(lambda: self.run_edit.setText(str(default_run_dir(user_data_dir() / "runs"))))
        self.run_hint = QLabel("")
        self.run_hint.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Data", self.data_box)
        form.addRow("Folder", row(self.folder_edit, folder_button))
        form.addRow("Modality", self.modality_box)
        form.addRow("Family", self.family_box)
        form.addRow("Resolution", self.resolution_box)
        form.addRow("Preset", self.preset_box)
        form.addRow("Start from", row(self.init_edit, init_button))
        form.addRow("", self.init_hint)
        form.addRow("Precision", self.precision_box)
        form.addRow("Seed diversity", self.mode_seeking_box)
        form.addRow("Iterations", self.iterations_box)
        form.addRow("Batch size", self.batch_box)
        form.addRow("Log every", self.log_box)
        form.addRow("Preview every", self.preview_box)
        form.addRow("Checkpoint every", self.checkpoint_box)
        form.addRow("Device", self.device_box)
        form.addRow("Run folder", row(self.run_edit, run_button, new_button))
        form.addRow("", self.run_hint)

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
        self.data_box.currentIndexChanged.connect(lambda *_: self._update_buttons())
        self.family_box.currentTextChanged.connect(self._fill_presets)
        self.run_edit.textChanged.connect(lambda *_: self._update_buttons())
        self.run_edit.textChanged.connect(lambda *_: self._show_existing_run())
        self.init_edit.textChanged.connect(self._follow_start_model)

        self.form_box = QWidget()  # disabled while a run goes on: its settings are fixed then
        self.form_box.setLayout(form)
        self.settings_box = QWidget()
        self.settings_box.setMaximumWidth(380)
        column = QVBoxLayout(self.settings_box)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.form_box)
        column.addLayout(buttons)
        column.addStretch(1)

    def _build_results(self) -> None:
        self.plot = pg.PlotWidget()
        self.plot.setBackground("w")
        self.plot.setLabel("bottom", "iteration")
        self.plot.setLabel("left", "loss")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.addLegend(offset=(-10, 10))
        self.preview_title = QLabel("Preview slices appear every 'Preview every' iterations")
        self.preview_grid = QGridLayout()
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m iterations")
        self.progress.setValue(0)
        self.status_label = QLabel("")  # the newest tqdm line of the child
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label = QLabel("Choose the data and press Start.")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.results = QVBoxLayout()
        self.results.addWidget(self.plot, 1)
        self.results.addWidget(self.preview_title)
        self.results.addLayout(self.preview_grid)
        self.results.addWidget(self.progress)
        self.results.addWidget(self.status_label)
        self.results.addWidget(self.message_label)

    def _offer_families(self) -> None:
        """Every family the engine trains, HA-GAN first."""
        self.family_box.addItems(FAMILIES)
        self.family_box.setCurrentText(DEFAULT_FAMILY)
        self._fill_presets(DEFAULT_FAMILY)

    def _fill_presets(self, family: str) -> None:
        """The family's presets, keeping the chosen name where the family has it too."""
        self.mode_seeking_box.setEnabled(family == DEFAULT_FAMILY)  # an HA-GAN option
        chosen = self.preset_box.currentText() or "small"
        self.preset_box.clear()
        for name, widths in family_presets(family).items():
            self.preset_box.addItem(name)
            tip = ", ".join(f"{k} {v}" for k, v in widths.items())
            self.preset_box.setItemData(self.preset_box.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        if self.preset_box.findText(chosen) >= 0:
            self.preset_box.setCurrentText(chosen)

    # -- running ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def run_dir(self) -> Path:
        return Path(self.run_edit.text().strip()).expanduser()

    def request(self) -> TrainRequest:
        kind = self.data_box.currentData()
        data = self.folder_edit.text().strip() if kind == FOLDER else f"phantoms:{kind}"
        return TrainRequest(
            data=data,
            run_dir=self.run_dir(),
            family=self.family_box.currentText(),
            resolution=self.resolution_box.currentData(),
            preset=self.preset_box.currentText(),
            iterations=self.iterations_box.value(),
            batch_size=self.batch_box.value(),
            log_every=self.log_box.value(),
            preview_every=self.preview_box.value(),
            checkpoint_every=self.checkpoint_box.value(),
            device=self.device_box.currentText(),
            modality=self.modality_box.currentData() if kind == FOLDER else "",
            precision=self.precision_box.currentData(),
            init_from=self.init_edit.text().strip(),
            mode_seeking=self.mode_seeking_box.value(),
        )

    def start(self) -> None:
        """A new run in the run folder."""
        request = self.request()
        if self.data_box.currentData() == FOLDER and not Path(request.data).is_dir():
            self.context.report_error(f"{request.data or 'no data folder chosen'}: not a folder")
            return
        if is_run(request.run_dir):
            self.context.report_error(f"{request.run_dir} already holds a run: Resume it, or press New")
            return
        self.history = LossHistory()
        self.plot.clear()
        self.curves.clear()
        self._launch(start_arguments(request), f"Starting a run in {request.run_dir}…", new_run=True)

    def resume(self) -> None:
        """Continue the run in the run folder from its newest checkpoint up to 'Iterations'."""
        run_dir, total = self.run_dir(), self.iterations_box.value()
        done = saved_iteration(run_dir)
        if done is not None and total <= done:
            self.context.report_error(f"the run is at iteration {done}: raise Iterations above it to train further")
            return
        self._launch(resume_arguments(run_dir, total, self.device_box.currentText()), f"Resuming {run_dir}…")

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
            self.run_edit.setText(event.get("run_dir", self.run_edit.text()))
            self.message_label.setText(f"Training from iteration {event['iteration']}…")
        elif kind == "progress":
            self._on_progress(event)
        elif kind == "preview":
            self._show_previews(event)
        elif kind == "skipped":
            self.message_label.setText(f"Skipped {event.get('file')}: {event.get('cause')}")
        elif kind in ("stopped", "finished") and event.get("model"):
            self.model_path = Path(event["model"])

    def _on_progress(self, event: dict) -> None:
        iteration = int(event["iteration"])
        self.progress.setValue(iteration)
        self.history.add(iteration, event.get("losses", {}))
        self._draw_curves()

    def _draw_curves(self) -> None:
        for i, (name, (steps, values)) in enumerate(self.history.curves.items()):
            curve = self.curves.get(name)
            if curve is None:
                pen = pg.mkPen(COLOURS[i % len(COLOURS)], width=1.5)
                curve = self.curves[name] = self.plot.plot(name=name, pen=pen)
            curve.setData(steps, values)

    def _show_previews(self, event: dict) -> None:
        """The newest middle slices the child wrote (tiny PNGs: reading them here costs nothing)."""
        for i, (name, path) in enumerate(event.get("images", {}).items()):
            label = self.previews.get(name)
            if label is None:
                label = self.previews[name] = QLabel()
                label.setFixedSize(PREVIEW_SIZE, PREVIEW_SIZE)
                label.setAlignment(Qt.AlignmentFlag.AlignCenter)
                label.setStyleSheet("background: black")
                self.preview_grid.addWidget(label, 0, i)
                self.preview_grid.addWidget(QLabel(name.replace("_", " ")), 1, i, Qt.AlignmentFlag.AlignHCenter)
            pixmap = QPixmap(path)
            if not pixmap.isNull():
                label.setPixmap(
                    pixmap.scaled(
                        PREVIEW_SIZE,
                        PREVIEW_SIZE,
                        Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.FastTransformation,  # nearest: voxels stay visible
                    )
                )
        self.preview_title.setText(f"Middle slices at iteration {event.get('iteration')}")

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
                self.run_edit.setText(str(default_run_dir(user_data_dir() / "runs")))
            if not self._quiet:
                self.context.report_error(cause)
        self._update_buttons()

    # -- small helpers ---------------------------------------------------------------------------

    def _update_buttons(self) -> None:
        running = self.running
        if not running:
            self.stop_button.setText("Stop")
        self.run_edit.setToolTip(self.run_edit.text())
        folder = self.data_box.currentData() == FOLDER
        self.folder_edit.setEnabled(folder)
        self.modality_box.setEnabled(folder)
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        run_dir = self.run_dir()
        self.resume_button.setEnabled(not running and is_run(run_dir))
        model = self.model_path or run_dir / "model.safetensors"
        self.open_button.setEnabled(not running and model.is_file())
        done = saved_iteration(run_dir)
        self.run_hint.setText(run_hint(run_dir, done))
        self.form_box.setEnabled(not running)

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

    def _choose_data(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Training data folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def _show_existing_run(self) -> None:
        """A folder that holds a run: the form shows the run's settings and the plot its losses so far."""
        run_dir = self.run_dir()
        if self.running or not is_run(run_dir):
            return
        request = request_from_run(run_dir)
        if request is not None:
            self._fill_form(request)
            self.progress.setRange(0, request.iterations)
            self.progress.setValue(saved_iteration(run_dir) or 0)
        self._load_history(run_dir)

    def _fill_form(self, request: TrainRequest) -> None:
        """Set every field to ``request`` (a field whose value this dialog does not offer keeps its own)."""
        phantoms = request.data.startswith("phantoms:")
        select(self.data_box, request.data.split(":", 1)[1] if phantoms else FOLDER)
        self.folder_edit.setText("" if phantoms else request.data)
        select(self.modality_box, request.modality)
        self.family_box.setCurrentText(request.family)  # (refills the presets)
        select(self.resolution_box, request.resolution)
        self.preset_box.setCurrentText(request.preset)
        self.init_edit.setText(request.init_from)
        select(self.precision_box, request.precision)
        self.mode_seeking_box.setValue(request.mode_seeking)
        self.iterations_box.setValue(request.iterations)
        self.batch_box.setValue(request.batch_size)
        self.log_box.setValue(request.log_every)
        self.preview_box.setValue(request.preview_every)
        self.checkpoint_box.setValue(request.checkpoint_every)

    def _load_history(self, run_dir: Path) -> None:
        """An existing run's losses so far (its TensorBoard files, read in the background)."""

        def show(curves: dict) -> None:
            if self.running or self.run_dir() != run_dir:
                return  # a run started, or another folder was chosen meanwhile
            self.history = LossHistory(curves)
            self.plot.clear()
            self.curves.clear()
            self._draw_curves()

        self.context.jobs.submit(
            "train-history",
            f"Reading the losses of {run_dir.name}",
            lambda progress: read_losses(run_dir),
            show,
            lambda message: self.message_label.setText(f"Could not read the run's losses: {message}"),
            pool=BACKGROUND,
        )

    def _follow_start_model(self, text: str) -> None:
        """A start model brings its network: its preset, and its resolution where the file records it."""
        source = Path(text.strip()) if text.strip() else None
        self.preset_box.setEnabled(source is None)
        self.resolution_box.setEnabled(source is None or not records_network(source))
        self.init_hint.setText("" if source is None else self._start_model_hint(source))
        self.init_hint.setVisible(source is not None)

    def _start_model_hint(self, source: Path) -> str:
        """What the start model brings, from its card (a few bytes of header, not the weights)."""
        if is_run(source):
            return "The run's network and its newest checkpoint (G, D and the encoders)"
        if source.suffix != ".safetensors":
            return "An official HA-GAN file: choose its resolution above"
        try:
            card = read_model_card(source)
        except EngineError as error:
            return str(error)
        config = card.config
        index = self.resolution_box.findData(config.resolution)
        if index >= 0:
            self.resolution_box.setCurrentIndex(index)
        return f"Network of '{card.name}': {card.family}, {config.resolution}³, latent {config.latent_dim}"

    def _choose_init(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Start from model", "", "Models (*.safetensors *.pth *.pt);;All files (*)"
        )
        if path:
            self.init_edit.setText(path)

    def _choose_run(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Run folder", str(self.run_dir().parent))
        if folder:
            self.run_edit.setText(folder)


def run_hint(run_dir: Path, done: int | None) -> str:
    """What the chosen run folder holds, under its field."""
    if not is_run(run_dir):
        return ""
    at = f"at iteration {done}" if done is not None else "without a checkpoint yet"
    return f"Holds a run {at}; the form shows its settings (Resume keeps them, up to 'Iterations')"


def select(box: QComboBox, data) -> None:
    """Choose the item of ``box`` that carries ``data``, if it has one."""
    index = box.findData(data)
    if index >= 0:
        box.setCurrentIndex(index)


def browse_button(choose) -> QPushButton:
    """The small '…' button beside a path field."""
    button = QPushButton("…")
    button.setMaximumWidth(32)
    button.clicked.connect(choose)
    return button


def row(*widgets: QWidget) -> QWidget:
    """Widgets side by side as one form field."""
    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget, 1 if isinstance(widget, QLineEdit) else 0)
    return holder


def open_train_dialog(window) -> TrainDialog:
    """Show the window's Train dialog, made once and kept in ``window.panels`` (its shutdown runs at quit)."""
    dialog = window.panels.get("train")
    if dialog is None:
        dialog = window.panels["train"] = TrainDialog(window.context, window)
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog
