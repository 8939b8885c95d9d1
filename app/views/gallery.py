"""The gallery: pages of seed thumbnails (one slice each), to browse many latents and pick some.

Thumbnails are plain pixmaps in a list view (no 3D rendering): the chosen plane at the slice
through the crosshair (or any relative position), in the current window/level, each labelled with
its seed and SYNTHETIC. They come from ``GalleryLoader``: anchors first, then full resolution.

Mouse: click = show that seed in the hierarchy view; double-click or Enter = show it and switch to
the hierarchy tab; Ctrl/Shift-click = select several. Keys: arrows move, PageUp/PageDown turn pages.
Selected seeds go to the interpolation keyframes, to bookmarks, or to NIfTI files.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QItemSelectionModel, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QKeyEvent, QPainter, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.api import (
    PLANES,
    GenerationOptions,
    Part,
    SampleRequest,
    Thumbnail,
    ThumbnailSpec,
    contact_sheet,
    sample_volumes,
    save_contact_sheet,
    save_dicom_series,
    save_nifti,
    seed_to_z,
    window_image,
)

from ..context import AppContext
from ..gallery_loader import GalleryLoader
from ..render.window_level import WindowLevel, modality_key, window_presets
from ..state import FULL, PREVIEW, Latent, LoadedModel
from ..workers import BACKGROUND, INFERENCE

PAGE_SIZES = (9, 16, 36, 64)  # 3x3, 4x4, 6x6, 8x8
SEED_ROLE = Qt.ItemDataRole.UserRole
MAX_SEED = 2**31 - 1


class ThumbnailList(QListWidget):
    """A grid of thumbnails; PageUp/PageDown ask for the previous/next page instead of scrolling, Enter
    opens the current seed."""

    page_step = Signal(int)
    open_current = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentItem() is not None:
            self.open_current.emit()
            return
        step = {Qt.Key.Key_PageDown: +1, Qt.Key.Key_PageUp: -1}.get(Qt.Key(event.key()))
        if step is not None:
            self.page_step.emit(step)
            return
        super().keyPressEvent(event)


class GalleryView(QWidget):
    """Pages of seeds; listens to the state (model, window, crosshair, truncation) and sets the latent."""

    open_requested = Signal(int)  # a seed to show in the hierarchy view (double-click / Enter)
    page_filled = Signal(int)  # page number, when every thumbnail is at its final level

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.loader = GalleryLoader(
            context.jobs, parent=self, precision=lambda: context.generation.precision_for(PREVIEW)
        )
        self.first_seed = 0
        self.thumbnails: dict[int, Thumbnail] = {}  # seed -> the best thumbnail of the current page
        self._items: dict[int, QListWidgetItem] = {}
        self._dirty = True  # the page must be (re)loaded when the gallery is next shown
        self._build()
        state = context.state
        state.model_changed.connect(self._on_model)
        state.window_changed.connect(lambda _window: self._redraw())
        state.truncation_changed.connect(lambda _value: self.reload())
        state.crosshair_changed.connect(lambda _position: self._follow_crosshair())
        self.loader.thumbnail_ready.connect(self._on_thumbnail)
        self.loader.page_done.connect(self._on_page_done)
        self.loader.failed.connect(context.report_error)

    # -- widgets -------------------------------------------------------------------------------

    def _build(self) -> None:
        self.previous_button, self.next_button = QPushButton("◀"), QPushButton("▶")
        self.previous_button.setToolTip("Previous page (PageUp)")
        self.next_button.setToolTip("Next page (PageDown)")
        self.first_box = QSpinBox()
        self.first_box.setRange(0, MAX_SEED)
        self.first_box.setKeyboardTracking(False)
        self.first_box.setToolTip("The page's first seed")
        self.size_box = QComboBox()
        for size in PAGE_SIZES:
            side = math.isqrt(size)
            self.size_box.addItem(f"{side} × {side}", size)
        self.size_box.setCurrentIndex(PAGE_SIZES.index(16))
        self.plane_box = QComboBox()
        self.plane_box.addItems(list(PLANES))
        self.slice_box = QDoubleSpinBox()
        self.slice_box.setRange(0.0, 1.0)
        self.slice_box.setSingleStep(0.05)
        self.slice_box.setDecimals(2)
        self.slice_box.setValue(0.5)
        self.slice_box.setKeyboardTracking(False)
        self.slice_box.setToolTip("Where the slice lies along the plane's normal (0 to 1); follows the crosshair")
        self.status = QLabel("")

        self.list = ThumbnailList()
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.list.setUniformItemSizes(True)
        self.list.setSpacing(0)  # the grid size leaves the room between thumbnails
        self.list.setStyleSheet("QListWidget { background: #1e1e24; color: #e6e6e6; }")

        self.open_button = QPushButton("Show in hierarchy")
        self.keyframe_button = QPushButton("Add to interpolation")
        self.bookmark_button = QPushButton("Bookmark")
        self.export_button = QPushButton("Export NIfTI…")
        self.dicom_button = QPushButton("Export DICOM…")
        self.sheet_button = QPushButton("Save contact sheet…")
        self.keyframe_button.setToolTip("The selected seeds become keyframes of the interpolation path, in order")
        self.export_button.setToolTip("Full volumes of the selected seeds, one NIfTI file each")
        self.dicom_button.setToolTip("Full volumes of the selected seeds, one DICOM series folder each")
        self.sheet_button.setToolTip("This page as one PNG, labelled with seeds and SYNTHETIC")

        top = QHBoxLayout()
        for label, widget in (
            (None, self.previous_button),
            ("First seed", self.first_box),
            (None, self.next_button),
            ("Per page", self.size_box),
            ("Plane", self.plane_box),
            ("Slice", self.slice_box),
        ):
            if label:
                top.addWidget(QLabel(label))
            top.addWidget(widget)
        top.addStretch(1)
        top.addWidget(self.status)
        bottom = QHBoxLayout()
        for button in self._selection_buttons():
            bottom.addWidget(button)
        bottom.addStretch(1)
        bottom.addWidget(self.sheet_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.list, 1)
        layout.addLayout(bottom)

        self.previous_button.clicked.connect(lambda: self.step_page(-1))
        self.next_button.clicked.connect(lambda: self.step_page(+1))
        self.list.page_step.connect(self.step_page)
        self.first_box.valueChanged.connect(self.show_page)
        self.size_box.currentIndexChanged.connect(lambda _index: self.reload())
        self.plane_box.currentTextChanged.connect(lambda _plane: self._follow_crosshair(force=True))
        self.slice_box.valueChanged.connect(lambda _value: self.reload())
        self.list.itemClicked.connect(self._on_clicked)
        self.list.itemDoubleClicked.connect(lambda item: self.open_seed(item.data(SEED_ROLE), switch=True))
        self.list.open_current.connect(lambda: self.open_seed(self.list.currentItem().data(SEED_ROLE), switch=True))
        self.list.itemSelectionChanged.connect(self._update_buttons)
        self.open_button.clicked.connect(self._open_selected)
        self.keyframe_button.clicked.connect(self.add_to_interpolation)
        self.bookmark_button.clicked.connect(self.bookmark_selected)
        self.export_button.clicked.connect(self._choose_export)
        self.dicom_button.clicked.connect(self._choose_dicom_export)
        self.sheet_button.clicked.connect(self._choose_sheet)
        self._update_buttons()

    # -- pages ---------------------------------------------------------------------------------

    @property
    def page_size(self) -> int:
        return int(self.size_box.currentData())

    @property
    def seeds(self) -> list[int]:
        """The seeds this page shows, in order."""
        return list(range(self.first_seed, min(self.first_seed + self.page_size, MAX_SEED + 1)))

    def spec(self) -> ThumbnailSpec:
        plane, truncation = self.plane_box.currentText(), self.context.state.truncation
        return ThumbnailSpec(plane, self.slice_box.value(), Part.FULL, truncation)

    def step_page(self, step: int) -> None:
        self.first_box.setValue(max(0, self.first_seed + step * self.page_size))

    def show_page(self, first_seed: int) -> None:
        """The page starting at ``first_seed`` (the newest page wins: the old one stops filling)."""
        if self.first_box.value() != first_seed:
            self.first_box.setValue(first_seed)  # comes back here through valueChanged
            return
        self.first_seed = first_seed
        self.reload()

    def reload(self) -> None:
        """Lay out the page's seeds and start filling them (only while the gallery is visible)."""
        self._dirty = True
        if not self.isVisible():
            self.loader.cancel()
            return
        self._dirty = False
        self.thumbnails.clear()
        self._items.clear()
        self.list.clear()
        self._update_cell_size()
        for seed in self.seeds:
            item = QListWidgetItem(self._placeholder(), f"seed {seed}")
            item.setData(SEED_ROLE, seed)
            item.setToolTip(f"seed {seed}: click to show, double-click to open in the hierarchy view")
            self.list.addItem(item)
            self._items[seed] = item
        if self.list.count():  # the keyboard starts at the first seed; nothing is selected yet
            self.list.setCurrentRow(0, QItemSelectionModel.SelectionFlag.NoUpdate)
        self.status.setText("")
        if self.context.state.model is None:
            self.status.setText("Open a model to see its seeds")
            return
        self.loader.load(self.seeds, self.spec())
        self._show_status()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._dirty:
            self.reload()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if self._update_cell_size():
            self._redraw()

    def _update_cell_size(self) -> bool:
        """Icons sized so a page fits the view (within reason); True when the size changed."""
        columns = math.isqrt(self.page_size)
        viewport = self.list.viewport().size()
        width = viewport.width() - self.list.verticalScrollBar().sizeHint().width() - 8  # room for a scroll bar
        side = min(width // columns, (viewport.height() - 8) // columns - 22) - 12
        side = int(min(max(side, 64), 512))
        grid = QSize(max(side + 12, width // columns), side + 30)  # exactly `columns` per row
        if self.list.iconSize().width() == side and self.list.gridSize() == grid:
            return False
        self.list.setIconSize(QSize(side, side))
        self.list.setGridSize(grid)
        return True

    # -- thumbnails ----------------------------------------------------------------------------

    def _on_thumbnail(self, page: int, thumbnail: Thumbnail) -> None:
        item = self._items.get(thumbnail.seed)
        if item is None or page != self.loader.page:
            return
        shown = self.thumbnails.get(thumbnail.seed)
        if shown is not None and shown.level == Part.FULL and thumbnail.level != Part.FULL:
            return  # never step back from full resolution to the anchor
        self.thumbnails[thumbnail.seed] = thumbnail
        item.setIcon(self._pixmap(thumbnail))
        self._show_status()

    def _on_page_done(self, page: int) -> None:
        if page == self.loader.page:
            self._show_status()
            self.page_filled.emit(page)

    def _show_status(self) -> None:
        levels = [t.level for t in self.thumbnails.values()]
        total = len(self.seeds)
        self.status.setText(f"{levels.count(Part.FULL)}/{total} full resolution, {levels.count(Part.ANCHOR)} anchors")

    def window(self) -> WindowLevel:
        """The state's window, or the modality's first fixed preset, or the model's whole range."""
        state = self.context.state
        if state.window is not None:
            return state.window
        model = state.model
        if model is None:
            return WindowLevel(2.0, 0.0)
        card = model.card
        fixed = [p for p in window_presets(modality_key(card.intensity, card.modality)) if p.auto is None]
        if fixed:
            return fixed[0].window_for(None)
        low, high = card.intensity.low, card.intensity.high
        return WindowLevel(high - low, (high + low) / 2)

    def _pixmap(self, thumbnail: Thumbnail) -> QPixmap:
        window = self.window()
        grey = np.ascontiguousarray(window_image(thumbnail.image, window.width, window.level))
        rows, columns = grey.shape
        image = QImage(grey.data, columns, rows, columns, QImage.Format.Format_Grayscale8).copy()
        side = self.list.iconSize().width()
        height_mm, width_mm = rows * thumbnail.pixel_mm[0], columns * thumbnail.pixel_mm[1]
        scale = side / max(height_mm, width_mm)
        size = QSize(max(1, round(width_mm * scale)), max(1, round(height_mm * scale)))
        picture = self._placeholder()
        painter = QPainter(picture)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        scaled = image.scaled(size, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation)
        painter.drawImage((side - size.width()) // 2, (side - size.height()) // 2, scaled)
        font = QFont()
        font.setPixelSize(max(9, side // 14))
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(QColor(255, 80, 80))
        painter.drawText(picture.rect().adjusted(0, 2, -4, 0), Qt.AlignmentFlag.AlignRight, "SYNTHETIC")
        if thumbnail.level == Part.ANCHOR:
            painter.setPen(QColor(240, 192, 64))
            painter.drawText(picture.rect().adjusted(4, 0, 0, -2), Qt.AlignmentFlag.AlignBottom, "anchor")
        painter.end()
        return picture

    def _placeholder(self) -> QPixmap:
        side = max(self.list.iconSize().width(), 16)
        picture = QPixmap(side, side)
        picture.fill(QColor(40, 40, 48))
        return picture

    def _redraw(self) -> None:
        for seed, thumbnail in self.thumbnails.items():
            if seed in self._items:
                self._items[seed].setIcon(self._pixmap(thumbnail))

    def _on_model(self, model: LoadedModel | None) -> None:
        self.loader.set_model(None if model is None else model.model)
        self._follow_crosshair(force=True)
        self.reload()

    def _follow_crosshair(self, force: bool = False) -> None:
        """The slice position through the crosshair along the plane's normal (generated volumes are centred)."""
        model = self.context.state.model
        if model is None:
            return
        axis = PLANES[self.plane_box.currentText()]
        extent = model.card.spacing_mm[axis] * (model.resolution - 1)
        position = float(np.clip(self.context.state.crosshair[axis] / extent + 0.5, 0.0, 1.0))
        if abs(position - self.slice_box.value()) >= 0.005:
            self.slice_box.setValue(position)  # reloads through valueChanged
        elif force:
            self.reload()

    # -- choosing seeds --------------------------------------------------------------------------

    def selected_seeds(self) -> list[int]:
        """Selected seeds in page order."""
        chosen = {item.data(SEED_ROLE) for item in self.list.selectedItems()}
        return [seed for seed in self.seeds if seed in chosen]

    def _selection_buttons(self) -> tuple[QPushButton, ...]:
        """The buttons that act on the selected seeds."""
        return (self.open_button, self.keyframe_button, self.bookmark_button, self.export_button, self.dicom_button)

    def _update_buttons(self) -> None:
        some = bool(self.list.selectedItems())
        for button in self._selection_buttons():
            button.setEnabled(some)

    def _on_clicked(self, item: QListWidgetItem) -> None:
        if QApplication.keyboardModifiers() == Qt.KeyboardModifier.NoModifier:
            self.open_seed(item.data(SEED_ROLE))

    def open_seed(self, seed: int, switch: bool = False) -> None:
        """Show ``seed`` in the hierarchy view (and switch to it when ``switch``)."""
        model = self.context.state.model
        if model is None:
            return
        self.context.state.set_latent(self._latent(seed))
        if switch:
            self.open_requested.emit(seed)

    def _open_selected(self) -> None:
        seeds = self.selected_seeds()
        if seeds:
            self.open_seed(seeds[0], switch=True)

    def _latent(self, seed: int) -> Latent:
        return Latent(seed_to_z(seed, self.context.state.model.card.config.latent_dim), f"seed {seed}", seed)

    def add_to_interpolation(self) -> None:
        state, seeds = self.context.state, self.selected_seeds()
        if state.model is None or not seeds:
            return
        added = tuple(self._latent(seed) for seed in seeds)
        state.set_path(replace(state.path, keyframes=(*state.path.keyframes, *added)))
        self.context.show_message(f"Added {len(seeds)} keyframe(s): seeds {', '.join(map(str, seeds))}")

    def bookmark_selected(self) -> None:
        seeds = self.selected_seeds()
        if self.context.state.model is not None and seeds:
            self.context.state.request_bookmarks([self._latent(seed) for seed in seeds])

    # -- files ---------------------------------------------------------------------------------

    def _choose_export(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the NIfTI files")
        if folder:
            self.export(folder)

    def _choose_dicom_export(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the DICOM series (one per seed)")
        if folder:
            self.export(folder, dicom=True)

    def export(self, folder: str | Path, dicom: bool = False) -> int | None:
        """Full volumes of the selected seeds in ``folder`` (a job): ``seed0003_full.nii.gz`` files, or
        with ``dicom`` a ``seed0003_full`` series folder each."""
        state, seeds = self.context.state, self.selected_seeds()
        if state.model is None or not seeds:
            return None
        folder, model, truncation = Path(folder), state.model.model, state.truncation
        options = GenerationOptions(precision=self.context.generation.precision_for(FULL))  # exact unless chosen
        name, modality = state.model.name, state.model.card.modality
        if not folder.is_dir():
            self.context.report_error(f"{folder}: no such folder")
            return None

        def work(progress):
            requests = [SampleRequest(seed, Part.FULL, truncation=truncation) for seed in seeds]
            for number, (seed, volume) in enumerate(zip(seeds, sample_volumes(model, requests, options))):
                progress(number, len(seeds), f"Exporting seed {seed}")
                if dicom:
                    save_dicom_series(volume, folder / f"seed{seed:04d}_full", modality)
                else:
                    save_nifti(volume, folder / f"seed{seed:04d}_full.nii.gz", f"SYNTHETIC {name} full seed {seed}")
            return len(seeds)

        def done(count: int) -> None:
            self.context.show_message(f"Exported {count} volume(s) to {folder}")

        label = f"Exporting {len(seeds)} seed(s)"
        return self.context.jobs.submit("gallery-export", label, work, done, self.context.report_error, INFERENCE)

    def _choose_sheet(self) -> None:
        name = f"gallery-seeds{self.seeds[0]}-{self.seeds[-1]}.png"
        path, _ = QFileDialog.getSaveFileName(self, "Save contact sheet", name, "PNG images (*.png)")
        if path:
            self.save_contact_sheet(path)

    def save_contact_sheet(self, path: str | Path) -> int | None:
        """The page's thumbnails as they are now, as a PNG grid (written by a background job)."""
        thumbnails = [self.thumbnails[seed] for seed in self.seeds if seed in self.thumbnails]
        if not thumbnails:
            self.context.report_error("No thumbnails on this page yet")
            return None
        window, columns = self.window(), math.isqrt(self.page_size)
        model = self.context.state.model
        spec = self.spec()
        title = f"{model.name} · {spec.plane} {spec.position:.2f} · {window.label(model.card.intensity.unit)}"

        def work(_progress):
            sheet = contact_sheet(thumbnails, (window.width, window.level), columns, title=title)
            return save_contact_sheet(sheet, path)

        return self.context.jobs.submit(
            "contact-sheet",
            "Saving contact sheet",
            work,
            lambda saved: self.context.show_message(f"Saved {saved}"),
            self.context.report_error,
            BACKGROUND,
        )

    def shutdown(self) -> None:
        self.loader.cancel()
