"""Background jobs: every forward pass, file read or evaluation runs off the UI thread.

A job is a function ``work(progress) -> result``. It runs on a pool thread; its result or its
one-line error comes back to the UI thread through a callback. Jobs are grouped by ``kind``: a
new job of a kind makes the older ones stale (queued ones never start, a running one stops at its
next ``progress(...)`` call, and late results are dropped), so the newest request always wins.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from engine.api import user_message

INFERENCE, BACKGROUND = "inference", "background"  # one thread each: the model vs. long side jobs
SHUTDOWN_WAIT_S = 3.0  # how long quitting waits for cancelled jobs to reach their next progress report


class Cancelled(Exception):
    """Raised inside a job by ``progress(...)`` once the job was cancelled or superseded."""


class Progress:
    """Handed to a job: report ``progress(done, total, text)``; raises Cancelled when told to stop."""

    def __init__(self, runner: JobRunner, job: _Job):
        self._runner, self._job = runner, job

    @property
    def cancelled(self) -> bool:
        return self._job.cancel.is_set() or not self._runner.is_current(self._job)

    def __call__(self, done: int = 0, total: int = 0, text: str = "") -> None:
        if self.cancelled:
            raise Cancelled
        self._runner._relay.progress.emit(self._job.ticket, int(done), int(total), text)


@dataclass
class _Job:
    kind: str
    ticket: int
    label: str
    work: Callable[[Progress], Any]
    on_done: Callable[[Any], None] | None
    on_error: Callable[[str], None] | None
    cancel: threading.Event


class _Relay(QObject):
    """Carries results from pool threads to the UI thread (queued, since it lives there)."""

    done = Signal(int, object)  # ticket, result
    failed = Signal(int, str)  # ticket, one-line cause
    cancelled = Signal(int)
    progress = Signal(int, int, int, str)  # ticket, done, total, text


class _Runnable(QRunnable):
    def __init__(self, runner: JobRunner, job: _Job):
        super().__init__()
        self.runner, self.job = runner, job

    def run(self) -> None:
        relay = self.runner._relay
        progress = Progress(self.runner, self.job)
        if progress.cancelled:
            relay.cancelled.emit(self.job.ticket)
            return
        relay.progress.emit(self.job.ticket, 0, 0, "")  # "started": the status bar shows the job
        try:
            result = self.job.work(progress)
        except Cancelled:
            relay.cancelled.emit(self.job.ticket)
        except Exception as error:  # a worker must never take the app down
            relay.failed.emit(self.job.ticket, user_message(error))
        else:
            relay.done.emit(self.job.ticket, result)


class JobRunner(QObject):
    """Two single-thread pools (inference, background); newest job of each kind wins."""

    job_started = Signal(int, str)  # ticket, label
    job_progress = Signal(int, int, int, str)  # ticket, done, total, text
    job_finished = Signal(int, str)  # ticket, "done" | "failed" | "cancelled" | "superseded" (by a newer job)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._pools = {}
        for name in (INFERENCE, BACKGROUND):
            pool = QThreadPool(self)
            pool.setMaxThreadCount(1)  # one model user at a time; stale queued jobs skip themselves
            self._pools[name] = pool
        self._tickets = itertools.count(1)
        self._latest: dict[str, int] = {}
        self._jobs: dict[int, _Job] = {}
        self._started: set[int] = set()
        self.shutdown_wait_s = SHUTDOWN_WAIT_S
        self.abandoned = False  # shutdown gave up waiting for a job that had not stopped yet
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_done)
        self._relay.failed.connect(self._on_failed)
        self._relay.cancelled.connect(self._on_cancelled)
        self._relay.progress.connect(self._on_progress)

    def submit(
        self,
        kind: str,
        label: str,
        work: Callable[[Progress], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        pool: str = INFERENCE,
    ) -> int:
        """Queue ``work``; ``on_done(result)`` / ``on_error(message)`` run on the UI thread."""
        ticket = next(self._tickets)
        self._latest[kind] = ticket  # older jobs of the kind are stale now (superseded, not cancelled)
        job = _Job(kind, ticket, label, work, on_done, on_error, threading.Event())
        self._jobs[ticket] = job
        self._pools[pool].start(_Runnable(self, job))
        return ticket

    def is_current(self, job: _Job) -> bool:
        return self._latest.get(job.kind) == job.ticket

    def cancel(self, ticket: int | None = None) -> None:
        """Stop one job (or every job): it ends at its next progress report, its result is dropped."""
        for job in list(self._jobs.values()):
            if ticket is None or job.ticket == ticket:
                job.cancel.set()

    def busy(self, kind: str | None = None) -> bool:
        return any(kind is None or job.kind == kind for job in self._jobs.values())

    def label(self, ticket: int) -> str:
        job = self._jobs.get(ticket)
        return job.label if job else ""

    def shutdown(self, wait_s: float | None = None) -> bool:
        """Cancel everything and wait up to ``wait_s`` (default ``shutdown_wait_s``) for the running
        jobs to stop; later results are ignored. True when every job stopped in time.

        A job stops at its next ``progress(...)`` call, so one inside a long step can outlast the
        wait: then ``abandoned`` is set, and the app ends the process without waiting for it.
        """
        self.cancel()
        self._latest.clear()
        for pool in self._pools.values():
            pool.clear()
        deadline = time.monotonic() + (self.shutdown_wait_s if wait_s is None else wait_s)
        stopped = [
            pool.waitForDone(max(0, round((deadline - time.monotonic()) * 1000))) for pool in self._pools.values()
        ]
        self._jobs.clear()
        self.abandoned = not all(stopped)
        return not self.abandoned

    def _finish(self, ticket: int, outcome: str) -> _Job | None:
        job = self._jobs.pop(ticket, None)
        self._started.discard(ticket)
        if job is not None:
            self.job_finished.emit(ticket, outcome)
        return job

    @Slot(int, object)
    def _on_done(self, ticket: int, result: Any) -> None:
        job = self._finish(ticket, "done")
        if job is not None and self.is_current(job) and not job.cancel.is_set() and job.on_done:
            job.on_done(result)

    @Slot(int, str)
    def _on_failed(self, ticket: int, message: str) -> None:
        job = self._finish(ticket, "failed")
        if job is not None and self.is_current(job) and job.on_error:
            job.on_error(message)

    @Slot(int)
    def _on_cancelled(self, ticket: int) -> None:
        # a job stopped because a newer one of its kind came (e.g. every frame of a Play) was not
        # cancelled by anyone: the status bar must not say so
        job = self._jobs.get(ticket)
        self._finish(ticket, "cancelled" if job is None or job.cancel.is_set() else "superseded")

    @Slot(int, int, int, str)
    def _on_progress(self, ticket: int, done: int, total: int, text: str) -> None:
        job = self._jobs.get(ticket)
        if job is None:
            return
        if ticket not in self._started:
            self._started.add(ticket)
            self.job_started.emit(ticket, job.label)
        if done or total or text:
            self.job_progress.emit(ticket, done, total, text)
