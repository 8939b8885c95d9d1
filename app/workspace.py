"""Workspaces: what a user set up while exploring, in a readable JSON file that brings it back.

A workspace names its model by path and content hash and holds the latent (its seed, or the
vector itself when it is not a seed), truncation, interpolation keyframes and method, window/level,
crosshair, slab, 3D mode and layout. Opening one loads its model through the usual background
path when another one is shown, then puts every value back in the state. A missing or changed
model is said in one line; the rest is restored on the model at hand.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import QObject, Signal

from engine.api import INTERPOLATION_METHODS, atomic_write, seed_to_z

from .context import AppContext
from .render.window_level import WindowLevel
from .settings import user_data_dir
from .state import FULL, LAYOUTS, RENDER_MODES, AppState, Latent, LatentPath, LoadedModel, RenderMode

FORMAT = "gan-volume-explorer/workspace"
VERSION = 1
SUFFIX = ".json"
WORKSPACE_FILES = "Workspaces (*.json);;All files (*)"
LAST_WORKSPACE = "last-workspace.json"  # in the user data folder, written when the app closes
METHODS = INTERPOLATION_METHODS
NUMBER_LIST = re.compile(r"\[\s*(-?[0-9][-+0-9.eE,\s]*?)\s*\]")


class WorkspaceError(ValueError):
    """A workspace file that cannot be used; the message is the one-line cause naming the file."""


def last_workspace_path() -> Path:
    return user_data_dir() / LAST_WORKSPACE


@dataclass(frozen=True)
class LatentEntry:
    """A latent as the file keeps it: a seed (redrawn at the model's size) or the vector itself."""

    label: str
    seed: int | None = None
    z: tuple[float, ...] | None = None

    @classmethod
    def of(cls, latent: Latent) -> LatentEntry:
        if latent.seed is not None and torch.equal(latent.z.cpu(), seed_to_z(latent.seed, latent.z.shape[-1])):
            return cls(latent.label, latent.seed)
        # float32 -> Python float is exact, and JSON keeps 17 digits: the vector comes back bit for bit
        return cls(latent.label, latent.seed, tuple(float(v) for v in latent.z.detach().cpu().float().reshape(-1)))

    def latent(self, latent_dim: int) -> Latent | None:
        """The latent for a model with ``latent_dim`` values; None when a stored vector does not fit."""
        if self.z is None:
            return Latent(seed_to_z(self.seed, latent_dim), self.label, self.seed)
        if len(self.z) != latent_dim:
            return None
        return Latent(torch.tensor(self.z, dtype=torch.float32).reshape(1, -1), self.label, self.seed)

    def to_json(self) -> dict:
        values: dict = {"label": self.label, "seed": self.seed}
        if self.z is not None:
            values["z"] = list(self.z)
        return values

    @classmethod
    def from_json(cls, values, where: str) -> LatentEntry:
        if not isinstance(values, dict) or not isinstance(values.get("label", ""), str):
            raise ValueError(f"{where} must be an object with a label")
        seed, z = values.get("seed"), values.get("z")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise ValueError(f"{where}: the seed must be a non-negative integer")
        if z is not None:
            array = np.asarray(z)
            if array.ndim != 1 or array.dtype.kind not in "iuf" or not np.isfinite(array).all():
                raise ValueError(f"{where}: 'z' must be a list of finite numbers")
            z = tuple(float(v) for v in array.astype(np.float32))
        elif seed is None:
            raise ValueError(f"{where} needs a seed or a 'z' vector")
        return cls(values.get("label") or (f"seed {seed}" if seed is not None else "latent"), seed, z)


@dataclass(frozen=True)
class Workspace:
    """Everything a workspace file holds (see the module's docstring)."""

    model_path: str = ""
    model_hash: str = ""
    model_name: str = ""
    model_resolution: int | None = None
    latent: LatentEntry | None = None
    truncation: float = 1.0
    keyframes: tuple[LatentEntry, ...] = ()
    method: str = "slerp"
    t: float = 0.0
    window: WindowLevel | None = None
    crosshair: tuple[float, float, float] = (0.0, 0.0, 0.0)
    slab_start: int = 0
    render_mode: str = RenderMode.VOLUME
    volume_preset: int = 0
    iso_value: float | None = None
    layout: str = LAYOUTS[0]
    saved: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    @classmethod
    def of(cls, state: AppState) -> Workspace:
        model = state.model
        return cls(
            model_path=str(Path(model.path).resolve()) if model else "",
            model_hash=model.card.content_hash if model else "",
            model_name=model.name if model else "",
            model_resolution=model.resolution if model else None,
            latent=LatentEntry.of(state.latent) if state.latent is not None else None,
            truncation=state.truncation,
            keyframes=tuple(LatentEntry.of(k) for k in state.path.keyframes),
            method=state.path.method,
            t=state.path.t,
            window=state.window,
            crosshair=tuple(float(v) for v in state.crosshair),
            slab_start=state.slab_start,
            render_mode=state.render_mode,
            volume_preset=state.volume_preset,
            iso_value=state.iso_value,
            layout=state.layout,
        )

    def to_json(self) -> dict:
        window = None if self.window is None else {"width": self.window.width, "level": self.window.level}
        return {
            "format": FORMAT,
            "version": VERSION,
            "saved": self.saved,
            "model": {
                "path": self.model_path,
                "content_hash": self.model_hash,
                "name": self.model_name,
                "resolution": self.model_resolution,
            },
            "latent": None if self.latent is None else self.latent.to_json(),
            "truncation": self.truncation,
            "interpolation": {"method": self.method, "t": self.t, "keyframes": [k.to_json() for k in self.keyframes]},
            "window": window,
            "crosshair_mm": list(self.crosshair),
            "slab_start": self.slab_start,
            "render": {"mode": self.render_mode, "preset": self.volume_preset, "iso_value": self.iso_value},
            "layout": self.layout,
        }

    @classmethod
    def from_json(cls, values) -> Workspace:
        """Raises ValueError (or KeyError/TypeError) naming the bad entry."""
        if not isinstance(values, dict) or values.get("format") != FORMAT:
            raise ValueError("not a GAN Volume Explorer workspace (no 'format' entry)")
        if not isinstance(values.get("version"), int) or values["version"] > VERSION:
            raise ValueError(f"workspace version {values.get('version')!r} is newer than this app reads ({VERSION})")
        model = values.get("model") or {}
        path = values.get("interpolation") or {}
        window = values.get("window")
        render = values.get("render") or {}
        crosshair = [float(v) for v in values.get("crosshair_mm", (0, 0, 0))]
        if len(crosshair) != 3 or not np.isfinite(crosshair).all():
            raise ValueError("'crosshair_mm' must be three finite numbers")
        mode = render.get("mode", RenderMode.VOLUME)
        layout, method = values.get("layout", LAYOUTS[0]), path.get("method")
        for name, value, choices in (("3D mode", mode, RENDER_MODES), ("layout", layout, LAYOUTS)):
            if value not in choices:
                raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(choices)}")
        if method not in (None, *METHODS):
            raise ValueError(f"unknown interpolation method {method!r}; expected slerp or lerp")
        iso = render.get("iso_value")
        resolution = model.get("resolution")
        return cls(
            model_path=str(model.get("path") or ""),
            model_hash=str(model.get("content_hash") or ""),
            model_name=str(model.get("name") or ""),
            model_resolution=None if resolution is None else int(resolution),
            latent=None if values.get("latent") is None else LatentEntry.from_json(values["latent"], "'latent'"),
            truncation=float(values.get("truncation", 1.0)),
            keyframes=tuple(
                LatentEntry.from_json(k, f"keyframe {i + 1}") for i, k in enumerate(path.get("keyframes", []))
            ),
            method=method or "slerp",
            t=min(1.0, max(0.0, float(path.get("t", 0.0)))),
            window=None if window is None else WindowLevel(float(window["width"]), float(window["level"])),
            crosshair=tuple(crosshair),
            slab_start=int(values.get("slab_start", 0)),
            render_mode=mode,
            volume_preset=int(render.get("preset", 0)),
            iso_value=None if iso is None else float(iso),
            layout=layout,
            saved=str(values.get("saved", "")),
        )


