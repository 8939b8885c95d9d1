"""Model panel: open a model (ours or official HA-GAN), the demo models, recent files, device, precision,
model card."""

from __future__ import annotations

import hashlib
import html
import os
from collections.abc import Callable
from pathlib import Path

import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from engine.api import (
    EXACT,
    EngineError,
    Family,
    Precision,
    allowed_precisions,
    demo_models,
    describe_device,
    fast_precision,
    find_official_files,
    read_model_card,
    resolve_device,
)

from ..context import AppContext
from ..settings import recent_files, remember_file, settings
from ..state import LoadedModel

OFFICIAL_RESOLUTIONS = ("256", "128")
FAMILY_NAMES = {Family.HA_GAN: "HA-GAN (hierarchical)", Family.SPLIT_SHUFFLE: "Split&Shuffle-GAN"}
PATH_ROLE = Qt.ItemDataRole.UserRole
MODEL_FILES = "Models (*.safetensors *.pth *.pt);;All files (*)"
PRECISION_LABELS = {
    Precision.FP32: "fp32 (exact)",
    Precision.TF32: "tf32 (fast float32)",
    Precision.BF16: "bf16 (faster, a few HU off)",
    Precision.FP16: "fp16 (faster)",
}


def precision_choices(device: torch.device | str, preview: bool) -> list[tuple[str, str]]:
    """(precision, label) the device runs; the preview list starts with "auto" (the fastest native one)."""
    choices = [(p, PRECISION_LABELS[p]) for p in allowed_precisions(device)]
    if preview:
        choices.insert(0, (Precision.AUTO, f"Auto: {PRECISION_LABELS[fast_precision(device)]}"))
    return choices


def device_choices() -> list[tuple[str, str]]:
    """(device, label) for every device found here: auto first, then the CPU, each GPU by name."""
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append(torch.device("mps"))
    best = describe_device(resolve_device("auto"))
    return [("auto", f"Auto: {best}")] + [(str(d), describe_device(d)) for d in devices]


def is_official(path: str | os.PathLike) -> bool:
    """Official HA-GAN files (a .pth file or their folder): they do not record their resolution."""
    path = Path(path)
    return path.exists() and (path.is_dir() or path.suffix != ".safetensors")


def card_rows(card, path: str = "") -> list[tuple[str, str]]:
    """The model card as (field, text) rows a person reads: what it is, its units, how it was trained."""
    config, training, intensity = card.config, card.training or {}, card.intensity
    unit = f" {intensity.unit}" if intensity.unit else " (no unit)"
    rows = [
        ("Name", card.name or Path(path).stem),
        ("Family", FAMILY_NAMES.get(card.family, card.family)),
        ("Modality", card.modality.upper() if card.modality in ("ct", "mri") else card.modality),
        ("Resolution", f"{config.resolution}³ voxels"),
        ("Latent size", str(config.latent_dim)),
        ("Intensity", f"network [-1, 1] → [{intensity.low:g}, {intensity.high:g}]{unit}"),
        ("Spacing", " × ".join(f"{s:.3g}" for s in card.spacing_mm) + f" mm ({card.orientation})"),
        ("Networks", ", ".join(card.parts) + (" (can encode scans)" if "E" in card.parts else " (generator only)")),
    ]
    if training:
        hours = training.get("time_hours")
        rows += [
            ("Iterations", str(training.get("iterations", "?"))),
            ("Training data", data_summary(training.get("data"))),
            ("Hardware", str(training.get("hardware", "not recorded"))),
            ("Training time", "not recorded" if hours is None else f"{hours:.2f} h"),
        ]
        if training.get("averaged_iterations"):
            rows.append(("Generator", "mean of iterations " + ", ".join(map(str, training["averaged_iterations"]))))
        if training.get("init"):
            rows.append(("Started from", init_summary(training["init"])))
    else:
        rows.append(("Training", "not recorded"))
    rows += [
        ("Content hash", card.content_hash.removeprefix("sha256:")[:12] or "none"),
        ("Source", card.source or "not recorded"),
    ]
    if card.notes:
        rows.append(("Notes", card.notes))
    if path:
        rows.append(("File", str(path)))
    return rows


