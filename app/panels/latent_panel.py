"""Latent panel: which latent the views show (seed, random, previous/next, truncation, bookmarks, files)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import torch
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.api import seed_to_z

from ..bookmarks import Bookmark, BookmarkStore, LatentFileError, read_latent, write_latent
from ..context import AppContext
from ..settings import user_data_dir
from ..state import Latent, LoadedModel

MAX_SEED = 2**31 - 1
ID_ROLE = Qt.ItemDataRole.UserRole
LATENT_FILES = "Latent (*.npy *.json);;All files (*)"


def listed(labels: list[str]) -> str:
    """Up to five labels in full, more as 'N latents: first … last'."""
    return ", ".join(labels) if len(labels) <= 5 else f"{len(labels)} latents: {labels[0]} … {labels[-1]}"


class LatentPanel(QWidget):
    """Seed box (reproducible: the same seed gives the same volume anywhere), truncation, bookmarks."""

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.seed_box = QSpinBox()
        self.seed_box.setRange(0, MAX_SEED)
        self.seed_box.setToolTip("z = randn(latent_dim) from a CPU generator seeded with this number")
        self.seed_box.setKeyboardTracking(False)  # typing 123 asks for one volume, not three
        self.previous_button = QPushButton("◀")
        self.next_button = QPushButton("▶")
        self.random_button = QPushButton("Random")
        self.previous_button.setToolTip("Previous seed (P)")
        self.next_button.setToolTip("Next seed (N)")
        self.truncation_box = QDoubleSpinBox()
        self.truncation_box.setRange(0.0, 2.0)
        self.truncation_box.setSingleStep(0.1)
        self.truncation_box.setValue(1.0)
        self.truncation_box.setKeyboardTracking(False)
        self.truncation_box.setToolTip("Scale z toward 0: below 1 trades variety for typical-looking volumes")

        seeds = QHBoxLayout()
        for widget in (self.previous_button, self.seed_box, self.next_button, self.random_button):
            seeds.addWidget(widget)
        form = QFormLayout()
        form.addRow("Seed", seeds)
        form.addRow("Truncation", self.truncation_box)
        self.layout_ = QVBoxLayout(self)
        self.layout_.addLayout(form)
        self.layout_.addWidget(self._build_bookmarks())
        self.layout_.addStretch(1)  # the panel's spare height stays below, not in an empty list

        self.seed_box.valueChanged.connect(self._show_seed)
        self.previous_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(+1))
        self.random_button.clicked.connect(lambda: self.seed_box.setValue(random.randint(0, MAX_SEED)))
        self.truncation_box.valueChanged.connect(context.state.set_truncation)
        context.state.truncation_changed.connect(self._on_truncation)
        context.state.model_changed.connect(self._on_model)
        context.state.latent_changed.connect(self._on_latent)
        context.state.bookmarks_requested.connect(self.add_bookmarks)
        window = context.window
        for key, step in (("N", +1), ("P", -1)):
            shortcut = QShortcut(QKeySequence(key), window)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(lambda step=step: self.step(step))

    def set_seed(self, seed: int) -> None:
        """Show this seed (also when it is the seed in the box already)."""
        if self.seed_box.value() == seed:
            self._show_seed(seed)
        else:
            self.seed_box.setValue(seed)

    def step(self, delta: int) -> None:
        self.seed_box.setValue(min(MAX_SEED, max(0, self.seed_box.value() + delta)))

    def _show_seed(self, seed: int) -> None:
        model = self.context.state.model
        if model is None:
            return
        z = seed_to_z(seed, model.card.config.latent_dim)
        self.context.state.set_latent(Latent(z, f"seed {seed}", seed))

    def _on_model(self, model: LoadedModel | None) -> None:
        if model is not None:
            self._show_seed(self.seed_box.value())  # the new model's latent size may differ
        self._fill_bookmarks()

    def _on_latent(self, latent: Latent, _quality: str) -> None:
        """A seed shown from elsewhere (the gallery, a bookmark, a workspace) appears in the seed box,
        quietly, so N/P step from it."""
        if latent.seed is not None and self.seed_box.value() != latent.seed:
            self.seed_box.blockSignals(True)
            self.seed_box.setValue(latent.seed)
            self.seed_box.blockSignals(False)
        self._update_buttons()

    def _on_truncation(self, value: float) -> None:
        if self.truncation_box.value() != value:
            self.truncation_box.setValue(value)

    # -- bookmarks ---------------------------------------------------------------------------------

    def _build_bookmarks(self) -> QGroupBox:
        self.store = BookmarkStore(user_data_dir() / "bookmarks.json")
        self.bookmark_scope = QLabel()
        self.bookmark_scope.setWordWrap(True)
        self.bookmark_list = QListWidget()
        self.bookmark_list.setToolTip("Click to show; double-click or F2 to rename")
        rows = self.bookmark_list.fontMetrics().height() + 6
        self.bookmark_list.setMinimumHeight(3 * rows)  # a few rows; it grows with the panel only when asked
        self.bookmark_list.setMaximumHeight(10 * rows)
        self.add_button = QPushButton("Add current")
        self.add_button.setToolTip("Bookmark the latent shown now, with its truncation (Ctrl+D)")
        self.add_button.setShortcut(QKeySequence("Ctrl+D"))
        self.rename_button, self.delete_button = QPushButton("Rename"), QPushButton("Delete")
        self.import_button, self.export_button = QPushButton("Import…"), QPushButton("Export…")
        self.import_button.setToolTip("Show a latent from .npy (latent_dim,) or (1, latent_dim), or .json")
        self.export_button.setToolTip("Save the latent shown now as .npy or .json")

        edit_row, file_row = QHBoxLayout(), QHBoxLayout()
        for button in (self.add_button, self.rename_button, self.delete_button):
            edit_row.addWidget(button)
        for button in (self.import_button, self.export_button):
            file_row.addWidget(button)
        group = QGroupBox("Bookmarks")
        box = QVBoxLayout(group)
        box.addWidget(self.bookmark_scope)
        box.addWidget(self.bookmark_list, 1)
        box.addLayout(edit_row)
        box.addWidget(QLabel("Latent file"))
        box.addLayout(file_row)

        self.bookmark_list.itemClicked.connect(self.show_bookmark)
        self.bookmark_list.itemChanged.connect(self._on_renamed)
        self.add_button.clicked.connect(lambda: self.add_bookmark())
        self.rename_button.clicked.connect(self._rename_current)
        self.delete_button.clicked.connect(self.delete_bookmark)
        self.import_button.clicked.connect(self._choose_import)
        self.export_button.clicked.connect(self._choose_export)
        try:
            self.store.load()
        except LatentFileError as error:  # after the window is up, so the dialog has a parent to sit on
            QTimer.singleShot(0, lambda message=str(error): self.context.report_error(message))
        self._fill_bookmarks()
        return group

    def _model_key(self) -> str:
        """What ties a bookmark to its model: the weights' content hash (the file path when there is none)."""
        model = self.context.state.model
        return "" if model is None else model.card.content_hash or model.path

    def _fill_bookmarks(self) -> None:
        model, key = self.context.state.model, self._model_key()
        mine = self.store.for_model(key) if model is not None else []
        others = len(self.store.bookmarks) - len(mine)
        self.bookmark_list.blockSignals(True)  # filling is not renaming
        self.bookmark_list.clear()
        for bookmark in mine:
            item = QListWidgetItem(bookmark.name)
            item.setData(ID_ROLE, bookmark.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            seed = "" if bookmark.seed is None else f"seed {bookmark.seed}, "
            item.setToolTip(f"{seed}truncation {bookmark.truncation:g}, saved {bookmark.created}")
            self.bookmark_list.addItem(item)
        self.bookmark_list.blockSignals(False)
        if model is None:
            scope = "Open a model to see its bookmarks."
        else:
            scope = f"Only this model's bookmarks are listed ({len(mine)})."
            scope += f" {others} more belong to other models." if others else ""
        self.bookmark_scope.setText(scope)
        self._update_buttons()

    def _update_buttons(self) -> None:
        state = self.context.state
        for button in (self.add_button, self.export_button):
            button.setEnabled(state.model is not None and state.latent is not None)
        self.import_button.setEnabled(state.model is not None)
        has_items = self.bookmark_list.count() > 0
        self.rename_button.setEnabled(has_items)
        self.delete_button.setEnabled(has_items)

    def current_bookmark(self, name: str | None = None) -> Bookmark | None:
        """The latent shown now, with its truncation and model, as a (not yet stored) bookmark."""
        state = self.context.state
        if state.model is None or state.latent is None:
            return None
        z = state.latent.z.detach().cpu().float().numpy().reshape(-1)
        return Bookmark(
            name=name or state.latent.label,
            z=z,
            model_hash=self._model_key(),
            model_name=state.model.name,
            seed=state.latent.seed,
            truncation=state.truncation,
        )

    def add_bookmark(self, name: str | None = None) -> Bookmark | None:
        bookmark = self.current_bookmark(name)
        if bookmark is not None and self._saved(lambda: self.store.add(bookmark)):
            self._fill_bookmarks()
            self.bookmark_list.setCurrentRow(self.bookmark_list.count() - 1)
            self.context.show_message(f"Bookmarked '{bookmark.name}'")
        return bookmark

    def add_bookmarks(self, latents: list[Latent]) -> None:
        """Bookmark latents shown elsewhere (e.g. seeds picked in the gallery), with the current truncation."""
        state = self.context.state
        if state.model is None:
            return
        key, model_name, truncation = self._model_key(), state.model.name, state.truncation
        bookmarks = [
            Bookmark(
                latent.label,
                latent.z.detach().cpu().float().numpy().reshape(-1),
                key,
                model_name,
                latent.seed,
                truncation,
            )
            for latent in latents
        ]
        known = [b for b in bookmarks if self.store.holds(b)]  # a second click on the same selection adds nothing
        new = [b for b in bookmarks if not any(b is k for k in known)]
        if new and not self._saved(lambda: self.store.add_all(new)):  # one save for the whole selection
            return
        self._fill_bookmarks()
        parts = [f"Bookmarked {listed([b.name for b in new])}"] if new else []
        if known:
            parts.append(f"{'already' if new else 'Already'} bookmarked: {listed([b.name for b in known])}")
        self.context.show_message("; ".join(parts))

    def show_bookmark(self, item: QListWidgetItem) -> None:
        bookmark = self.store.get(item.data(ID_ROLE))
        if bookmark is not None:
            self._show_latent(bookmark)

    def delete_bookmark(self) -> None:
        item = self.bookmark_list.currentItem()
        if item is not None and self._saved(lambda: self.store.remove(item.data(ID_ROLE))):
            self._fill_bookmarks()

    def _rename_current(self) -> None:
        item = self.bookmark_list.currentItem()
        if item is not None:
            self.bookmark_list.editItem(item)

    def _on_renamed(self, item: QListWidgetItem) -> None:
        self._saved(lambda: self.store.rename(item.data(ID_ROLE), item.text()))
        bookmark = self.store.get(item.data(ID_ROLE))
        if bookmark is not None and item.text() != bookmark.name:  # a blank name keeps the old one
            self._fill_bookmarks()

    def _saved(self, change) -> bool:
        """Run a store change; a file that cannot be written becomes a dialog, not a crash (and the
        store keeps its list as it was)."""
        try:
            change()
        except OSError as error:
            self.context.report_error(f"{self.store.path}: cannot save bookmarks ({error.strerror or error})")
            return False
        return True

    def _show_latent(self, bookmark: Bookmark) -> None:
        """Show a stored latent: the state gets its z and truncation; the seed box shows its seed, quietly."""
        if bookmark.seed is not None:
            self.seed_box.blockSignals(True)
            self.seed_box.setValue(bookmark.seed)
            self.seed_box.blockSignals(False)
        z = torch.from_numpy(bookmark.z.copy()).reshape(1, -1)
        self.context.state.set_latent(Latent(z, bookmark.name, bookmark.seed))
        self.truncation_box.setValue(bookmark.truncation)

    # -- latent files --------------------------------------------------------------------------

    def import_latent(self, path: str | os.PathLike) -> bool:
        """Show the latent of a .npy or .json file; a bad file is a one-line dialog."""
        model = self.context.state.model
        if model is None:
            self.context.report_error("Open a model before importing a latent")
            return False
        try:
            bookmark = read_latent(path, model.card.config.latent_dim)
        except LatentFileError as error:
            self.context.report_error(str(error))
            return False
        self._show_latent(bookmark)
        if bookmark.model_hash and bookmark.model_hash != self._model_key():
            origin = bookmark.model_name or bookmark.model_hash[:19]
            self.context.show_message(f"'{bookmark.name}' was saved with {origin}; shown with {model.name}")
        return True

    def export_latent(self, path: str | os.PathLike) -> bool:
        """Write the latent shown now (.npy: z of shape (1, latent_dim); .json: a bookmark file)."""
        bookmark = self.current_bookmark()
        if bookmark is None:
            self.context.report_error("No latent to export yet: open a model first")
            return False
        try:
            write_latent(path, bookmark)
        except (LatentFileError, OSError) as error:
            cause = str(error) if isinstance(error, LatentFileError) else f"{path}: cannot write ({error.strerror})"
            self.context.report_error(cause)
            return False
        self.context.show_message(f"Saved {Path(path).name}")
        return True

    def _choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import latent", "", LATENT_FILES)
        if path:
            self.import_latent(path)

    def _choose_export(self) -> None:
        latent = self.context.state.latent
        suggested = (latent.label if latent else "latent").replace(" ", "-") + ".npy"
        path, _ = QFileDialog.getSaveFileName(self, "Export latent", suggested, LATENT_FILES)
        if path:
            self.export_latent(path)
