"""The main window: the hierarchy view in the middle, docked panels around it, jobs in the status bar."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QFileDialog,
    QFrame,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QTabBar,
    QTabWidget,
    QWidget,
)

from engine.api import Part

from .context import AppContext
from .dicom_menu import add_dicom_actions
from .generation import GenerationController
from .job_status import JobStatus
from .keys import FieldKeys, keys_dialog
from .settings import settings
from .state import AppState, LoadedModel
from .views.gallery import GalleryView
from .views.hierarchy import HierarchyView
from .volume_files import NIFTI_FILTER, export_volume, open_volume
from .workers import JobRunner
from .workspace import WORKSPACE_FILES, WorkspaceController, last_workspace_path

TITLE = "GAN Volume Explorer"
LEFT, RIGHT = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea


class MainWindow(QMainWindow):
    """Owns the state, the job runner and the generation controller; panels and views listen."""

    error_reported = Signal(str)  # one-line cause, also shown in a dialog when interactive

    def __init__(self, interactive: bool = True, parent: QWidget | None = None):
        super().__init__(parent)
        self.interactive = interactive  # False: errors are only signalled (screenshots, scripts)
        self._closed = False
        self.setWindowTitle(TITLE)
        screen = QGuiApplication.primaryScreen()
        available = screen.availableGeometry() if screen else None
        self.resize(*(int(v * 0.95) for v in (available.width(), available.height())) if available else (1400, 900))
        self.state = AppState(self)
        self._field_keys = FieldKeys(self)  # keys the focused text field or list uses stay there
        QApplication.instance().installEventFilter(self._field_keys)
        self.jobs = JobRunner(self)
        self.generation = GenerationController(self.state, self.jobs, self)
        self.context = AppContext(self.state, self.jobs, self.generation, self, self.report_error, self.show_message)
        self.hierarchy = HierarchyView(self.state, self)
        self.gallery = GalleryView(self.context, self)
        self.tabs = QTabWidget()  # the hierarchy view and the seed gallery share the middle
        self.tabs.addTab(self.hierarchy, "Hierarchy")
        self.tabs.addTab(self.gallery, "Gallery")
        self.gallery.open_requested.connect(lambda _seed: self.tabs.setCurrentWidget(self.hierarchy))
        self.setCentralWidget(self.tabs)
        self.plotter = self.hierarchy.full.plotter  # the main 3D widget (tests, screenshots)
        self.panels: dict[str, QWidget] = {}
        self.compare_window = None
        self.docks: dict[str, QDockWidget] = {}
        self._build_menus()
        self._build_status_bar()
        self._add_panels()
        self.workspace = WorkspaceController(self.context, self)  # after the panels: it restores last
        self._offer_last_workspace()
        self.generation.model_failed.connect(self.report_error)
        self.generation.generation_failed.connect(self.report_error)
        self.state.model_changed.connect(self._on_model_changed)
        self._layout_restored = self._restore_layout()

    # -- panels -------------------------------------------------------------------------------

    def _add_panels(self) -> None:
        """Every dock panel, in the order they appear; each lives in its own file under app/panels."""
        from .panels.artifact_panel import ArtifactPanel
        from .panels.directions_panel import DirectionsPanel
        from .panels.encode_panel import EncodePanel
        from .panels.interpolation import InterpolationPanel
        from .panels.latent_panel import LatentPanel
        from .panels.model_panel import ModelPanel
        from .panels.view_panel import ViewPanel

        # one column of tabbed docks: the three panes get most of the width and each panel the
        # column's full height; any dock can be dragged out and resized
        self.add_panel("model", ModelPanel(self.context), "Model", LEFT)
        self.add_panel("latent", LatentPanel(self.context), "Latent", LEFT, tab_with="model")
        self.add_panel("interpolation", InterpolationPanel(self.context), "Interpolation", LEFT, tab_with="model")
        self.add_panel("directions", DirectionsPanel(self.context), "Directions", LEFT, tab_with="model")
        self.add_panel("view", ViewPanel(self.context), "Viewing", LEFT, tab_with="model")
        self.add_panel("artifact", ArtifactPanel(self.context), "Artifact check", LEFT, tab_with="model")
        self.add_panel("encode", EncodePanel(self.context), "Encode", LEFT, tab_with="model")
        self.docks["latent"].raise_()  # what users reach for first; the demo model opens by itself

        def open_train() -> None:
            from .panels.train import open_train_dialog  # a dialog made on first use (loads pyqtgraph)

            open_train_dialog(self)

        self.tools_menu.addAction("&Train model…").triggered.connect(open_train)
        self.tools_menu.addAction("&Compare A/B…").triggered.connect(self.open_compare)

    def open_compare(self):
        """The A/B comparison window, made on first use (it holds three more 3D views)."""
        from .compare_window import CompareWindow

        if self.compare_window is None:
            self.compare_window = CompareWindow(self.context, self)
        self.compare_window.show()
        self.compare_window.raise_()
        return self.compare_window

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        bars = self.findChildren(QTabBar)
        for bar in bars:  # dock tabs: whole names, scroll arrows when they do not fit
            bar.setElideMode(Qt.TextElideMode.ElideNone)
            bar.setUsesScrollButtons(True)
        if not self._layout_restored:  # first start: a narrow side column, the panes get the width
            self._layout_restored = True
            tabs = max((sum(bar.tabSizeHint(i).width() for i in range(bar.count())) for bar in bars), default=0)
            docks = list(self.docks.values())
            width = max(300, tabs + 4)  # every tab's name whole (or the panels' minimum, if wider)
            self.resizeDocks(docks, [width] * len(docks), Qt.Orientation.Horizontal)

    def add_panel(
        self, name: str, widget: QWidget, title: str, area: Qt.DockWidgetArea, tab_with: str | None = None
    ) -> QDockWidget:
        """Dock ``widget`` in ``area``, as a tab of the panel ``tab_with`` when given."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{name}")  # saveState needs names
        scroll = QScrollArea()  # tall panels scroll instead of forcing a tall window
        scroll.setWidget(widget)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # only vertical scrolling
        scroll.setMinimumWidth(widget.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        dock.setWidget(scroll)
        self.addDockWidget(area, dock)
        if tab_with in self.docks:
            self.tabifyDockWidget(self.docks[tab_with], dock)
            self.docks[tab_with].raise_()
        self.panels[name], self.docks[name] = widget, dock
        self.view_menu.addAction(dock.toggleViewAction())
        return dock

    # -- menus and status bar -------------------------------------------------------------------

    def _build_menus(self) -> None:
        bar = self.menuBar()
        self.file_menu: QMenu = bar.addMenu("&File")
        self.view_menu: QMenu = bar.addMenu("&View")
        self.tools_menu: QMenu = bar.addMenu("&Tools")
        self.help_menu: QMenu = bar.addMenu("&Help")

        open_model = QAction("&Open model…", self, shortcut=QKeySequence.StandardKey.Open)
        open_model.triggered.connect(self.choose_model)
        screenshot = QAction("Save &screenshot…", self, shortcut=QKeySequence("Ctrl+Shift+S"))
        screenshot.triggered.connect(self.choose_screenshot)
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        open_volume = QAction("Open &volume (NIfTI)…", self, shortcut=QKeySequence("Ctrl+Shift+O"))
        open_volume.triggered.connect(self.choose_volume)
        self.file_menu.addActions([open_model, open_volume])
        self.file_menu.addSeparator()
        save_workspace = self.file_menu.addAction("Save &workspace…")
        save_workspace.triggered.connect(self.choose_workspace_to_save)
        self.file_menu.addAction("Open wor&kspace…").triggered.connect(self.choose_workspace_to_open)
        self.reopen_action = self.file_menu.addAction("Reopen &last workspace")
        self.reopen_action.triggered.connect(self.reopen_last_workspace)
        self.reopen_action.setEnabled(False)
        self.file_menu.addSeparator()
        export = self.file_menu.addMenu("&Export as NIfTI")
        for part, text in ((Part.FULL, "&Full volume…"), (Part.ANCHOR, "&Anchor…"), (Part.SLAB, "&Slab…")):
            action = export.addAction(text)
            action.triggered.connect(lambda _checked=False, part=part: self.choose_export(part))
        add_dicom_actions(self, self.file_menu)
        self.file_menu.addAction(screenshot)
        self.file_menu.addSeparator()
        self.file_menu.addAction(quit_action)

        reset = QAction("&Reset view (under the mouse)", self, shortcut=QKeySequence("R"))
        reset.triggered.connect(self.hierarchy.reset_view)
        reset_all = QAction("Reset &all views", self, shortcut=QKeySequence("Shift+R"))
        reset_all.triggered.connect(self.hierarchy.reset_cameras)
        up = QAction("Slice &up", self, shortcut=QKeySequence("Up"))
        up.triggered.connect(lambda: self.hierarchy.step_slice(+1))
        down = QAction("Slice &down", self, shortcut=QKeySequence("Down"))
        down.triggered.connect(lambda: self.hierarchy.step_slice(-1))
        for action in (reset, reset_all, up, down):
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        stacked = QAction("Stack the three panes &vertically", self, checkable=True)
        stacked.toggled.connect(lambda on: self.state.set_layout("stacked" if on else "side by side"))
        self.state.layout_changed.connect(lambda layout: stacked.setChecked(layout == "stacked"))
        self.view_menu.addActions([reset, reset_all, up, down, stacked])
        self.view_menu.addSeparator()

        keys = QAction("&Keys and mouse", self)
        keys.triggered.connect(self.show_keys)
        self.help_menu.addAction(keys)
        self._keys_dialog: QDialog | None = None

    def _build_status_bar(self) -> None:
        self.job_status = JobStatus(self.jobs, self.statusBar(), self.show_message)
        self.job_label, self.progress, self.cancel_button = (
            self.job_status.label,
            self.job_status.progress,
            self.job_status.cancel_button,
        )

    # -- actions ---------------------------------------------------------------------------------

    def open_model(self, path: str | os.PathLike, resolution: int | None = None, device: str | None = None) -> None:
        """Load a model in the background; views fill in when it is ready."""
        self.generation.open(path, resolution, device)

    @Slot()
    def choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open model", "", "Models (*.safetensors *.pth *.pt);;All files (*)"
        )
        if path:
            model_panel = self.panels.get("model")
            opener = getattr(model_panel, "open_path", None)
            opener(path) if opener else self.open_model(path)

    @Slot()
    def choose_volume(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open volume", "", NIFTI_FILTER)
        if path:
            open_volume(self.context, path)

    def choose_export(self, part: str) -> None:
        volume = self.state.volumes.get(part)
        if volume is None:
            self.report_error(f"there is no {part} volume to export yet")
            return
        seed = volume.provenance.get("seed")
        name = f"{part}-seed{seed}.nii.gz" if seed is not None else f"{part}.nii.gz"
        path, _ = QFileDialog.getSaveFileName(self, f"Export {part} as NIfTI", name, NIFTI_FILTER)
        if path:
            export_volume(self.context, part, path)

    @Slot()
    def choose_workspace_to_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save workspace", "workspace.json", WORKSPACE_FILES)
        if path:
            self.workspace.save(path)

    @Slot()
    def choose_workspace_to_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open workspace", "", WORKSPACE_FILES)
        if path:
            self._drop_reopen_offer()
            self.workspace.open(path)

    def _offer_last_workspace(self) -> None:
        """The workspace autosaved at the last exit, offered in the status bar and the File menu; never
        a blocking question (scripts, screenshots and tests start without one)."""
        self.reopen_offer = QPushButton("Reopen last workspace")
        self.reopen_offer.setToolTip("Everything set up when the app was last closed: model, latent, keyframes, views")
        self.reopen_offer.clicked.connect(self.reopen_last_workspace)
        self.statusBar().insertPermanentWidget(0, self.reopen_offer)  # (status messages would hide a plain one)
        self.reopen_offer.hide()
        if self.interactive and last_workspace_path().exists():
            self.reopen_action.setEnabled(True)
            self.reopen_offer.show()

    @Slot()
    def reopen_last_workspace(self) -> None:
        self._drop_reopen_offer()
        self.workspace.open(last_workspace_path())

    def _drop_reopen_offer(self) -> None:
        self.reopen_offer.hide()

    @Slot()
    def choose_screenshot(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", "screenshot.png", "PNG images (*.png)")
        if path:
            self.save_screenshot(path)

    def save_screenshot(self, path: str | os.PathLike) -> bool:
        """The whole window (every view carries its SYNTHETIC label) as PNG."""
        ok = self.grab().save(os.fspath(path), "PNG")
        if ok:
            self.show_message(f"Saved {path}")
        else:
            self.report_error(f"{path}: cannot write the screenshot")
        return ok

    @Slot(str)
    def report_error(self, message: str) -> None:
        """Show a one-line cause: status bar, signal, and a dialog when interactive."""
        self.statusBar().showMessage(f"Error: {message}", 15_000)
        self.error_reported.emit(message)
        if self.interactive:
            QMessageBox.critical(self, "Error", message)

    def show_message(self, message: str) -> None:
        self.statusBar().showMessage(message, 8_000)

    def _on_model_changed(self, model: LoadedModel | None) -> None:
        if model is None:
            self.setWindowTitle(TITLE)
            return
        self.setWindowTitle(f"{model.name} — {TITLE}")
        self.show_message(f"Loaded {Path(model.path).name}")

    def show_keys(self) -> QDialog:
        """Help ▸ Keys: every shortcut and mouse action (a window beside the app, not modal)."""
        if self._keys_dialog is None:
            self._keys_dialog = keys_dialog(self)
        self._keys_dialog.show()
        self._keys_dialog.raise_()
        return self._keys_dialog

    # -- layout memory ---------------------------------------------------------------------------

    def _restore_layout(self) -> bool:
        """The window's size, place and docks as the user left them; False on a first start."""
        store = settings()
        geometry, layout = store.value("window/geometry"), store.value("window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        return isinstance(layout, QByteArray) and self.restoreState(layout)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if self._closed:  # a second close (e.g. a test's teardown after a restart) has nothing left to do
            super().closeEvent(event)
            return
        self._closed = True
        if self.interactive:
            self.workspace.autosave()
        store = settings()
        store.setValue("window/geometry", self.saveGeometry())
        store.setValue("window/state", self.saveState())
        store.sync()
        # cancelled jobs stop at their next progress report; the window goes at once, not when they do
        self.jobs.cancel()
        self.hide()
        for panel in self.panels.values():
            closer = getattr(panel, "shutdown", None)
            if closer:
                closer()
        self.gallery.shutdown()
        if self.compare_window is not None:
            self.compare_window.close_views()
        self.jobs.shutdown()
        QApplication.instance().removeEventFilter(self._field_keys)
        self.hierarchy.close_views()
        super().closeEvent(event)
