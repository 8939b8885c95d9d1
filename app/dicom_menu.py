"""File menu items for DICOM: open a series folder, export the full volume, anchor or a slab as a series."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu

from engine.api import Part

from .volume_files import export_dicom, open_dicom_series


def add_dicom_actions(window: QMainWindow, menu: QMenu) -> None:
    """'Open DICOM series…' and an 'Export as DICOM series' sub-menu, appended to ``menu``."""
    menu.addAction("Open &DICOM series…").triggered.connect(lambda: choose_dicom_folder(window))
    export = menu.addMenu("Export as DICOM se&ries")
    for part, text in ((Part.FULL, "&Full volume…"), (Part.ANCHOR, "&Anchor…"), (Part.SLAB, "&Slab…")):
        export.addAction(text).triggered.connect(lambda _checked=False, part=part: choose_dicom_export(window, part))


def choose_dicom_folder(window: QMainWindow) -> None:
    folder = QFileDialog.getExistingDirectory(window, "Open DICOM series (a folder of images)")
    if folder:
        open_dicom_series(window.context, folder)


def choose_dicom_export(window: QMainWindow, part: str) -> None:
    volume = window.state.volumes.get(part)
    if volume is None:
        window.report_error(f"there is no {part} volume to export yet")
        return
    seed = volume.provenance.get("seed")
    name = f"{part}-seed{seed}-dicom" if seed is not None else f"{part}-dicom"
    folder, _ = QFileDialog.getSaveFileName(window, f"Export {part} as a DICOM series (a new folder)", name)
    if folder:
        export_dicom(window.context, part, folder)
