"""The Train dialog's settings form: it builds the engine's TrainConfig and shows a run's.

Data (built-in phantoms or a folder), family, network, start model, training lengths, device and
the run folder, with choosers for the folders and the start model. The engine validates the
settings (``settings`` raises its one-line ConfigError); the device is a choice of the process,
not of the run, so it lives beside them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from engine.api import (
    DEVICE_CHOICES,
    FAMILIES,
    PHANTOM_KINDS,
    EngineError,
    Family,
    Precision,
    TrainConfig,
    available_devices,
    read_model_card,
)

from ...settings import user_data_dir
from ...training_process import (
    DEFAULT_FAMILY,
    RESOLUTIONS,
    default_run_dir,
    family_presets,
    is_run,
    records_network,
    saved_iteration,
)

FOLDER = "folder"  # the data combo's entry for a data folder (the others are phantom kinds)
TYPING_PAUSE_MS = 300  # a typed path is looked at once typing pauses this long (or the field is left)


class AfterTyping(QObject):
    """Runs ``action`` for a path field: at once for a path set by a chooser or the program, once
    typing pauses for a typed one (each keystroke would otherwise read the disk)."""

    def __init__(self, edit: QLineEdit, action: Callable[[], None], pause_ms: int = TYPING_PAUSE_MS):
        super().__init__(edit)
        self.edit, self.action = edit, action
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(pause_ms)
        self.timer.timeout.connect(action)
        edit.textChanged.connect(self._changed)
        edit.editingFinished.connect(self.flush)  # Enter, or a click elsewhere (Start, Resume)

    def _changed(self) -> None:
        if self.edit.isModified():  # typed (setText clears the flag)
            self.timer.start()
        else:
            self.timer.stop()
            self.action()

    def flush(self) -> None:
        """Do the pending work now, if typing left some."""
        if self.timer.isActive():
            self.timer.stop()
            self.action()


class TrainForm(QWidget):
    """The settings of a new run; ``fill`` shows those of an existing one."""

    run_dir_changed = Signal()  # the run folder field was edited or chosen

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._build()
        self._offer_families()
        self._follow_data()

    def _build(self) -> None:
        self.data_box = QComboBox()
        for kind in PHANTOM_KINDS:
            self.data_box.addItem(f"Built-in phantoms: {kind}", kind)
        self.data_box.addItem("Data folder…", FOLDER)
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("preprocessed or NIfTI folder")
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
        self.init_hint = QLabel("")
        self.init_hint.setWordWrap(True)
        self.init_hint.setVisible(False)
        self.precision_box = QComboBox()
        self.precision_box.addItem("fp32", Precision.FP32)
        self.precision_box.addItem("bf16 (faster)", Precision.BF16)
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
        self.run_edit = QLineEdit()
        self.new_run_dir()
        new_button = QPushButton("New")
        new_button.setToolTip("A fresh run folder under the user data folder")
        new_button.clicked.connect(self.new_run_dir)
        self.run_hint = QLabel("")
        self.run_hint.setWordWrap(True)

        form = QFormLayout(self)
        form.addRow("Data", self.data_box)
        form.addRow("Folder", row(self.folder_edit, browse_button(self._choose_data)))
        form.addRow("Modality", self.modality_box)
        form.addRow("Family", self.family_box)
        form.addRow("Resolution", self.resolution_box)
        form.addRow("Preset", self.preset_box)
        form.addRow("Start from", row(self.init_edit, browse_button(self._choose_init)))
        form.addRow("", self.init_hint)
        form.addRow("Precision", self.precision_box)
        form.addRow("Seed diversity", self.mode_seeking_box)
        form.addRow("Iterations", self.iterations_box)
        form.addRow("Batch size", self.batch_box)
        form.addRow("Log every", self.log_box)
        form.addRow("Preview every", self.preview_box)
        form.addRow("Checkpoint every", self.checkpoint_box)
        form.addRow("Device", self.device_box)
        form.addRow("Run folder", row(self.run_edit, browse_button(self._choose_run), new_button))
        form.addRow("", self.run_hint)

        self.data_box.currentIndexChanged.connect(lambda *_: self._follow_data())
        self.family_box.currentTextChanged.connect(self._fill_presets)
        self._init_typing = AfterTyping(self.init_edit, lambda: self._follow_start_model(self.init_edit.text()))
        self._run_typing = AfterTyping(self.run_edit, self._follow_run_dir)

    # -- what the form holds ---------------------------------------------------------------------

    def uses_folder(self) -> bool:
        return self.data_box.currentData() == FOLDER

    def data_folder(self) -> str:
        return self.folder_edit.text().strip()

    def run_dir(self) -> Path:
        return Path(self.run_edit.text().strip()).expanduser()

    def device(self) -> str:
        return self.device_box.currentText()

    def settings(self) -> TrainConfig:
        """The run the form describes, as the engine's settings; a bad combination raises ConfigError."""
        kind = self.data_box.currentData()
        family = self.family_box.currentText()
        return TrainConfig(
            data=self.data_folder() if kind == FOLDER else f"phantoms:{kind}",
            out=str(self.run_dir()),
            family=family,
            resolution=self.resolution_box.currentData(),
            preset=self.preset_box.currentText(),
            iterations=self.iterations_box.value(),
            batch_size=self.batch_box.value(),
            log_every=self.log_box.value(),
            preview_every=self.preview_box.value(),
            checkpoint_every=self.checkpoint_box.value(),
            modality=self.modality_box.currentData() if kind == FOLDER else "",
            precision=self.precision_box.currentData(),
            init_from=self.init_edit.text().strip(),
            mode_seeking=self.mode_seeking_box.value() if family == Family.HA_GAN else 0.0,  # an HA-GAN option
        )

    def fill(self, config: TrainConfig) -> None:
        """Set every field to ``config`` (a field whose value the form does not offer keeps its own)."""
        phantoms = config.data.startswith("phantoms:")
        select(self.data_box, config.data.split(":", 1)[1] if phantoms else FOLDER)
        self.folder_edit.setText("" if phantoms else config.data)
        select(self.modality_box, config.modality)
        self.family_box.setCurrentText(config.family)  # (refills the presets)
        select(self.resolution_box, config.resolution)
        self.preset_box.setCurrentText(config.preset)
        self.init_edit.setText(config.init_from)
        select(self.precision_box, config.precision)
        self.mode_seeking_box.setValue(config.mode_seeking)
        self.iterations_box.setValue(config.iterations)
        self.batch_box.setValue(config.batch_size)
        self.log_box.setValue(config.log_every)
        self.preview_box.setValue(config.preview_every)
        self.checkpoint_box.setValue(config.checkpoint_every)

    def set_run_dir(self, path: str) -> None:
        self.run_edit.setText(path)

    def new_run_dir(self) -> None:
        """A fresh run folder under the user data folder."""
        self.run_edit.setText(str(default_run_dir(user_data_dir() / "runs")))

    def show_run_state(self) -> None:
        """What the chosen run folder holds, under its field (it changes as a run saves checkpoints)."""
        self.run_edit.setToolTip(self.run_edit.text())
        self.run_hint.setText(run_hint(self.run_dir(), saved_iteration(self.run_dir())))

    # -- fields that follow each other -----------------------------------------------------------

    def _offer_families(self) -> None:
        """Every family the engine trains, HA-GAN first."""
        self.family_box.addItems(FAMILIES)
        self.family_box.setCurrentText(DEFAULT_FAMILY)
        self._fill_presets(DEFAULT_FAMILY)

    def _fill_presets(self, family: str) -> None:
        """The family's presets, keeping the chosen name where the family has it too."""
        self.mode_seeking_box.setEnabled(family == Family.HA_GAN)  # an HA-GAN option
        chosen = self.preset_box.currentText() or "small"
        self.preset_box.clear()
        for name, widths in family_presets(family).items():
            self.preset_box.addItem(name)
            tip = ", ".join(f"{k} {v}" for k, v in widths.items())
            self.preset_box.setItemData(self.preset_box.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        if self.preset_box.findText(chosen) >= 0:
            self.preset_box.setCurrentText(chosen)

    def _follow_data(self) -> None:
        folder = self.uses_folder()
        self.folder_edit.setEnabled(folder)
        self.modality_box.setEnabled(folder)

    def _follow_run_dir(self) -> None:
        self.show_run_state()
        self.run_dir_changed.emit()

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
        select(self.resolution_box, config.resolution)
        return f"Network of '{card.name}': {card.family}, {config.resolution}³, latent {config.latent_dim}"

    # -- choosers --------------------------------------------------------------------------------

    def _choose_data(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Training data folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

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


def spin(low: int, high: int, value: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setToolTip(tip)
    return box


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