def write_workspace(path: str | os.PathLike, workspace: Workspace) -> Path:
    """Write the workspace as indented JSON, atomically (a crash leaves the old file or the new one)."""
    text = json.dumps(workspace.to_json(), indent=2) + "\n"
    text = NUMBER_LIST.sub(lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)  # a vector on one line
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), suffix=SUFFIX)


def read_workspace(path: str | os.PathLike) -> Workspace:
    """The workspace in ``path``; every problem is a WorkspaceError with a one-line cause naming the file."""
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkspaceError(f"{path}: no such file") from None
    except json.JSONDecodeError as error:
        cause = f"broken JSON: {error.msg} at line {error.lineno}"
        raise WorkspaceError(f"{path}: not a workspace file ({cause})") from None
    except (OSError, UnicodeDecodeError) as error:
        cause = getattr(error, "strerror", None) or error
        raise WorkspaceError(f"{path}: cannot read the workspace ({cause})") from None
    try:
        return Workspace.from_json(values)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        cause = f"missing entry {error}" if isinstance(error, KeyError) else str(error).splitlines()[0]
        raise WorkspaceError(f"{path}: bad workspace ({cause})") from None


class WorkspaceController(QObject):
    """Saves the state as a workspace and restores one, opening its model first when needed."""

    restored = Signal(str)  # the workspace's file, after its values reached the state

    def __init__(self, context: AppContext, parent: QObject | None = None):
        super().__init__(parent)
        self.context = context
        self._pending: tuple[Workspace, str] | None = None  # waiting for its model to load
        context.state.model_changed.connect(self._on_model)
        context.generation.model_failed.connect(lambda _message: self._on_model_failed())

    def save(self, path: str | os.PathLike) -> bool:
        """Write the current workspace; a file that cannot be written is a one-line error."""
        try:
            written = write_workspace(path, Workspace.of(self.context.state))
        except OSError as error:
            self.context.report_error(f"{path}: cannot save the workspace ({error.strerror or error})")
            return False
        self.context.show_message(f"Saved workspace {written.name}")
        return True

    def autosave(self) -> Path | None:
        """The workspace as the app closes, for 'Reopen last workspace' (only once a model was shown).

        A file that cannot be written is one line (closing goes on): the next start would otherwise
        offer an older workspace without a word."""
        if self.context.state.model is None:
            return None
        path = last_workspace_path()
        try:
            return write_workspace(path, Workspace.of(self.context.state))
        except OSError as error:
            older = "; 'Reopen last workspace' will offer an older one" if path.exists() else ""
            self.context.report_error(f"{path}: cannot save the workspace to reopen ({error.strerror or error}){older}")
            return None

    def open(self, path: str | os.PathLike) -> bool:
        """Restore a workspace: at once on the model shown, or after its model loaded in the background."""
        try:
            workspace = read_workspace(path)
        except WorkspaceError as error:
            self.context.report_error(str(error))
            return False
        source, state = str(path), self.context.state
        self._pending = None
        model_path = workspace.model_path
        if not model_path or self._is_shown(workspace, state.model):
            self._apply(workspace, source, self._changed(workspace, state.model))
        elif not Path(model_path).exists():
            self._apply(workspace, source, f"its model {model_path} is missing")
        else:
            self._pending = (workspace, source)
            self.context.generation.open(model_path, workspace.model_resolution)
        return True

    @staticmethod
    def _is_shown(workspace: Workspace, model: LoadedModel | None) -> bool:
        return model is not None and Path(model.path).resolve() == Path(workspace.model_path).resolve()

    def _on_model(self, model: LoadedModel | None) -> None:
        if self._pending is None:
            return
        (workspace, source), self._pending = self._pending, None
        if not self._is_shown(workspace, model):
            return  # another model was opened meanwhile: that one wins
        self._apply(workspace, source, self._changed(workspace, model))

    @staticmethod
    def _changed(workspace: Workspace, model: LoadedModel | None) -> str:
        if model is None or not workspace.model_hash or model.card.content_hash == workspace.model_hash:
            return ""
        return f"its model {workspace.model_path} changed since it was saved"

    def _on_model_failed(self) -> None:
        """The model could not load (its own error was shown): the rest goes on the model at hand."""
        if self._pending is not None:
            (workspace, source), self._pending = self._pending, None
            self._apply(workspace, source)

    def _apply(self, workspace: Workspace, source: str, problem: str = "") -> None:
        state = self.context.state
        state.set_layout(workspace.layout)
        state.set_render_mode(workspace.render_mode, workspace.volume_preset)
        state.set_iso_value(workspace.iso_value)
        state.set_truncation(workspace.truncation)
        skipped = 0
        model = state.model
        if model is not None:
            size = model.card.config.latent_dim
            keyframes = [k.latent(size) for k in workspace.keyframes]
            skipped = sum(k is None for k in keyframes)
            path = LatentPath(tuple(k for k in keyframes if k is not None), workspace.method, workspace.t)
            state.set_path(path)
            state.set_slab_start(workspace.slab_start)
            latent = workspace.latent.latent(size) if workspace.latent is not None else None
            skipped += workspace.latent is not None and latent is None
            if latent is not None:
                state.set_latent(latent, FULL)
        if workspace.window is not None:
            state.set_window(workspace.window)
        state.set_crosshair(workspace.crosshair)
        name = Path(source).name
        if skipped:
            problem = "; ".join(p for p in (problem, f"{skipped} latent(s) do not fit {model.name}") if p)
        if problem:
            self.context.report_error(f"{name}: {problem}; the rest of the workspace is restored")
        else:
            self.context.show_message(f"Restored workspace {name}")
        self.restored.emit(source)
