"""Artifact check: the full reconstruction versus the same latent made of 8 independent slabs, stitched.

HA-GAN runs G^H on the whole feature map at inference ("full"); a naive patch-based generator
would stitch slabs generated one by one ("stitched"). The panel shows the stitched volume, the
difference stitched - full (diverging colours centred on 0), the slab boundaries, each boundary's
seam score for both (engine.metrics.seams; 1.0 = no seam) and intensity profiles across a boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.api import (
    STEP_FLOOR,
    Explorer,
    Part,
    SampleRequest,
    Volume,
    hagan_seam_period,
    plane_steps,
    seam_score,
    slab_boundaries,
)

from ..context import AppContext
from ..render.window_level import WindowLevel, centred_window, default_window
from ..state import LoadedModel
from ..views.pane import VolumePane
from ..views.render_queue import take_turns
from ..workers import INFERENCE
from .status_label import StatusLabel

DIFFERENCE_CMAP = "RdBu_r"  # diverging: blue below 0, white at 0, red above
SLAB_AXIS = 2  # network D (HA-GAN's slab axis) is the volume's k
PROFILES = {"mean": "Mean of each plane", "step": "Step between planes (|Δ|)", "line": "Line through the crosshair"}
FULL_PEN, STITCHED_PEN = "#1f6fd0", "#e0531f"
WIDE = 760  # pixels: from this panel width on, the two panes sit side by side instead of stacked
NEEDS_SLABS = (
    "The artifact check needs a model that generates in slabs (HA-GAN); {family} makes the whole volume at once."
)


@dataclass
class SeamComparison:
    """Full and stitched volumes of one latent, their difference, seam scores and plane profiles."""

    label: str
    key: tuple  # what it was computed for: (model path, latent key, truncation)
    full: Volume
    stitched: Volume
    difference: Volume  # stitched - full, physical units
    boundaries: list[int]  # first slices of slabs 2..8 along k
    period: int  # reference planes b +- n * period (engine.metrics.seams.hagan_seam_period)
    scores_full: np.ndarray
    scores_stitched: np.ndarray
    profiles: dict[str, tuple[np.ndarray, np.ndarray]]  # kind -> (full, stitched), one value per slice k


def compare_full_stitched(explorer: Explorer, request: SampleRequest, key: tuple, progress) -> SeamComparison:
    """Generate both parts for one latent (features computed once) and measure them; runs on a worker."""
    progress(0, 3, f"{request.origin}: full volume")
    full = explorer.volumes(request, [Part.FULL])[Part.FULL]
    progress(1, 3, f"{request.origin}: 8 independent slabs")
    stitched = explorer.volumes(request, [Part.STITCHED])[Part.STITCHED]
    progress(2, 3, "seam scores")
    resolution = full.array.shape[SLAB_AXIS]
    boundaries, period = slab_boundaries(resolution), hagan_seam_period(resolution)
    floor = STEP_FLOOR * (full.intensity.high - full.intensity.low) / 2  # the network-range floor, in physical units
    provenance = {**stitched.provenance, "operation": "stitched - full"}
    difference = Volume(stitched.array - full.array, full.affine, full.intensity, provenance)
    return SeamComparison(
        label=request.origin,
        key=key,
        full=full,
        stitched=stitched,
        difference=difference,
        boundaries=boundaries,
        period=period,
        scores_full=seam_score(full.array, boundaries, axis=SLAB_AXIS, period=period, floor=floor),
        scores_stitched=seam_score(stitched.array, boundaries, axis=SLAB_AXIS, period=period, floor=floor),
        profiles={
            "mean": (full.array.mean(axis=(0, 1)), stitched.array.mean(axis=(0, 1))),
            "step": (plane_steps(full.array, SLAB_AXIS), plane_steps(stitched.array, SLAB_AXIS)),
        },
    )


def difference_window(difference: Volume) -> WindowLevel:
    """Symmetric about 0, reaching the 99.5th percentile of |difference| (a few outliers do not wash it out)."""
    return centred_window(difference.array)


def score_text(value: float) -> str:
    return "∞" if not np.isfinite(value) else f"{value:.3f}"


class ArtifactPanel(QWidget):
    """Compare button, stitched and difference panes with boundary planes, seam table, profile plot."""

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.result: SeamComparison | None = None
        self._showing: SeamComparison | None = None  # a result being drawn, part by part (show_result)
        self.evaluate_dialog = None
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Generate the current latent in full and as 8 independent slabs, and compare")
        self.evaluate_button = QPushButton("Evaluate model…")
        self.evaluate_button.setToolTip("FID/MMD, MS-SSIM, seam and intensity statistics against real scans")
        self.status = StatusLabel()
        self.stitched = VolumePane("Stitched independent slabs")
        self.difference = VolumePane("Difference: stitched − full")
        self.difference.set_colormap(DIFFERENCE_CMAP)
        self.difference.set_3d_visible(False)  # the 3D quadrant keeps the boundary planes and crosshair
        self.difference.share_cameras(self.stitched)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Boundary k", "Full", "Stitched", "Ratio"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.boundary_box = QComboBox()
        self.boundary_box.setToolTip("Zoom the profile onto one slab boundary (or see all)")
        self.profile_box = QComboBox()
        self.profile_box.setToolTip("What the plot shows along the slab axis, for full and stitched")
        for kind, text in PROFILES.items():
            self.profile_box.addItem(text, kind)
        for box in (self.boundary_box, self.profile_box):  # the dock may be narrow: combos shrink
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(6)
        self.plot = None  # a pyqtgraph PlotWidget, made with the first result (pyqtgraph takes 0.5 s to import)
        self.plot_holder = QVBoxLayout()
        self.plot_holder.setContentsMargins(0, 0, 0, 0)
        self._layout()

        self.compare_button.clicked.connect(self.compare)
        self.evaluate_button.clicked.connect(self.open_evaluation)
        self.table.itemSelectionChanged.connect(self._on_row_selected)
        self.boundary_box.currentIndexChanged.connect(lambda _index: self._draw_profile())
        self.profile_box.currentIndexChanged.connect(lambda _index: self._draw_profile())
        state = context.state
        for pane in (self.stitched, self.difference):
            pane.picked.connect(state.set_crosshair)
            pane.camera_moved.connect(self._render_panes)
        self.stitched.window_dragged.connect(self._drag_window)
        state.model_changed.connect(self._on_model)
        state.latent_changed.connect(lambda *_: self._mark_stale())
        state.truncation_changed.connect(lambda *_: self._mark_stale())
        state.crosshair_changed.connect(self._on_crosshair)
        state.window_changed.connect(self._on_window)
        state.render_mode_changed.connect(
            lambda mode: self.stitched.set_render_mode(mode, state.volume_preset, state.iso_value)
        )
        self._on_model(state.model)

    def _layout(self) -> None:
        buttons = QHBoxLayout()
        buttons.addWidget(self.compare_button)
        buttons.addWidget(self.evaluate_button)
        buttons.addStretch(1)
        self.panes = panes = QSplitter(Qt.Orientation.Vertical)
        panes.addWidget(self.stitched)
        panes.addWidget(self.difference)
        controls = QHBoxLayout()  # no labels: the dock may be narrow; the combos say what they hold
        controls.addWidget(self.profile_box, 1)
        controls.addWidget(self.boundary_box, 1)
        profile = QWidget()
        column = QVBoxLayout(profile)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(controls)
        self.plot_placeholder = QLabel("Press Compare to see intensity profiles across the slab boundaries.")
        self.plot_placeholder.setWordWrap(True)
        self.plot_holder.addWidget(self.plot_placeholder)
        column.addLayout(self.plot_holder, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(panes)
        splitter.addWidget(self.table)
        splitter.addWidget(profile)
        splitter.setSizes([500, 160, 240])  # panes, table, plot
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(splitter, 1)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        wide = self.width() >= WIDE
        self.panes.setOrientation(Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical)

    # -- state -> panel ----------------------------------------------------------------------------

    def _on_model(self, model: LoadedModel | None) -> None:
        self.result = self._showing = None
        self.table.setRowCount(0)
        self.boundary_box.clear()
        if self.plot is not None:
            self.plot.clear()
        hierarchical = model is not None and model.hierarchical
        self.compare_button.setEnabled(hierarchical)
        self.evaluate_button.setEnabled(hierarchical)
        if model is None:
            text = "Open a model, then press Compare."
        elif not hierarchical:
            text = NEEDS_SLABS.format(family=model.card.family)
        else:
            text = "Press Compare: the current latent in full and as 8 independent slabs, side by side."
        self.status.setText(text)
        for pane in (self.stitched, self.difference):
            pane.modality = model.card.modality if model else ""
            pane.show_message(text)

    def _key(self) -> tuple | None:
        state = self.context.state
        if state.model is None or state.latent is None:
            return None
        return (state.model.path, state.latent.key, state.latent.label, state.truncation)

    def _mark_stale(self) -> None:
        if self.result is not None and self.result.key != self._key():
            self.status.setText(f"{self._summary(self.result)}  —  the latent changed: press Compare to update.")

    def _on_crosshair(self, position) -> None:
        for pane in (self.stitched, self.difference):
            pane.crosshair = np.asarray(position, dtype=float)
            if pane.grid is not None:
                pane.set_crosshair(position)
        if self.profile_box.currentData() == "line":
            self._draw_profile()

    def _on_window(self, window: WindowLevel) -> None:
        if self.stitched.grid is not None and window is not None:
            self.stitched.set_window(window)

    def _drag_window(self, dx: float, dy: float) -> None:
        window = self.context.state.window or self.stitched.window
        self.context.state.set_window(window.dragged(dx, dy, max(window.width, 1e-3) / 250))

    def _render_panes(self) -> None:
        self.stitched.render()
        self.difference.render()

    # -- compare -----------------------------------------------------------------------------------

    def compare(self) -> None:
        """Submit the comparison of the current latent (newest request wins)."""
        state, explorer = self.context.state, self.context.generation.explorer
        if state.model is None or state.latent is None or explorer is None:
            self.context.report_error("open a model and choose a latent first")
            return
        if Part.STITCHED not in explorer.parts:
            self.context.report_error(NEEDS_SLABS.format(family=state.model.card.family))
            return
        latent, key = state.latent, self._key()
        request = SampleRequest(seed=latent.seed, latent=latent.z, truncation=state.truncation, origin=latent.label)
        self.status.setText(f"Comparing {latent.label}…")
        self.context.jobs.submit(
            "artifact",
            f"Artifact check of {latent.label}",
            lambda progress: compare_full_stitched(explorer, request, key, progress),
            self.show_result,
            self._failed,
            pool=INFERENCE,  # the model's thread: the explorer serves one thread
        )

    def _failed(self, message: str) -> None:
        self.status.setText(f"Comparison failed: {message}")
        self.context.report_error(message)

    def show_result(self, result: SeamComparison) -> None:
        """Fill panes, planes, table and plot with a finished comparison, one part per turn of the
        event loop (each pane's scene, then table and plot), each after the previous pane's paint:
        done at once, the UI thread would wait for all of it. ``result`` is set
        with the last part; a newer comparison arriving meanwhile drops the rest of this one."""
        self._showing = result
        state = self.context.state
        modality = state.model.card.modality if state.model else ""
        window = state.window or default_window(result.full, modality)
        planes, centred = self.boundary_planes(result), difference_window(result.difference)
        steps = [  # (the pane this part draws, the part)
            (self.stitched, lambda: self._show_pane(self.stitched, result.stitched, window, planes)),
            (self.difference, lambda: self._show_pane(self.difference, result.difference, centred, planes)),
            (None, lambda: self._show_figures(result)),
            (None, lambda: self._show_profile(result)),  # its own turn: the first imports pyqtgraph, makes the plot
        ]

        def shown() -> None:
            self._showing = None

        take_turns(self, (self.stitched, self.difference), steps, lambda: self._showing is result, shown)

    def _show_pane(self, pane: VolumePane, volume: Volume, window: WindowLevel, planes: list[float]) -> None:
        pane.crosshair = self.context.state.crosshair
        pane.set_planes("boundaries", SLAB_AXIS, planes)
        pane.set_volume(volume, window)

    def _show_figures(self, result: SeamComparison) -> None:
        self._fill_table(result)
        self._fill_boundaries(result)
        self.status.setText(self._summary(result))

    def _show_profile(self, result: SeamComparison) -> None:
        self.result = result
        self._draw_profile()

    def boundary_planes(self, result: SeamComparison) -> list[float]:
        """Slab boundaries in mm along k: between slices b-1 and b, i.e. at voxel b - 1/2."""
        affine = result.full.affine
        return [float(affine[SLAB_AXIS, 3] + affine[SLAB_AXIS, SLAB_AXIS] * (b - 0.5)) for b in result.boundaries]

    def _summary(self, result: SeamComparison) -> str:
        full, stitched = np.mean(result.scores_full), np.mean(result.scores_stitched)
        return (
            f"{result.label}: mean seam score full {score_text(full)}, stitched {score_text(stitched)} "
            f"(1.0 = no seam; reference planes b ± n·{result.period}, n = 1..3)"
        )

    def _fill_table(self, result: SeamComparison) -> None:
        rows = list(zip(result.boundaries, result.scores_full, result.scores_stitched))
        rows.append(("mean", float(np.mean(result.scores_full)), float(np.mean(result.scores_stitched))))
        self.table.setRowCount(len(rows))
        for row, (boundary, full, stitched) in enumerate(rows):
            ratio = stitched / full if full and np.isfinite(full) else float("nan")
            texts = [str(boundary), score_text(full), score_text(stitched), "-" if np.isnan(ratio) else f"{ratio:.2f}×"]
            for column, text in enumerate(texts):
                item = QTableWidgetItem(text)
                align = Qt.AlignmentFlag.AlignRight if column else Qt.AlignmentFlag.AlignCenter
                item.setTextAlignment(align | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)

    def _fill_boundaries(self, result: SeamComparison) -> None:
        self.boundary_box.blockSignals(True)
        self.boundary_box.clear()
        self.boundary_box.addItem("all boundaries", None)
        for number, boundary in enumerate(result.boundaries, start=1):
            self.boundary_box.addItem(f"k {boundary} (slabs {number}|{number + 1})", boundary)
        self.boundary_box.blockSignals(False)

    def _on_row_selected(self) -> None:
        rows = {index.row() for index in self.table.selectedIndexes()}
        if self.result is not None and len(rows) == 1:
            row = rows.pop()
            self.boundary_box.setCurrentIndex(row + 1 if row < len(self.result.boundaries) else 0)

    # -- profile plot ------------------------------------------------------------------------------

    def profile(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(full, stitched) values along k for a profile kind; 'line' runs through the crosshair."""
        result = self.result
        if kind != "line":
            return result.profiles[kind]
        affine = result.full.affine
        spacing = np.diag(affine)[:3]
        index = np.rint((self.context.state.crosshair - affine[:3, 3]) / spacing).astype(int)
        i, j = (int(np.clip(index[a], 0, result.full.array.shape[a] - 1)) for a in (0, 1))
        return result.full.array[i, j, :], result.stitched.array[i, j, :]

    def _ensure_plot(self) -> None:
        if self.plot is not None:
            return
        import pyqtgraph as pg

        self.plot = pg.PlotWidget(background="w")  # no legend box: the title names the curves, never over them
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setLabel("bottom", "slice k along the slab axis (S)")
        self.plot_placeholder.hide()
        self.plot_holder.addWidget(self.plot)

    def _draw_profile(self) -> None:
        if self.result is None:
            return
        import pyqtgraph as pg

        self._ensure_plot()
        result, kind = self.result, self.profile_box.currentData()
        full, stitched = self.profile(kind)
        unit = result.full.intensity.unit
        self.plot.clear()
        self.plot.setLabel("left", unit)  # a short axis title fits a narrow dock; the kind is in the title
        key = f"<span style='color:{FULL_PEN}'>━ full</span>  <span style='color:{STITCHED_PEN}'>━ stitched</span>"
        self.plot.setTitle(f"<span style='color:#333'>{PROFILES[kind]}</span>  {key}", size="9pt")
        slices = np.arange(len(full))
        self.plot.plot(slices, full, pen=pg.mkPen(FULL_PEN, width=2), name="full")
        self.plot.plot(slices, stitched, pen=pg.mkPen(STITCHED_PEN, width=2), name="stitched")
        chosen = self.boundary_box.currentData()
        for boundary in result.boundaries:
            strong = boundary == chosen
            pen = pg.mkPen("#c00030" if strong else "#999999", width=2 if strong else 1, style=Qt.PenStyle.DashLine)
            self.plot.addItem(pg.InfiniteLine(boundary - 0.5, angle=90, pen=pen))
        thickness = len(full) // 8
        if chosen is None:
            self.plot.setXRange(0, len(full) - 1, padding=0.02)
        else:
            self.plot.setXRange(max(0, chosen - 2 * thickness), min(len(full) - 1, chosen + 2 * thickness), padding=0)
        self.plot.enableAutoRange(axis="y")

    # -- evaluation ---------------------------------------------------------------------------------

    def open_evaluation(self):
        """The evaluation dialog for the current model (one, reused)."""
        from .evaluate_dialog import EvaluateDialog

        if self.context.state.model is None:
            self.context.report_error("open a model first")
            return None
        if self.evaluate_dialog is None:
            self.evaluate_dialog = EvaluateDialog(self.context, self.context.window)
        self.evaluate_dialog.show()
        self.evaluate_dialog.raise_()
        return self.evaluate_dialog

    def shutdown(self) -> None:
        """Close the VTK views while their GL context lives (MainWindow.closeEvent calls this)."""
        if self.evaluate_dialog is not None:
            self.evaluate_dialog.close()
        self.stitched.close_view()
        self.difference.close_view()
