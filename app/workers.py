"""Background jobs: model loading and generation run off the UI thread; the newest request wins."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from engine.checkpoints import load_model
from engine.device import resolve_device
from engine.errors import EngineError
from engine.generate import SampleRequest, sample_volume
from engine.model import HAGANModel

LOAD, GENERATE = "load", "generate"


def one_line(error: BaseException) -> str:
    """The message a user sees: the engine's own line, or the exception's type and first line."""
    if isinstance(error, EngineError):
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    lines = text.strip().splitlines()
    return lines[0] if lines else type(error).__name__


class _Relay(QObject):
    """Carries results from pool threads to the UI thread (queued, since it lives there)."""

    done = Signal(str, int, object)  # kind, ticket, result
    failed = Signal(str, int, str)  # kind, ticket, message


class _Job(QRunnable):
    """Runs one piece of work unless a newer request has made it stale before it starts."""

    def __init__(self, kind: str, ticket: int, work: Callable[[], Any], relay: _Relay, is_current: Callable[[], bool]):
        super().__init__()
        self.kind, self.ticket, self.work, self.relay, self.is_current = kind, ticket, work, relay, is_current

    def run(self) -> None:
        if not self.is_current():
            return
        try:
            result = self.work()
        except Exception as error:  # a worker must never take the app down
            self.relay.failed.emit(self.kind, self.ticket, one_line(error))
        else:
            self.relay.done.emit(self.kind, self.ticket, result)


class Jobs(QObject):
    """One background thread for model loading and generation, with stale results dropped."""

    model_loaded = Signal(object, str)  # HAGANModel, path
    volume_ready = Signal(int, object)  # seed, Volume
    failed = Signal(str)  # one-line cause

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)  # one forward pass at a time; queued stale jobs skip themselves
        self._latest = {LOAD: 0, GENERATE: 0}
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_done)
        self._relay.failed.connect(self._on_failed)

    def load(self, path: str | os.PathLike, resolution: int | None = None) -> None:
        """Load a model file on the worker thread, on the best available device."""
        self._latest[GENERATE] += 1  # volumes of the previous model are stale now
        ticket = self._next(LOAD)
        path = os.fspath(path)
        self._submit(LOAD, ticket, lambda: (load_model(path, resolution, device=resolve_device("auto")), path))

    def generate(self, model: HAGANModel, seed: int) -> None:
        """Generate the full volume for one seed on the worker thread."""
        ticket = self._next(GENERATE)
        self._submit(GENERATE, ticket, lambda: (seed, sample_volume(model, SampleRequest(seed=seed))))

    def shutdown(self) -> None:
        """Drop queued jobs and wait for the running one; later results are ignored."""
        for kind in self._latest:
            self._latest[kind] += 1
        self._pool.clear()
        self._pool.waitForDone()

    def _next(self, kind: str) -> int:
        self._latest[kind] += 1
        return self._latest[kind]

    def _submit(self, kind: str, ticket: int, work: Callable[[], Any]) -> None:
        self._pool.start(_Job(kind, ticket, work, self._relay, lambda: self._latest[kind] == ticket))

    @Slot(str, int, object)
    def _on_done(self, kind: str, ticket: int, result: Any) -> None:
        if ticket != self._latest[kind]:
            return
        if kind == LOAD:
            self.model_loaded.emit(*result)
        else:
            self.volume_ready.emit(*result)

    @Slot(str, int, str)
    def _on_failed(self, kind: str, ticket: int, message: str) -> None:
        if ticket == self._latest[kind]:
            self.failed.emit(message)
