"""Evaluate the current model against a folder of real scans, as a background job with progress.

The same evaluation as ``python -m engine evaluate`` (engine.metrics.evaluate): FID/MMD over
extractor features, MS-SSIM diversity, seam scores, intensity statistics, reconstruction quality.
The readable table appears when it is done and the JSON report is written where the user said.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.api import EvaluationSettings, evaluate, format_table, write_report

from ..context import AppContext
from ..settings import user_data_dir
from ..workers import BACKGROUND

EXTRACTORS = {
    "slices": "2.5-D slices (random features, no weights needed)",
    "none": "None (no FID / MMD)",
    "med3d": "Med3D ResNet-50 (MedicalNet weights file)",
}


def run_evaluation(settings: EvaluationSettings, report_path: str | os.PathLike, progress) -> tuple[dict, str]:
    """The job: evaluate with progress, write the JSON report; returns (report, readable table)."""
    report_path = Path(report_path)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report = evaluate(settings, progress=progress)
    write_report(report, report_path)
    return report, format_table(report)


class EvaluateDialog(QDialog):
    """Real folder, sample count, extractor (+ weights), report path; Run, Cancel, the table."""

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.ticket: int | None = None
        self.report: dict | None = None
        self.setWindowTitle("Evaluate model")
        self.resize(720, 560)
        self.real_edit = QLineEdit()
        self.real_edit.setPlaceholderText("folder of real NIfTI scans, or preprocessed .npy arrays")
        self.samples_box = QSpinBox()
        self.samples_box.setRange(2, 100_000)
        self.samples_box.setValue(16)
        self.samples_box.setToolTip("Generated volumes (seeds 0, 1, ...); the HA-GAN paper used 2048")
        self.extractor_box = QComboBox()
        for kind, text in EXTRACTORS.items():
            self.extractor_box.addItem(text, kind)
        self.weights_edit = QLineEdit()
        self.weights_edit.setPlaceholderText("resnet_50*.pth from MedicalNet")
        self.report_edit = QLineEdit()
        self.progress = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.table = QPlainTextEdit()
        self.table.setReadOnly(True)
        self.table.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.table.setPlaceholderText("The results appear here.")
        self.buttons = QDialogButtonBox()
        self.run_button = self.buttons.addButton("Run", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton("Cancel evaluation", QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.cancel_button.setEnabled(False)

        form = QFormLayout()
        form.addRow("Real scans", self._with_browse(self.real_edit, self._browse_real))
        form.addRow("Samples", self.samples_box)
        form.addRow("Features", self.extractor_box)
        self.weights_row = self._with_browse(self.weights_edit, self._browse_weights)
        form.addRow("Weights", self.weights_row)
        form.addRow("Report", self._with_browse(self.report_edit, self._browse_report))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.buttons)

        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        self.extractor_box.currentIndexChanged.connect(self._on_extractor)
        context.jobs.job_progress.connect(self._on_progress)
        context.jobs.job_finished.connect(self._on_finished)
        context.state.model_changed.connect(lambda _model: self._default_report())
        self._on_extractor()
        self._default_report()

    def _with_browse(self, edit: QLineEdit, browse) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(edit, 1)
        button = QPushButton("Browse…")
        button.clicked.connect(browse)
        layout.addWidget(button)
        return row

    def _default_report(self) -> None:
        model = self.context.state.model
        name = Path(model.path).stem if model else "model"
        self.report_edit.setText(str(user_data_dir() / "evaluations" / f"{name}-evaluation.json"))

    def _on_extractor(self) -> None:
        self.weights_row.setEnabled(self.extractor_box.currentData() == "med3d")

    def _browse_real(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of real scans", self.real_edit.text())
        if folder:
            self.real_edit.setText(folder)

    def _browse_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Med3D weights", "", "PyTorch weights (*.pth *.pt);;All files (*)")
        if path:
            self.weights_edit.setText(path)

    def _browse_report(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Report", self.report_edit.text(), "JSON (*.json)")
        if path:
            self.report_edit.setText(path)

    def settings(self) -> EvaluationSettings:
        """The evaluation as the form describes it, for the current model."""
        model = self.context.state.model
        official = not str(model.path).endswith(".safetensors")
        kind = self.extractor_box.currentData()
        samples = self.samples_box.value()
        return EvaluationSettings(
            checkpoint=str(model.path),
            real=self.real_edit.text().strip(),
            resolution=model.resolution if official else None,
            samples=samples,
            extractor=kind,
            extractor_weights=(self.weights_edit.text().strip() or None) if kind == "med3d" else None,
            device=self.context.generation.device,
            seam_samples=min(8, samples),
            msssim_pairs=min(32, samples // 2),
            reconstructions=min(8, samples),
            cache_dir=str(user_data_dir() / "evaluate_cache"),
            progress=False,  # no tqdm bars on the app's stderr: the dialog shows progress
        )

    @Slot()
    def start(self) -> None:
        """Submit the evaluation as a background job (a running one is superseded)."""
        if self.context.state.model is None:
            self.context.report_error("open a model first")
            return
        if not self.real_edit.text().strip():
            self.context.report_error("choose the folder of real scans to compare with")
            return
        if self.extractor_box.currentData() == "med3d" and not self.weights_edit.text().strip():
            self.context.report_error("Med3D features need its weights file (resnet_50*.pth from MedicalNet)")
            return
        settings, report_path = self.settings(), self.report_edit.text().strip()
        self.report = None
        self.table.clear()
        self.progress.setRange(0, 0)
        self.status.setText("Starting…")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.ticket = self.context.jobs.submit(
            "evaluate",
            f"Evaluating {Path(settings.checkpoint).name}",
            lambda progress: run_evaluation(settings, report_path, progress),
            self._done,
            self._failed,
            pool=BACKGROUND,
        )

    def cancel(self) -> None:
        if self.ticket is not None:
            self.context.jobs.cancel(self.ticket)

    def _done(self, result) -> None:
        self.report, table = result
        self.table.setPlainText(table)
        seconds = self.report.get("timings_s", {}).get("total", 0)
        self.status.setText(f"Done in {seconds:.1f} s; report written to {self.report_edit.text().strip()}")

    def _failed(self, message: str) -> None:
        self.status.setText(f"Failed: {message}")
        self.context.report_error(message)

    @Slot(int, int, int, str)
    def _on_progress(self, ticket: int, done: int, total: int, text: str) -> None:
        if ticket != self.ticket:
            return
        if total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        if text:
            self.status.setText(text)

    @Slot(int, str)
    def _on_finished(self, ticket: int, outcome: str) -> None:
        if ticket != self.ticket:
            return
        self.ticket = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if outcome == "done" else 0)
        if outcome == "cancelled":
            self.status.setText("Cancelled.")
