"""The README's gallery, directions and A/B comparison screenshots, made by driving the app on the chest CT demo model.

xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/explore_screenshots.py resources/images/
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["QT_API"] = "pyside6"
os.environ["GAN_EXPLORER_HOME"] = tempfile.mkdtemp(prefix="explore-shots-")  # default layout, no old names

from PySide6.QtCore import QItemSelectionModel  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.main_window import MainWindow  # noqa: E402
from engine.demo import default_model  # noqa: E402


def wait(app: QApplication, done, timeout: float = 900.0) -> None:
    end = time.perf_counter() + timeout
    while not done():
        app.processEvents()
        time.sleep(0.005)
        if time.perf_counter() > end:
            raise TimeoutError("the app did not get there in time")


def main(folder: str) -> int:
    out = Path(folder)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(interactive=False)
    window.resize(1600, 1000)
    window.show()
    rendered: list[set] = []
    window.hierarchy.rendered.connect(lambda parts: rendered.append(set(parts)))
    window.open_model(default_model())
    wait(app, lambda: any("full" in parts for parts in rendered))

    view = window.gallery
    filled: list[int] = []
    view.page_filled.connect(filled.append)
    window.tabs.setCurrentWidget(view)
    wait(app, lambda: filled)
    for seed in (2, 5, 6):  # a selection, as for "Add to interpolation"
        view.list.selectionModel().select(view.list.model().index(seed, 0), QItemSelectionModel.SelectionFlag.Select)
    app.processEvents()
    window.grab().save(str(out / "gallery.png"), "PNG")

    window.tabs.setCurrentWidget(window.hierarchy)
    window.docks["directions"].raise_()
    panel = window.panels["directions"]
    wait(app, lambda: panel.sliders)
    panel.name_edits[1].setText("body size & lungs")
    panel.name_edits[1].editingFinished.emit()
    rendered.clear()
    panel.set_alpha(1, 2.0)
    wait(app, lambda: any("full" in parts for parts in rendered))
    time.sleep(0.5)
    app.processEvents()
    window.grab().save(str(out / "directions.png"), "PNG")

    panel.reset()
    compare = window.open_compare()
    compare.resize(1600, 900)
    compare.seed_boxes["b"].setValue(2)
    compare.compare()
    wait(app, lambda: "difference" in compare.volumes)
    time.sleep(0.5)
    app.processEvents()
    compare.grab().save(str(out / "compare.png"), "PNG")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
