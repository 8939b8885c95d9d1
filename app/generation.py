"""Turns state changes into generation jobs and their results back into state.

The state says *what* to show (model, latent, truncation, slab); this controller decides which
parts to compute: only the anchor while a slider moves (PREVIEW), anchor + slab + full volume when
it stops (FULL), only the slab when the slab moves. Parts asked for but not yet delivered stay
wanted, so a newer request that supersedes an older one never loses a part. Previews run one at a
time and each is shown: while one runs, only the newest latent waits for the next turn (cancelling
the running preview on every slider step would drop every result and show nothing until release).

Precision: previews run in ``preview_precision`` (bf16 where the device runs it natively), every
part made at FULL quality, and so every export, in ``export_precision`` (exact fp32 by default).
A choice the device cannot run falls back to exact fp32.
"""

from __future__ import annotations

import os
import time

import torch
from PySide6.QtCore import QObject, QTimer, Signal, Slot

from engine.api import (
    EXACT,
    Explorer,
    Part,
    Precision,
    SampleRequest,
    allowed_precisions,
    fast_precision,
    load_model,
    resolve_device,
)

from .state import FULL, PREVIEW, AppState, Latent, LoadedModel
from .workers import JobRunner


def leave_a_core_to_the_ui() -> None:
    """Torch's intra-op threads take every core by default; the UI thread (and a software OpenGL
    renderer) then waits behind them and a moving slider stutters. One core fewer costs little."""
    cores = os.cpu_count() or 1
    if cores > 1 and torch.get_num_threads() > cores - 1:
        torch.set_num_threads(cores - 1)


class GenerationController(QObject):
    """Loads models and generates the parts the views need, on the inference thread."""

    model_failed = Signal(str)  # one-line cause
    generation_failed = Signal(str)
    volumes_shown = Signal(str)  # the latent's label, after its volumes reached the state

    def __init__(self, state: AppState, jobs: JobRunner, parent: QObject | None = None):
        super().__init__(parent)
        self.state, self.jobs = state, jobs
        self.device = "auto"
        self.preview_precision = Precision.AUTO  # auto: the fastest one the device runs natively
        self.export_precision = EXACT
        self.explorer: Explorer | None = None
        self.last_seconds = 0.0
        leave_a_core_to_the_ui()
        self._wanted: set[str] = set()
        self._preview_ticket: int | None = None  # the running preview job
        self._preview_waiting = False  # a newer preview latent waits for it
        self._generate_ticket: int | None = None  # the newest generation job
        self._shown_latent: Latent | None = None  # the latent of the volumes on screen
        self._reverting = False
        jobs.job_finished.connect(self._on_job_finished)
        state.model_changed.connect(self._on_model)
        state.latent_changed.connect(self._on_latent)
        state.truncation_changed.connect(lambda _value: self._request(self._all_parts()))
        state.slab_changed.connect(self._on_slab)

    def open(self, path: str | os.PathLike, resolution: int | None = None, device: str | None = None) -> None:
        """Load a model file on the inference thread; the state changes when it is ready."""
        path, device = os.fspath(path), device or self.device
        self.device = device

        def work(progress):
            progress(0, 0, f"loading {os.path.basename(path)}")
            model = load_model(path, resolution, device=resolve_device(device))
            return LoadedModel(model, path), Explorer(model)

        def done(result) -> None:
            loaded, self.explorer = result
            self._wanted.clear()
            self.state.set_model(loaded)

        self.jobs.submit("load", f"Loading {os.path.basename(path)}", work, done, self.model_failed.emit)

    def _on_model(self, model: LoadedModel | None) -> None:
        self._shown_latent = None
        latent = self.state.latent
        if model is None:
            self.explorer = None
        elif latent is not None and latent.z.shape[-1] == model.card.config.latent_dim:
            self._request(self._all_parts())

    def _on_latent(self, latent: Latent, quality: str) -> None:
        if self._reverting:
            return  # back to the latent on screen: its volumes are there already
        if quality == FULL:
            self._preview_waiting = False
            self._request(self._all_parts())
        elif self._preview_ticket is not None:
            self._preview_waiting = True
        else:
            self._wanted &= {Part.ANCHOR}  # parts of older latents: the FULL request after the preview asks again
            self._preview_ticket = self._request({Part.ANCHOR})

    @Slot(int, str)
    def _on_job_finished(self, ticket: int, outcome: str) -> None:
        if ticket == self._generate_ticket and outcome == "cancelled":
            self._revert_to_shown()
        if ticket == self._preview_ticket:
            self._preview_ticket = None
            if self._preview_waiting:
                self._preview_waiting = False
                QTimer.singleShot(0, self, self._next_preview)  # after the finished job's result is shown

    def _revert_to_shown(self) -> None:
        """After the user cancels a generation, the latent goes back to the one whose volumes are on
        screen, so the seed box, bookmarks and exports name what the views show."""
        self._wanted.clear()
        self._preview_waiting = False
        shown = self._shown_latent
        if shown is None or self.state.latent is shown:
            return
        self._reverting = True
        try:
            self.state.set_latent(shown)
        finally:
            self._reverting = False

    def _next_preview(self) -> None:
        if self.state.quality == PREVIEW and self.state.latent is not None:
            self._on_latent(self.state.latent, PREVIEW)

    def _on_slab(self, _start: int) -> None:
        # after a volume from a file, the model's parts are gone: a slab move brings them all back
        self._request({Part.SLAB} if Part.ANCHOR in self.state.volumes else self._all_parts())

    def precision_for(self, quality: str) -> str:
        """The precision a job of this quality runs in on the loaded model's device."""
        model = self.state.model
        if model is None:
            return EXACT
        device = model.model.device
        chosen = self.preview_precision if quality == PREVIEW else self.export_precision
        if chosen == Precision.AUTO:
            chosen = fast_precision(device) if quality == PREVIEW else EXACT
        return chosen if chosen in allowed_precisions(device) else EXACT

    def _all_parts(self) -> set[str]:
        model = self.state.model
        return {Part.ANCHOR, Part.SLAB, Part.FULL} if model is None or model.hierarchical else {Part.FULL}

    def _request(self, parts: set[str]) -> int | None:
        state, explorer = self.state, self.explorer
        if state.model is None or state.latent is None or explorer is None:
            return None
        parts = (self._wanted | parts) & set(explorer.parts)
        if not parts:
            return None
        self._wanted = parts
        latent, slab = state.latent, state.slab_start
        precision = self.precision_for(PREVIEW if parts == {Part.ANCHOR} and state.quality == PREVIEW else FULL)
        request = SampleRequest(seed=latent.seed, latent=latent.z, truncation=state.truncation, origin=latent.label)
        order = [p for p in (Part.ANCHOR, Part.SLAB, Part.FULL, Part.STITCHED) if p in parts]
        started = time.perf_counter()

        def work(progress):
            made = {}
            for number, part in enumerate(order):
                progress(number, len(order), f"{latent.label}: {part}")
                made.update(explorer.volumes(request, [part], slab, precision))
            return made

        def done(volumes) -> None:
            self._wanted -= set(volumes)
            self.last_seconds = time.perf_counter() - started
            self._shown_latent = latent
            self.state.set_volumes(volumes)
            self.volumes_shown.emit(latent.label)

        def failed(message: str) -> None:
            self._wanted.clear()
            self.generation_failed.emit(message)

        self._generate_ticket = self.jobs.submit("generate", f"Generating {latent.label}", work, done, failed)
        return self._generate_ticket
