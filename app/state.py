"""The application state: one observable object that panels edit and views listen to.

Panels never talk to views and views never talk to each other: a panel sets a value here, the
state emits the matching signal, and every listener updates itself. Setting a value equal to the
current one emits nothing, so listeners cannot ping-pong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import torch
from PySide6.QtCore import QObject, Signal

from engine.api import AnyModel, Part, Volume

from .render.window_level import WindowLevel


class RenderMode(StrEnum):
    """How a 3D view draws a volume."""

    VOLUME = "volume"
    ISOSURFACE = "isosurface"
    MIP = "mip"  # maximum intensity projection


RENDER_MODES = tuple(mode.value for mode in RenderMode)
LAYOUTS = ("side by side", "stacked")  # the hierarchy's three panes in a row or in a column
PREVIEW, FULL = "preview", "full"  # preview: anchor only, while a slider moves; full: every part


@dataclass(frozen=True)
class Latent:
    """A point in latent space with where it came from (``seed 3``, a bookmark's name, a scan)."""

    z: torch.Tensor = field(compare=False)  # (1, latent_dim), before truncation
    label: str
    seed: int | None = None

    @property
    def key(self) -> bytes:
        return self.z.detach().cpu().float().numpy().tobytes()

    def same_point(self, other: Latent | None) -> bool:
        return other is not None and self.key == other.key and self.label == other.label


@dataclass(frozen=True)
class LatentPath:
    """The interpolation path: keyframes (A, B, ...), the interpolation method and the position t."""

    keyframes: tuple[Latent, ...] = ()
    method: str = "slerp"
    t: float = 0.0

    def same_as(self, other: LatentPath) -> bool:
        keys = lambda path: tuple((k.key, k.label) for k in path.keyframes)  # noqa: E731
        return keys(self) == keys(other) and (self.method, self.t) == (other.method, other.t)


@dataclass
class LoadedModel:
    """A model as the app holds it: the engine's model object plus where it came from."""

    model: AnyModel  # HAGANModel or SplitShuffleModel
    path: str

    @property
    def card(self):
        return self.model.card

    @property
    def hierarchical(self) -> bool:
        return self.model.hierarchical

    @property
    def resolution(self) -> int:
        return self.card.config.resolution

    @property
    def slab_thickness(self) -> int:
        return self.resolution // 8

    @property
    def name(self) -> str:
        from pathlib import Path

        return self.card.name or Path(self.path).stem


class AppState(QObject):
    """Current model, latent, interpolation path, truncation, crosshair (mm), window/level, slab, 3D mode,
    layout and the volumes shown."""

    model_changed = Signal(object)  # LoadedModel | None
    latent_changed = Signal(object, str)  # Latent, PREVIEW | FULL
    truncation_changed = Signal(float)
    crosshair_changed = Signal(object)  # np.ndarray (3,), RAS mm
    window_changed = Signal(object)  # WindowLevel
    slab_changed = Signal(int)  # first voxel of the slab along k (a multiple of 4)
    render_mode_changed = Signal(str)  # one of RENDER_MODES
    volumes_changed = Signal(object)  # dict part -> Volume (anchor, slab, full; what the views show)
    layout_changed = Signal(str)  # one of LAYOUTS
    path_changed = Signal(object)  # LatentPath
    source_changed = Signal(str)  # the file whose volume is shown; "" when the model's parts are
    bookmarks_requested = Signal(object)  # list of Latents to bookmark (the latent panel keeps the store)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.model: LoadedModel | None = None
        self.latent: Latent | None = None
        self.quality = FULL
        self.truncation = 1.0
        self.crosshair = np.zeros(3)
        self.window: WindowLevel | None = None
        self.slab_start = 0
        self.render_mode = RenderMode.VOLUME
        self.volume_preset = 0  # index into the volume-rendering presets of the model's modality
        self.iso_value: float | None = None  # None: the preset's default level
        self.volumes: dict[str, Volume] = {}
        self.layout = LAYOUTS[0]
        self.path = LatentPath()
        self.file_source = ""  # a volume opened from a file replaces the model's parts until they come back

    def set_model(self, model: LoadedModel | None) -> None:
        """A new model: volumes of the old one are dropped and the slab goes back to the middle."""
        self.model = model
        self.volumes = {}
        self.file_source = ""  # (model_changed tells the views)
        self.slab_start = 0 if model is None else self._slab_in_range(model.resolution // 2)
        self.crosshair = np.zeros(3)
        self.model_changed.emit(model)

    def set_latent(self, latent: Latent, quality: str = FULL) -> None:
        if latent.same_point(self.latent) and quality == self.quality:
            return
        self.latent, self.quality = latent, quality
        self.latent_changed.emit(latent, quality)

    def set_truncation(self, value: float) -> None:
        if value != self.truncation:
            self.truncation = float(value)
            self.truncation_changed.emit(self.truncation)

    def set_crosshair(self, position_mm) -> None:
        position = np.asarray(position_mm, dtype=float).reshape(3)
        if not np.array_equal(position, self.crosshair):
            self.crosshair = position
            self.crosshair_changed.emit(position.copy())

    def set_window(self, window: WindowLevel) -> None:
        if window != self.window:
            self.window = window
            self.window_changed.emit(window)

    def set_slab_start(self, start: int) -> None:
        start = self._slab_in_range(start)
        if start != self.slab_start:
            self.slab_start = start
            self.slab_changed.emit(start)

    def set_render_mode(self, mode: str, preset: int | None = None) -> None:
        """3D mode, and optionally the volume-rendering preset."""
        if mode not in RENDER_MODES:
            raise ValueError(f"unknown 3D mode '{mode}'; choose one of {', '.join(RENDER_MODES)}")
        new = (mode, self.volume_preset if preset is None else int(preset))
        if new != (self.render_mode, self.volume_preset):
            self.render_mode, self.volume_preset = new
            self.render_mode_changed.emit(mode)

    def set_iso_value(self, value: float | None) -> None:
        """The isosurface level in the volume's physical units; None: the preset's default level."""
        value = None if value is None else float(value)
        if value != self.iso_value:
            self.iso_value = value
            self.render_mode_changed.emit(self.render_mode)

    def set_path(self, path: LatentPath) -> None:
        """The interpolation path (its panel shows the point at t by setting the latent)."""
        if not path.same_as(self.path):
            self.path = path
            self.path_changed.emit(path)

    def request_bookmarks(self, latents: list[Latent]) -> None:
        """Ask for these latents to be bookmarked, with the current truncation."""
        if latents:
            self.bookmarks_requested.emit(list(latents))

    def set_layout(self, layout: str) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout '{layout}'; choose one of {', '.join(LAYOUTS)}")
        if layout != self.layout:
            self.layout = layout
            self.layout_changed.emit(layout)

    def set_volumes(self, volumes: dict[str, Volume], replace: bool = False) -> None:
        """Parts replace the ones of the same name and the others stay (a slab move keeps the full
        volume), unless ``replace``: then only these parts are shown. The model's parts after a
        volume from a file bring back the model's own view settings (its default window)."""
        if not replace and self.file_source:
            self._leave_file()
            self.window = None  # the views pick the model's default window for these parts
            self.volumes = {}  # the file's volume goes
        self.volumes = dict(volumes) if replace else {**self.volumes, **volumes}
        self.volumes_changed.emit(dict(self.volumes))

    def show_file(self, volume: Volume, path: str, window: WindowLevel) -> None:
        """A volume opened from a file, as the full volume alone, with its own window."""
        self.file_source = str(path)
        self.source_changed.emit(self.file_source)
        self.set_window(window)
        self.set_volumes({Part.FULL: volume}, replace=True)

    def _leave_file(self) -> None:
        if self.file_source:
            self.file_source = ""
            self.source_changed.emit("")

    def _slab_in_range(self, start: int) -> int:
        """Snap to the 4-voxel grid of G^A's features and keep the slab inside the volume."""
        if self.model is None:
            return 0
        top = self.model.resolution - self.model.slab_thickness
        return int(min(max(0, round(start / 4) * 4), top))
