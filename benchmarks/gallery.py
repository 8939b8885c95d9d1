"""The gallery filling pages of the chest CT demo model: times to the first thumbnail, to a page of anchors and
to the page at full resolution, the UI thread's longest stall meanwhile, and the thumbnail cache's memory.

xvfb-run -a python benchmarks/gallery.py [--model FILE] [--per-page 16] [--pages 2]

The gallery runs as in the app (the same view, loader and job threads) with an empty thumbnail cache
in a temporary user folder. A watchdog timer on the UI thread ticks every 10 ms; the longest gap
between ticks, less 10 ms, is the longest time the UI could not respond while the page filled.
Then it leaves the first page and comes back: the revisit is served from the memory cache.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["GAN_EXPLORER_HOME"] = tempfile.mkdtemp(prefix="gallery-bench-")  # a cold cache

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from app.context import AppContext  # noqa: E402
from app.generation import GenerationController  # noqa: E402
from app.state import AppState, LoadedModel  # noqa: E402
from app.views.gallery import GalleryView  # noqa: E402
from app.workers import JobRunner  # noqa: E402
from engine.checkpoints import load_model  # noqa: E402
from engine.demo import default_model  # noqa: E402

TICK_MS = 10


class Watchdog:
    """The longest gap between UI-thread timer ticks, beyond the tick interval."""

    def __init__(self):
        self.timer = QTimer(interval=TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.reset()
        self.timer.start()

    def reset(self) -> None:
        self.last, self.longest = time.perf_counter(), 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.last - TICK_MS / 1000)
        self.last = now


def wait(app: QApplication, done, timeout: float = 600.0) -> None:
    end = time.perf_counter() + timeout
    while not done():
        app.processEvents()
        time.sleep(0.002)
        if time.perf_counter() > end:
            raise TimeoutError("the page did not fill in time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model file (default: the chest CT demo)")
    parser.add_argument("--per-page", type=int, choices=(9, 16, 36, 64), default=16)
    parser.add_argument("--pages", type=int, default=2, help="pages to fill one after the other (default 2)")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(sys.argv)
    state, jobs, host = AppState(), JobRunner(), QWidget()
    generation = GenerationController(state, jobs)  # also leaves a core to the UI thread, as in the app
    context = AppContext(state, jobs, generation, host, lambda m: print(f"error: {m}"), lambda _m: None)
    view = GalleryView(context)
    view.size_box.setCurrentIndex(view.size_box.findData(args.per_page))
    view.resize(1200, 1000)
    view.show()
    path = args.model or default_model()
    model = load_model(path, device="cpu", parts=("G",))
    print(f"{model.card.name}: {args.per_page} seeds per page, {os.cpu_count()} CPU cores, torch threads as in the app")

    events: dict[str, float] = {}
    filled: list[int] = []
    view.page_filled.connect(filled.append)

    def on_thumbnail(_page, _thumbnail) -> None:
        now = time.perf_counter()
        events.setdefault("first", now)
        if len(view.thumbnails) == len(view.seeds):
            events.setdefault("all", now)

    view.loader.thumbnail_ready.connect(on_thumbnail)
    watchdog = Watchdog()
    for page in range(args.pages):
        events.clear()
        count = len(filled)
        watchdog.reset()
        started = time.perf_counter()
        if page == 0:
            state.set_model(LoadedModel(model, str(path)))  # the view loads its first page
        else:
            view.step_page(+1)
        wait(app, lambda count=count: len(filled) > count)
        full = time.perf_counter() - started
        print(
            f"page {page + 1} (seeds {view.seeds[0]}-{view.seeds[-1]}): first thumbnail "
            f"{events['first'] - started:.2f} s, every seed shown (anchors) {events['all'] - started:.2f} s, "
            f"all at full resolution {full:.2f} s; longest UI stall {1000 * watchdog.longest:.0f} ms"
        )
    watchdog.reset()
    started = time.perf_counter()
    view.show_page(0)
    levels = lambda: [t.level for t in view.thumbnails.values()]  # noqa: E731
    wait(app, lambda: levels() == ["full"] * len(view.seeds))
    print(
        f"revisit of page 1: every seed at full resolution after {1000 * (time.perf_counter() - started):.0f} ms "
        f"(memory cache); longest UI stall {1000 * watchdog.longest:.0f} ms"
    )
    cache = view.loader.cache
    print(
        f"thumbnail cache: memory bound {cache.memory_bytes / 2**20:.0f} MiB (LRU), holding "
        f"{cache.used_bytes / 2**20:.2f} MiB now; disk bound {cache.disk_bytes / 2**20:.0f} MiB in {cache.folder}"
    )
    view.shutdown()
    jobs.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
