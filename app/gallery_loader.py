"""Fills a gallery page with thumbnails: memory hits at once, then anchors, then full resolution, in jobs.

A page is a list of seeds and one ``ThumbnailSpec``, made in the precision of the app's previews
(bf16 where the processor runs it natively, unless chosen otherwise in the Model panel). Thumbnails
already in the memory cache are delivered before ``load`` returns (a revisit is instant). The rest
come from jobs on the inference thread, a few seeds each, so that a volume the user asks for waits
at most for one small job: all anchors of the page first (hierarchical models), then the
full-resolution slices. A new page supersedes the old one: its running job stops at its next seed,
its queued jobs never start, and late thumbnails are dropped. Each thumbnail reaches the UI thread
as soon as it is made.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from engine.api import DEFAULT_MEMORY_BYTES, Part, Thumbnail, ThumbnailCache, ThumbnailMaker, ThumbnailSpec

from .settings import user_data_dir
from .workers import INFERENCE, JobRunner

SEEDS_PER_JOB = 4
JOB_KIND = "gallery"


class GalleryLoader(QObject):
    """Thumbnails for the newest page; ``thumbnail_ready`` per thumbnail, ``page_done`` when all are in."""

    thumbnail_ready = Signal(int, object)  # page number, Thumbnail
    page_done = Signal(int)
    failed = Signal(str)  # one-line cause
    _made = Signal(int, object)  # from the worker thread (queued to the UI thread)

    def __init__(
        self,
        jobs: JobRunner,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        parent: QObject | None = None,
        precision: Callable[[], str] = lambda: "auto",
    ):
        super().__init__(parent)
        self.jobs = jobs
        self.precision = precision  # asked at each page: the previews' precision, which the user may change
        self.cache = ThumbnailCache(user_data_dir() / "thumbnails", memory_bytes)
        self.maker: ThumbnailMaker | None = None
        self.page = 0
        self._plan: list[tuple[str, list[int]]] = []  # (level, seeds) still to make for the current page
        self._ticket: int | None = None
        self._made.connect(self._deliver)

    def set_model(self, model) -> None:
        """Thumbnails of this model (engine model object; None: no model)."""
        self.cancel()
        self.maker = None if model is None else ThumbnailMaker(model, self.cache)

    def load(self, seeds: list[int], spec: ThumbnailSpec) -> int:
        """Start filling a page; returns its number (stale numbers' thumbnails never arrive)."""
        self.cancel()
        page = self.page
        if self.maker is None:
            return page
        spec = dataclasses.replace(spec, precision=self.precision())
        levels = (Part.ANCHOR, Part.FULL) if self.maker.hierarchical else (Part.FULL,)
        missing = {level: [] for level in levels}
        for seed in seeds:
            for level in reversed(levels):  # the best level in memory is shown at once
                found = self.maker.cached(seed, dataclasses.replace(spec, level=level), memory_only=True)
                if found is not None:
                    self.thumbnail_ready.emit(page, found)
                    break
                missing[level].append(seed)
        self._plan = [
            (level, chunk[i : i + SEEDS_PER_JOB])
            for level, chunk in missing.items()
            for i in range(0, len(chunk), SEEDS_PER_JOB)
        ]
        self._spec, self._total, self._done = spec, sum(len(s) for _, s in self._plan), 0
        self._next(page)
        return page

    def cancel(self) -> None:
        """Forget the current page: its jobs stop and its thumbnails are dropped."""
        self.page += 1
        self._plan = []
        if self._ticket is not None:
            self.jobs.cancel(self._ticket)
            self._ticket = None

    def _next(self, page: int) -> None:
        if page != self.page:
            return
        if not self._plan:
            self.page_done.emit(page)
            return
        level, seeds = self._plan.pop(0)
        spec, maker, total = dataclasses.replace(self._spec, level=level), self.maker, self._total
        start = self._done
        self._done += len(seeds)

        def work(progress):
            for number, thumbnail in enumerate(maker.make(seeds, spec, check=lambda: progress())):
                self._made.emit(page, thumbnail)
                progress(start + number + 1, total, f"Gallery: {level} seed {thumbnail.seed}")

        label = f"Gallery: {level} thumbnails"
        after = lambda _result: self._next(page)  # noqa: E731
        self._ticket = self.jobs.submit(JOB_KIND, label, work, after, self._failed, INFERENCE)

    def _deliver(self, page: int, thumbnail: Thumbnail) -> None:
        if page == self.page:
            self.thumbnail_ready.emit(page, thumbnail)

    def _failed(self, message: str) -> None:
        self._plan = []
        self.failed.emit(message)
