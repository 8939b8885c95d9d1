"""Thumbnails of many seeds: one 2D slice per seed, from the anchor (fast) or the full volume, cached.

A thumbnail is the slice of one plane (axial, coronal, sagittal) at a relative position, in the
model's physical units, laid out as the app's panes show it (the patient's right on the left,
anterior or superior at the top). Only the slice leaves the generator: the volume is dropped.
Thumbnails are cached before windowing, so a new window/level reuses them.

``ThumbnailCache`` keeps recent thumbnails in memory (least recently used first out, bounded in
bytes) and, given a folder, on disk (one small ``.npz`` per thumbnail, the oldest pruned beyond a
byte bound). The key is model hash, seed, truncation, class label, plane, full-resolution slice
index, source level and (other than exact fp32) precision, so a revisit costs a dictionary or file
lookup, not a forward pass.

Thumbnails are previews: ``ThumbnailSpec.precision`` may be a faster, inexact one (bf16 where the
device runs it natively, see ``engine.precision``); ``auto`` is the device's default.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .atomic import atomic_write
from .enums import Part
from .errors import ConfigError
from .generate import DEFAULT_BUDGET_MB, FastGenerator, GenerationOptions, auto_batch_size, generate_part
from .latent import seed_to_z, truncate
from .precision import EXACT, math_mode, resolve_precision

PLANES = {"axial": 2, "coronal": 1, "sagittal": 0}  # plane -> the volume axis (i, j, k) it is normal to
LEVELS = (Part.ANCHOR.value, Part.FULL.value)  # plain strings: argparse shows their repr
DEFAULT_MEMORY_BYTES = 64 << 20  # 1024 full-resolution 128^2 thumbnails, or 256 of 256^2
DEFAULT_DISK_BYTES = 512 << 20
FEATURE_BYTES = 128 << 20  # G^A features kept so a page's full-resolution pass skips G^A
SYNTHETIC = "SYNTHETIC"
SHEET_GAP, SHEET_HEADER = 4, 28  # contact sheet: pixels between cells, height of the title line


@dataclass(frozen=True)
class ThumbnailSpec:
    """What every thumbnail of a page shows: the plane, where, from which level, for which latents."""

    plane: str = "axial"
    position: float = 0.5  # 0 = first slice, 1 = last slice along the plane's normal
    level: str = Part.FULL  # "anchor" (S/4 voxels, fast) or "full"; one-piece models always give "full"
    truncation: float = 1.0
    label: int | None = None  # class of conditional models
    precision: str = "auto"  # arithmetic of the forward passes (engine.precision); auto: the device's default

    def check(self) -> None:
        if self.plane not in PLANES:
            raise ConfigError(f"unknown plane '{self.plane}'; choose one of {', '.join(PLANES)}")
        if self.level not in LEVELS:
            raise ConfigError(f"unknown level '{self.level}'; choose anchor or full")
        if not 0.0 <= self.position <= 1.0:
            raise ConfigError(f"slice position must lie in [0, 1], got {self.position}")
        truncate(torch.zeros(1), self.truncation)  # refuses a truncation outside (0, 1]


@dataclass(frozen=True)
class Thumbnail:
    """One seed's slice in physical units, rows top to bottom, with its pixel size in mm (row, column)."""

    seed: int
    level: str
    image: np.ndarray  # (rows, columns) float32
    pixel_mm: tuple[float, float]

    @property
    def nbytes(self) -> int:
        return int(self.image.nbytes)


def level_for(model, level: str) -> str:
    """The level a model can give: one-piece (Split&Shuffle) models have no anchor, only the full volume."""
    return level if getattr(model, "hierarchical", True) else Part.FULL


def slice_index(resolution: int, position: float) -> int:
    """The full-resolution slice at a relative position."""
    return int(round(position * (resolution - 1)))


def anchor_index(full_index: int, feature_size: int) -> int:
    """The anchor slice whose centre lies nearest the full-resolution slice's centre (anchor voxels are
    4 full voxels wide, their centres 1.5 full voxels past the first full voxel's)."""
    return int(min(max(round((full_index - 1.5) / 4), 0), feature_size - 1))


