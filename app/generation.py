"""Turns state changes into generation jobs and their results back into state.

The state says *what* to show (model, latent, truncation, slab); this controller decides which
parts to compute: only the anchor while a slider moves (PREVIEW), anchor + slab + full volume when
it stops (FULL), only the slab when the slab moves. Parts asked for but not yet delivered stay
wanted, so a newer request that supersedes an older one never loses a part.
"""

from __future__ import annotations

import os
import time

from PySide6.QtCore import QObject, Signal

from engine.checkpoints import load_model
from engine.device import resolve_device
from engine.explore import Explorer
from engine.generate import SampleRequest

from .state import FULL, AppState, Latent, LoadedModel
from .workers import JobRunner


class GenerationController(QObject):
    """Loads models and generates the parts the views need, on the inference thread."""

    model_failed = Signal(str)  # one-line cause
    generation_failed = Signal(str)
    volumes_shown = Signal(str)  # the latent's label, after its volumes reached the state

    def __init__(self, state: AppState, jobs: JobRunner, parent: QObject | None = None):
        super().__init__(parent)
        self.state, self.jobs = state, jobs
        self.device = "auto"
        self.explorer: Explorer | None = None
        self.last_seconds = 0.0
        self._wanted: set[str] = set()
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
        latent = self.state.latent
        if model is None:
            self.explorer = None
        elif latent is not None and latent.z.shape[-1] == model.card.config.latent_dim:
            self._request(self._all_parts())

    def _on_latent(self, latent: Latent, quality: str) -> None:
        self._request(self._all_parts() if quality == FULL else {"anchor"})

    def _on_slab(self, _start: int) -> None:
        # after a volume from a file, the model's parts are gone: a slab move brings them all back
        self._request({"slab"} if "anchor" in self.state.volumes else self._all_parts())

    def _all_parts(self) -> set[str]:
        model = self.state.model
        return {"anchor", "slab", "full"} if model is None or model.hierarchical else {"full"}

    def _request(self, parts: set[str]) -> None:
        state, explorer = self.state, self.explorer
        if state.model is None or state.latent is None or explorer is None:
            return
        parts = (self._wanted | parts) & set(explorer.parts)
        if not parts:
            return
        self._wanted = parts
        latent, slab = state.latent, state.slab_start
        request = SampleRequest(seed=latent.seed, latent=latent.z, truncation=state.truncation, origin=latent.label)
        order = [p for p in ("anchor", "slab", "full", "stitched") if p in parts]
        started = time.perf_counter()

        def work(progress):
            made = {}
            for number, part in enumerate(order):
                progress(number, len(order), f"{latent.label}: {part}")
                made.update(explorer.volumes(request, [part], slab))
            return made

        def done(volumes) -> None:
            self._wanted -= set(volumes)
            self.last_seconds = time.perf_counter() - started
            self.state.set_volumes(volumes)
            self.volumes_shown.emit(latent.label)

        def failed(message: str) -> None:
            self._wanted.clear()
            self.generation_failed.emit(message)

        self.jobs.submit("generate", f"Generating {latent.label}", work, done, failed)