def init_summary(init: dict) -> str:
    """'demo-chest-ct.safetensors at iteration 1382 (fine-tuned)' from a card's ``training.init``."""
    text = Path(str(init.get("from", "another model"))).name
    if init.get("iteration"):
        text += f" at iteration {init['iteration']}"
    strategy = init.get("strategy", "")
    return text + (" (fine-tuned)" if strategy == "copy" else f" ({strategy} inflation)" if strategy else "")


def data_summary(data) -> str:
    """'150 chest-ct volumes at 128³ (synthetic phantoms)' from a card's training-data record."""
    if not isinstance(data, dict):
        return str(data) if data else "not recorded"
    text = f"{data.get('count', '?')} {data.get('kind', '')} volumes".replace("  ", " ")
    if data.get("size"):
        text += f" at {data['size']}³"
    if data.get("synthetic"):
        text += " (synthetic phantoms)"
    elif data.get("root"):
        text += f" from {data['root']}"
    return text


class ModelPanel(QWidget):
    """Opens models on the inference thread (via the generation controller) and shows the current card."""

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        # Asks the resolution of official files; tests replace it. Returns None when the user cancels.
        self.ask_resolution: Callable[[str], int | None] = self._ask_resolution
        self.open_button = QPushButton("Open…")
        self.open_button.setToolTip("Our .safetensors model, or an official HA-GAN G_iterN.pth")
        self.demo_buttons = [self._demo_button(path) for path in demo_models()]
        self.recent_list = QListWidget()
        self.recent_list.setToolTip("Click to open")
        self.recent_list.setMaximumHeight(90)
        self.device_box = QComboBox()
        for device, label in device_choices():
            self.device_box.addItem(label, device)
        self.device_box.setToolTip("Where the model runs; changing it reloads the model")
        self.preview_precision_box = QComboBox()
        self.preview_precision_box.setToolTip("Arithmetic of previews while a slider moves (the anchor)")
        self.export_precision_box = QComboBox()
        self.export_precision_box.setToolTip(
            "Arithmetic of the full volume, the slab and every export; the sidecar of each file records it"
        )
        self._fill_precisions(resolve_device("auto"))
        self.device_label = QLabel("No model loaded")
        self.card_view = QTextBrowser()
        self.card_view.setOpenLinks(False)
        self.card_view.setMinimumHeight(140)  # a readable card even in a crowded column

        form = QFormLayout()
        form.addRow("Device", self.device_box)
        form.addRow("Preview precision", self.preview_precision_box)
        form.addRow("Export precision", self.export_precision_box)
        layout = QVBoxLayout(self)
        layout.addWidget(self.open_button)
        layout.addWidget(QLabel("Demo models"))
        for button in self.demo_buttons:
            layout.addWidget(button)
        layout.addWidget(QLabel("Recent"))
        layout.addWidget(self.recent_list)
        layout.addLayout(form)
        layout.addWidget(self.device_label)
        layout.addWidget(self.card_view, 1)

        self.open_button.clicked.connect(self.choose_file)
        self.recent_list.itemClicked.connect(lambda item: self.open_path(item.data(PATH_ROLE)))
        self.device_box.activated.connect(self._on_device_chosen)
        self.preview_precision_box.activated.connect(lambda _index: self._on_precision_chosen("preview"))
        self.export_precision_box.activated.connect(lambda _index: self._on_precision_chosen("export"))
        context.state.model_changed.connect(self._on_model)
        self._restore_device()
        self._add_recent_menu()
        self._fill_recent()

    # -- opening ---------------------------------------------------------------------------------

    def open_path(self, path: str | os.PathLike) -> None:
        """Open a model file or official folder, asking for the resolution when the files do not say."""
        path, resolution = os.fspath(path), None
        if is_official(path):
            try:
                find_official_files(path)  # a folder without a generator fails here, before any question
            except EngineError as error:
                self.context.report_error(str(error))
                return
            resolution = remembered_resolution(path) or self.ask_resolution(path)
            if resolution is None:
                return
        self.context.generation.open(path, resolution, self.device_box.currentData())

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open model", "", MODEL_FILES)
        if path:
            self.open_path(path)

    def _ask_resolution(self, path: str) -> int | None:
        """The question for official files (``ask_resolution`` points here; tests replace it)."""
        text, ok = QInputDialog.getItem(
            self,
            "Official HA-GAN model",
            f"{Path(path).name} does not record its resolution.\nResolution it was trained at:",
            OFFICIAL_RESOLUTIONS,
            0,
            False,
        )
        return int(text) if ok else None

    def _demo_button(self, path: Path) -> QPushButton:
        try:
            name = read_model_card(path).name or path.stem  # the header only: a few kB
        except EngineError:
            name = path.stem
        button = QPushButton(name)
        button.setToolTip(str(path))
        button.clicked.connect(lambda: self.open_path(path))
        return button

    # -- device ----------------------------------------------------------------------------------

    def _restore_device(self) -> None:
        index = self.device_box.findData(settings().value("model/device", "auto"))
        self.device_box.setCurrentIndex(max(index, 0))
        self.context.generation.device = self.device_box.currentData()

    def _on_device_chosen(self, _index: int) -> None:
        device = self.device_box.currentData()
        self.context.generation.device = device
        settings().setValue("model/device", device)
        model = self.context.state.model
        if model is not None:  # the same file again, on the new device
            self.context.generation.open(model.path, model.resolution, device)

    # -- precision -------------------------------------------------------------------------------

    def _fill_precisions(self, device: torch.device) -> None:
        """The choices this device runs, set to the remembered ones (else auto previews, exact exports)."""
        generation = self.context.generation
        for kind, box, fallback in (
            ("preview", self.preview_precision_box, Precision.AUTO),
            ("export", self.export_precision_box, EXACT),
        ):
            box.clear()
            for precision, label in precision_choices(device, preview=kind == "preview"):
                box.addItem(label, precision)
            index = box.findData(settings().value(f"model/{kind}_precision", fallback))
            box.setCurrentIndex(index if index >= 0 else box.findData(fallback))
            setattr(generation, f"{kind}_precision", box.currentData())

    def _on_precision_chosen(self, kind: str) -> None:
        box = self.preview_precision_box if kind == "preview" else self.export_precision_box
        settings().setValue(f"model/{kind}_precision", box.currentData())
        setattr(self.context.generation, f"{kind}_precision", box.currentData())

    # -- recent files and the card ---------------------------------------------------------------

    def _on_model(self, model: LoadedModel | None) -> None:
        if model is None:
            self.device_label.setText("No model loaded")
            self.card_view.clear()
            return
        remember_file(model.path)
        if is_official(model.path):  # the files do not record it: ask only the first time
            settings().setValue(resolution_key(model.path), model.resolution)
        self._fill_recent()
        self._fill_precisions(model.model.device)
        self.device_label.setText(f"Running on {describe_device(model.model.device)}")
        rows = "".join(
            f"<tr><td><b>{html.escape(key)}</b></td><td>{html.escape(value)}</td></tr>"
            for key, value in card_rows(model.card, model.path)
        )
        self.card_view.setHtml(f"<table cellspacing='2'>{rows}</table>")

    def _fill_recent(self) -> None:
        self.recent_list.clear()
        for path in recent_files():
            item = QListWidgetItem(Path(path).name)
            item.setData(PATH_ROLE, path)
            item.setToolTip(path)
            self.recent_list.addItem(item)

    def _add_recent_menu(self) -> None:
        """File > Open recent, filled each time it opens."""
        file_menu = getattr(self.context.window, "file_menu", None)
        if file_menu is None:
            return
        menu = QMenu("Open &recent", self)
        actions = file_menu.actions()
        if actions:
            file_menu.insertMenu(actions[min(1, len(actions) - 1)], menu)  # below "Open model…"
        else:
            file_menu.addMenu(menu)

        def fill() -> None:
            menu.clear()
            for path in recent_files() or []:
                menu.addAction(Path(path).name, lambda path=path: self.open_path(path)).setToolTip(path)
            menu.setToolTipsVisible(True)
            if menu.isEmpty():
                menu.addAction("(none yet)").setEnabled(False)

        menu.aboutToShow.connect(fill)


def resolution_key(path: str | os.PathLike) -> str:
    """Settings key of the resolution an official file was opened with (paths hashed: no slashes)."""
    return "official-resolution/" + hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:16]


def remembered_resolution(path: str | os.PathLike) -> int | None:
    """The resolution an official file loaded with before, or None."""
    value = settings().value(resolution_key(path))
    return int(value) if value not in (None, "") else None
