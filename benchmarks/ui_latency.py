"""How long the UI thread stalls, and how often each view renders, for the actions a user takes.

Drives the real main window with the bundled demo models through: show the window, open the chest
CT demo, next seed, move the slab, the Bone window preset, the 3D modes, a crosshair move, a slice
slider, the artifact check, switch to the brain MRI model, its next seed and slab, and open a
NIfTI. For each action it prints the UI thread's longest stall (a watchdog timer on the UI thread
fires every 10 ms; a stall is the largest gap between two of its ticks) and the number of renders
of each VTK view (observed on every render window), then a table to paste into docs/benchmarks.md.

It needs an X server (VTK draws through OpenGL); without DISPLAY it starts itself under Xvfb:

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/ui_latency.py [--size 1600x1000] [--repeat 1]

Software OpenGL (llvmpipe) is what Xvfb gives; a GPU desktop renders 10-50x faster.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TICK_MS = 10
QUIET_MS = 500  # an action has ended when nothing rendered and no job ran for this long
TARGET_MS = 300


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1600x1000", help="window size, WIDTHxHEIGHT (default 1600x1000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of the whole sequence; the table keeps the worst")
    return parser.parse_args()


def ensure_display() -> None:
    if os.environ.get("DISPLAY"):
        return
    if shutil.which("xvfb-run") is None:
        sys.exit("error: no DISPLAY and no xvfb-run: install xvfb or run under an X server")
    command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, *sys.argv]
    os.execvp(command[0], command)


class Watchdog:
    """A timer on the UI thread; the longest gap between its ticks is the longest stall."""

    def __init__(self):
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.longest = 0.0
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.last)
        self.last = now

    def reset(self) -> None:
        self.last, self.longest = time.perf_counter(), 0.0

    def stall_ms(self) -> float:
        self._tick()  # a stall still going on when the action ended counts too
        return 1000 * max(0.0, self.longest - TICK_MS / 1000)


class RenderCounter:
    """Counts vtkRenderWindow renders per view (StartEvent fires once per Render)."""

    def __init__(self, views: dict):
        self.counts = dict.fromkeys(views, 0)
        self.last = time.perf_counter()
        for name, pane in views.items():
            window = pane.plotter.ren_win
            window.AddObserver("StartEvent", lambda *_args, name=name: self._count(name))
            window.AddObserver("EndEvent", lambda *_args: self._ended())

    def _count(self, name: str) -> None:
        self.counts[name] += 1
        self.last = time.perf_counter()

    def _ended(self) -> None:
        self.last = time.perf_counter()

    def take(self) -> dict[str, int]:
        counts, self.counts = self.counts, dict.fromkeys(self.counts, 0)
        return counts


def main() -> int:
    args = parse_args()
    ensure_display()
    os.environ["QT_API"] = "pyside6"
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    home = tempfile.mkdtemp(prefix="ui-latency-")
    os.environ["GAN_EXPLORER_HOME"] = home  # fresh settings: first-start layout, no recent files

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    try:
        from app.views.render_queue import render_queue
    except ImportError:  # a version without the render queue (to measure before/after)
        render_queue = None
    from app.volume_files import open_volume
    from engine.demo import demo_models
    from engine.nifti import save_nifti

    chest, brain = (next(p for p in demo_models() if key in p.name) for key in ("chest", "brain"))
    width, height = (int(v) for v in args.size.lower().split("x"))
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(interactive=False)
    errors: list[str] = []
    window.error_reported.connect(errors.append)
    window.resize(width, height)
    hierarchy, artifact = window.hierarchy, window.panels["artifact"]
    views = {f"{part}": pane for part, pane in hierarchy.panes.items()}
    views.update({"stitched": artifact.stitched, "difference": artifact.difference})
    watchdog, renders = Watchdog(), RenderCounter(views)

    def wait(condition, timeout_s: float = 300.0) -> None:
        """Run the event loop until ``condition()`` holds, then until renders and jobs are quiet."""
        loop, started = QEventLoop(), time.perf_counter()

        def quiet() -> bool:
            idle = (time.perf_counter() - max(renders.last, started)) * 1000 > QUIET_MS
            busy = window.jobs.busy() or hierarchy._queued or (render_queue and render_queue()._waiting)
            return idle and not busy and not any(getattr(pane, "pending_3d", False) for pane in views.values())

        def poll() -> None:
            if time.perf_counter() - started > timeout_s:
                errors.append("timed out")
                loop.quit()
            elif condition() and quiet():
                loop.quit()

        poller = QTimer()
        poller.timeout.connect(poll)
        poller.start(20)
        loop.exec()
        poller.stop()

    drawn: set[str] = set()
    hierarchy.rendered.connect(drawn.update)
    results: list[tuple[str, float, float, dict]] = []

    def measure(name: str, action, condition) -> None:
        wait(lambda: True)  # the previous action's aftermath is not this one's
        drawn.clear()
        renders.take()
        watchdog.reset()
        started = time.perf_counter()
        action()
        wait(condition)
        total = max(0.0, renders.last - started)
        results.append((name, watchdog.stall_ms(), total, renders.take()))
        print(f"{name:32s} stall {results[-1][1]:7.0f} ms  {results[-1][3]}", flush=True)

    nifti_dir = Path(home) / "volumes"
    nifti_dir.mkdir()
    latent_panel, view_panel = window.panels["latent"], window.panels["view"]

    def preset_index(name: str) -> int:
        box = view_panel.preset_box
        return next(i for i in range(box.count()) if box.itemText(i).startswith(name))

    def choose_preset(name: str) -> None:
        index = preset_index(name)
        view_panel.preset_box.setCurrentIndex(index)
        view_panel.preset_box.activated.emit(index)

    def set_mode(mode: str) -> None:  # as a user's choice in the Viewing panel's 3D view box
        index = view_panel.mode_box.findData(mode)
        view_panel.mode_box.setCurrentIndex(index)
        view_panel.mode_box.activated.emit(index)

    def run_sequence(first: bool) -> None:
        seed = latent_panel.seed_box.value()

        if first:  # the window's first paints and resizes, before any volume
            measure("show the window", window.show, lambda: window.isVisible())
        measure("open the chest CT demo", lambda: window.open_model(chest), lambda: "full" in drawn)
        save_nifti(window.state.volumes["full"], nifti_dir / "chest.nii.gz", "benchmark input")
        measure("next seed", lambda: latent_panel.seed_box.setValue(seed + 1), lambda: "full" in drawn)
        slab = hierarchy.slab_slider
        measure("move the slab", lambda: slab.setValue(max(0, slab.value() - 2)), lambda: "slab" in drawn)
        measure("W/L preset Bone", lambda: choose_preset("Bone"), lambda: True)
        measure("3D mode: isosurface", lambda: set_mode("isosurface"), lambda: True)
        measure("3D mode: MIP", lambda: set_mode("mip"), lambda: True)
        measure("3D mode: volume rendering", lambda: set_mode("volume"), lambda: True)
        measure("crosshair click", lambda: window.state.set_crosshair(window.state.crosshair + 10), lambda: True)
        axial = window.hierarchy.full.slice_sliders["axial"][0]
        measure("slice slider (axial)", lambda: axial.setValue(axial.value() - 8), lambda: True)
        window.docks["artifact"].raise_()
        measure(
            "artifact check (Compare)", artifact.compare, lambda: artifact.result is not None and artifact.stitched.grid
        )
        window.docks["latent"].raise_()
        measure("switch to the brain MRI demo", lambda: window.open_model(brain), lambda: "full" in drawn)
        measure("next seed (brain)", lambda: latent_panel.seed_box.setValue(seed + 2), lambda: "full" in drawn)
        measure("move the slab (brain)", lambda: slab.setValue(slab.value() + 2), lambda: "slab" in drawn)
        measure(
            "open a NIfTI (chest CT)",
            lambda: open_volume(window.context, nifti_dir / "chest.nii.gz"),
            lambda: "full" in drawn,
        )

    for number in range(args.repeat):
        run_sequence(first=number == 0)
    window.close()

    worst: dict[str, tuple[float, float, dict]] = {}
    for name, stall, total, counts in results:
        previous = worst.get(name)
        if previous is None or stall > previous[0]:
            worst[name] = (stall, total, counts)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"\nWindow {width}x{height}, {os.cpu_count()} cores, load average {load}; renders per view: " + ", ".join(views)
    )
    print("| Action | Longest UI stall (ms) | Until drawn (s) | Renders per view | Max renders of a view |")
    print("|---|---:|---:|---|---:|")
    for name, (stall, total, counts) in worst.items():
        shown = " ".join(str(counts[v]) for v in views)
        print(f"| {name} | {stall:.0f} | {total:.1f} | {shown} | {max(counts.values())} |")
    slow = [name for name, (stall, _t, _c) in worst.items() if stall > TARGET_MS]
    repeated = [name for name, (_s, _t, counts) in worst.items() if max(counts.values()) > 1]
    print(f"\nstalls over {TARGET_MS} ms: {', '.join(slow) or 'none'}")
    print(f"views rendered more than once: {', '.join(repeated) or 'none'}")
    if errors:
        print("errors: " + "; ".join(errors))
    app.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