def cut(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """The ``plane`` slice ``index`` of an (i, j, k) RAS array, as the panes lay it out."""
    return np.ascontiguousarray(np.take(volume, index, axis=PLANES[plane])[::-1, ::-1].T)


def window_image(image: np.ndarray, width: float, level: float) -> np.ndarray:
    """Physical values -> uint8 grey through a window (below: black, above: white)."""
    low = level - width / 2.0
    scaled = (np.asarray(image, dtype=np.float32) - low) / max(float(width), 1e-12)
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def percentile_window(images: list[np.ndarray], low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """(width, level) spanning two percentiles of the thumbnails' values."""
    values = np.concatenate([np.asarray(i, dtype=np.float32).ravel() for i in images])
    a, b = (float(v) for v in np.percentile(values, [low, high]))
    width = b - a if b > a else max(abs(a), 1.0)
    return width, a + width / 2.0


class ThumbnailCache:
    """Thumbnails by key: recent ones in memory (bounded by ``memory_bytes``), all in ``folder`` if given.

    Safe to share between the thread that makes thumbnails and the one that shows them.
    """

    def __init__(
        self,
        folder: str | Path | None = None,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        disk_bytes: int = DEFAULT_DISK_BYTES,
    ):
        self.folder = Path(folder) if folder else None
        self.memory_bytes, self.disk_bytes = int(memory_bytes), int(disk_bytes)
        self._memory: OrderedDict[str, Thumbnail] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()
        self._writes = 0
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    @property
    def used_bytes(self) -> int:
        return self._used

    def get(self, key: str, memory_only: bool = False) -> Thumbnail | None:
        """The cached thumbnail or None; ``memory_only`` skips the disk (for the UI thread)."""
        with self._lock:
            found = self._memory.get(key)
            if found is not None:
                self._memory.move_to_end(key)
                return found
        if memory_only or self.folder is None:
            return None
        path = self._path(key)
        try:
            with np.load(path) as stored:
                found = Thumbnail(int(stored["seed"]), str(stored["level"]), stored["image"], tuple(stored["pixel_mm"]))
        except (OSError, KeyError, ValueError):
            return None  # absent, or a torn file from another program: make it again
        self._remember(key, found)
        return found

    def put(self, key: str, thumbnail: Thumbnail) -> None:
        self._remember(key, thumbnail)
        if self.folder is None:
            return

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(
                    handle,
                    seed=thumbnail.seed,
                    level=thumbnail.level,
                    image=thumbnail.image,
                    pixel_mm=np.asarray(thumbnail.pixel_mm),
                )

        try:
            atomic_write(self._path(key), write, suffix=".npz")
        except OSError:
            return  # a full or read-only disk only costs the disk cache
        self._writes += 1
        if self._writes % 64 == 0:
            self.prune()

    def prune(self) -> None:
        """Delete the least recently written files beyond ``disk_bytes``."""
        if self.folder is None:
            return
        files = sorted(self.folder.glob("*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
        total = 0
        for path in files:
            total += path.stat().st_size
            if total > self.disk_bytes:
                path.unlink(missing_ok=True)

    def _remember(self, key: str, thumbnail: Thumbnail) -> None:
        with self._lock:
            old = self._memory.pop(key, None)
            self._used -= old.nbytes if old is not None else 0
            self._memory[key] = thumbnail
            self._used += thumbnail.nbytes
            while self._used > self.memory_bytes and len(self._memory) > 1:
                _, dropped = self._memory.popitem(last=False)
                self._used -= dropped.nbytes

    def _path(self, key: str) -> Path:
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".npz")


class ThumbnailMaker:
    """Makes (or finds in the cache) thumbnails of one model; one maker serves one thread."""

    def __init__(self, model, cache: ThumbnailCache | None = None, budget_mb: float = DEFAULT_BUDGET_MB):
        self.model = model
        self.cache = cache or ThumbnailCache(memory_bytes=0)
        self.hierarchical = bool(getattr(model, "hierarchical", True))
        self.budget_mb = budget_mb
        self._runners: dict[str, FastGenerator] = {}  # precision -> runner
        self._features: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        card = model.card
        self.model_key = card.content_hash or f"{card.name}:{id(model)}"  # no hash: cached while the app runs only

    def key(self, seed: int, spec: ThumbnailSpec) -> str:
        level = level_for(self.model, spec.level)
        index = slice_index(self.model.card.config.resolution, spec.position)
        precision = self.precision(spec)
        exact = "" if precision == EXACT else f"|{precision}"  # exact keys as before precision was a choice
        return f"{self.model_key}|{seed}|{spec.truncation:.6g}|{spec.label}|{spec.plane}|{index}|{level}{exact}"

    def precision(self, spec: ThumbnailSpec) -> str:
        """The precision this spec's thumbnails are made in on the model's device (a one-line error if refused)."""
        return resolve_precision(spec.precision, self.model.device)

    def cached(self, seed: int, spec: ThumbnailSpec, memory_only: bool = False) -> Thumbnail | None:
        return self.cache.get(self.key(seed, spec), memory_only)

    def make(
        self,
        seeds: list[int],
        spec: ThumbnailSpec,
        batch_size: int | None = None,
        check: Callable[[], None] | None = None,
    ) -> Iterator[Thumbnail]:
        """Thumbnails in seed order: cached ones at once, the others ``batch_size`` latents per forward pass.

        ``check()`` runs before every forward pass (a job's progress call, which raises to cancel).
        """
        spec.check()
        self.precision(spec)
        if any(s < 0 for s in seeds):
            raise ConfigError("seeds are non-negative integers")
        level = level_for(self.model, spec.level)
        if batch_size is None:
            batch_size = auto_batch_size(self.model, level, len(seeds), GenerationOptions())
        pending: list[int] = []
        for position, seed in enumerate(seeds):
            found = self.cached(seed, spec)
            if found is None:
                pending.append(seed)
            last = position == len(seeds) - 1
            if pending and (len(pending) == batch_size or last or found is not None):
                if check:
                    check()
                yield from self._generate(pending, spec, level)
                pending = []
            if found is not None:
                yield found

    def _generate(self, seeds: list[int], spec: ThumbnailSpec, level: str) -> list[Thumbnail]:
        model = self.model
        config, card = model.card.config, model.card
        z = torch.cat([truncate(seed_to_z(s, config.latent_dim), spec.truncation) for s in seeds])
        labels = None if spec.label is None else torch.full((len(seeds),), spec.label)
        precision = self.precision(spec)
        if self.hierarchical:
            runner = self._runner(precision)
            with math_mode(precision, model.device):
                features = self._features_for(seeds, spec, z, labels)
                volumes = runner.anchor(features) if level == Part.ANCHOR else runner.full(features)
        else:
            volumes = generate_part(model, z, Part.FULL, labels=labels, precision=precision)
        index = slice_index(config.resolution, spec.position)
        spacing = np.asarray(card.spacing_mm, dtype=float)
        if level == Part.ANCHOR:
            index, spacing = anchor_index(index, config.feature_size), spacing * 4
        across, down = (a for a in range(3) if a != PLANES[spec.plane])
        made = []
        for seed, tensor in zip(seeds, volumes):
            array = tensor[0].float().cpu().numpy().transpose(2, 1, 0)  # (D, H, W) -> (i, j, k), a view
            image = card.intensity.to_physical(cut(array, spec.plane, index))
            thumbnail = Thumbnail(seed, level, image.astype(np.float32), (float(spacing[down]), float(spacing[across])))
            self.cache.put(self.key(seed, spec), thumbnail)
            made.append(thumbnail)
        return made

    def _runner(self, precision: str) -> FastGenerator:
        if precision not in self._runners:
            self._runners[precision] = FastGenerator(self.model.generator, self.budget_mb, precision)
        return self._runners[precision]

    def _features_for(self, seeds, spec: ThumbnailSpec, z: torch.Tensor, labels) -> torch.Tensor:
        """G^A's features, kept for the anchor pass's latents so the full pass that follows skips G^A."""
        precision = self.precision(spec)
        keys = [(s, spec.truncation, spec.label, precision) for s in seeds]
        if all(k in self._features for k in keys):
            return torch.cat([self._features[k] for k in keys])
        device = self.model.device
        features = self._runner(precision).features(z.to(device), None if labels is None else labels.to(device))
        for key, row in zip(keys, features):
            self._features[key] = row[None]
        while len(self._features) > 1 and sum(f.nbytes for f in self._features.values()) > FEATURE_BYTES:
            self._features.popitem(last=False)
        return features


def thumbnail_picture(thumbnail: Thumbnail, width: float, level: float, cell: int) -> Image.Image:
    """A windowed thumbnail as a grey picture fitting a ``cell``-pixel square at its physical aspect."""
    grey = Image.fromarray(window_image(thumbnail.image, width, level), mode="L")
    rows, columns = thumbnail.image.shape
    height_mm, width_mm = rows * thumbnail.pixel_mm[0], columns * thumbnail.pixel_mm[1]
    scale = cell / max(height_mm, width_mm)
    size = (max(1, round(width_mm * scale)), max(1, round(height_mm * scale)))
    return grey.resize(size, Image.Resampling.BILINEAR)


def contact_sheet(
    thumbnails: list[Thumbnail],
    window: tuple[float, float],
    columns: int | None = None,
    cell: int = 192,
    title: str = "",
) -> Image.Image:
    """A grid of windowed thumbnails, each labelled with its seed and SYNTHETIC, under a title line."""
    if not thumbnails:
        raise ConfigError("a contact sheet needs at least one thumbnail")
    columns = columns or math.ceil(math.sqrt(len(thumbnails)))
    if columns < 1:
        raise ConfigError(f"columns must be at least 1, got {columns}")
    rows = math.ceil(len(thumbnails) / columns)
    gap, header = SHEET_GAP, SHEET_HEADER
    sheet = Image.new("RGB", (columns * (cell + gap) + gap, header + rows * (cell + gap) + gap), (20, 20, 24))
    draw = ImageDraw.Draw(sheet)
    big, small = ImageFont.load_default(size=16), ImageFont.load_default(size=max(10, cell // 14))
    outline = {"stroke_width": 1, "stroke_fill": (0, 0, 0)}
    draw.text((gap, header // 2), f"{SYNTHETIC}  {title}".rstrip(), font=big, fill=(255, 80, 80), anchor="lm")
    for number, thumbnail in enumerate(thumbnails):
        x, y = cell_origin(number, columns, cell)
        picture = thumbnail_picture(thumbnail, *window, cell)
        sheet.paste(picture.convert("RGB"), (x + (cell - picture.width) // 2, y + (cell - picture.height) // 2))
        draw.text(
            (x + 3, y + cell - 3), f"seed {thumbnail.seed}", font=small, fill=(230, 230, 230), anchor="ld", **outline
        )
        draw.text((x + cell - 3, y + 3), SYNTHETIC, font=small, fill=(255, 80, 80), anchor="ra", **outline)
    return sheet


def cell_origin(number: int, columns: int, cell: int = 192) -> tuple[int, int]:
    """Top-left pixel of cell ``number`` in a contact sheet."""
    step = cell + SHEET_GAP
    return SHEET_GAP + (number % columns) * step, SHEET_HEADER + SHEET_GAP + (number // columns) * step


def check_sheet_path(path: str | Path) -> Path:
    """Refuse a contact-sheet target that cannot work (not .png, no such folder), before any work."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"{path.name}: a contact sheet is a PNG file (name ending in .png)")
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: folder {path.parent} does not exist")
    return path


def save_contact_sheet(sheet: Image.Image, path: str | Path) -> Path:
    """Write the sheet as PNG atomically."""
    path = check_sheet_path(path)
    return atomic_write(path, lambda tmp: sheet.save(tmp, "PNG"), suffix=".png")
