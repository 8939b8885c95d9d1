"""The jobs in the status bar: the newest running job's text, progress and Cancel.

Jobs run in two pools at once, so several can be running: the bar keeps each one's last text and
progress, shows the most recently started, and when that one ends falls back to the newest job
still running. Only when nothing runs is it hidden.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Slot
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar

from .workers import JobRunner


@dataclass
class _RunningJob:
    name: str  # the job's label, for "… cancelled"
    text: str  # what the bar says: the label, then the job's latest progress text
    done: int = 0
    total: int = 0  # 0: no total reported yet (a busy bar)


class JobStatus(QObject):
    """Label, progress bar and Cancel button in ``status_bar``, following ``jobs``."""

    def __init__(self, jobs: JobRunner, status_bar: QStatusBar, show_message: Callable[[str], None]):
        super().__init__(status_bar)
        self.jobs, self._show_message = jobs, show_message
        self.label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running job (Esc)")
        self.cancel_button.setShortcut(QKeySequence("Esc"))
        self.cancel_button.clicked.connect(self.cancel_shown)
        for widget in (self.label, self.progress, self.cancel_button):
            status_bar.addPermanentWidget(widget)
            widget.hide()
        self._running: dict[int, _RunningJob] = {}  # by ticket, in the order the jobs started
        jobs.job_started.connect(self._on_started)
        jobs.job_progress.connect(self._on_progress)
        jobs.job_finished.connect(self._on_finished)

    @property
    def shown_job(self) -> int | None:
        """The ticket of the job the bar shows (the most recently started one still running)."""
        return next(reversed(self._running), None)

    def cancel_shown(self) -> None:
        ticket = self.shown_job
        if ticket is not None:
            self.jobs.cancel(ticket)

    @Slot(int, str)
    def _on_started(self, ticket: int, label: str) -> None:
        self._running[ticket] = _RunningJob(label, label + "…")
        self._show()

    @Slot(int, int, int, str)
    def _on_progress(self, ticket: int, done: int, total: int, text: str) -> None:
        job = self._running.get(ticket)
        if job is None:
            return
        if total:
            job.done, job.total = done, total
        if text:
            job.text = text
        if ticket == self.shown_job:
            self._show()

    @Slot(int, str)
    def _on_finished(self, ticket: int, outcome: str) -> None:
        job = self._running.pop(ticket, None)
        self._show()
        if outcome == "cancelled" and job is not None:
            self._show_message(f"{job.name} cancelled")

    def _show(self) -> None:
        ticket = self.shown_job
        widgets = (self.label, self.progress, self.cancel_button)
        if ticket is None:
            for widget in widgets:
                widget.hide()
            return
        job = self._running[ticket]
        self.label.setText(job.text)
        self.progress.setRange(0, job.total)  # (0, 0): busy until the job reports a total
        self.progress.setValue(job.done)
        for widget in widgets:
            widget.show()
