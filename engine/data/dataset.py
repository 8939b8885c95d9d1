"""Training data: VolumeFolder (preprocessed or plain NIfTI folders), EpochSampler and endless batches.

Randomness is explicit: shuffling comes from a torch.Generator seeded with (seed, epoch) and
augmentation from one seeded with (seed, epoch, index), so a run resumed from
``{"epoch": e, "position": p}`` sees exactly the items and augmentations it would have seen.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import ConfigError, first_line
from .preprocess import (
    DEFAULT_SIZE,
    MANIFEST,
    PreprocessSettings,
    find_nifti_files,
    nifti_header_problem,
    nominal_spacing,
    output_names,
    preprocess_file,
    read_manifest,
    strip_suffix,
)

LABELS_FILE = "labels.csv"
FLIP_PROBABILITY = 0.5
GAMMA_RANGE = 1.25  # gamma log-uniform in [1/1.25, 1.25], applied to (x + 1) / 2
CONTRAST_RANGE = 0.1  # x * c with c uniform in [0.9, 1.1]
BRIGHTNESS_RANGE = 0.05  # x + b with b uniform in [-0.05, 0.05]
RANGE_TOLERANCE = 1e-3  # float16 arrays may round just past +-1
_SHUFFLE_STREAM, _AUGMENT_STREAM = 1, 2  # keep the two kinds of random numbers independent
_NAMES_SHOWN = 5


def seeded_generator(*values: int) -> torch.Generator:
    """A CPU generator whose seed mixes all the given non-negative integers."""
    state = np.random.SeedSequence([int(v) for v in values]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator("cpu").manual_seed(int(state))


def augment_volume(volume: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random left-right flip (network W) and mild gamma, contrast and brightness changes, clipped to [-1, 1]."""
    flip, gamma_u, contrast_u, shift_u = torch.rand(4, generator=generator).tolist()
    if flip < FLIP_PROBABILITY:
        volume = volume.flip(-1)
    gamma = GAMMA_RANGE ** (2.0 * gamma_u - 1.0)
    contrast = 1.0 + CONTRAST_RANGE * (2.0 * contrast_u - 1.0)
    shift = BRIGHTNESS_RANGE * (2.0 * shift_u - 1.0)
    unit = ((volume + 1.0) * 0.5).clamp_(0.0, 1.0).pow_(gamma)
    return unit.mul_(2.0 * contrast).add_(shift - contrast).clamp_(-1.0, 1.0)


@dataclass
class _Item:
    path: Path
    name: str
    keys: tuple[str, ...]  # names a labels CSV may use for this file
    spacing: tuple[float, float, float] | None = None
    label: int = -1


class VolumeFolder(Dataset):
    """Volumes of a preprocessed folder (manifest.json + .npy) or of a NIfTI folder (preprocessed per item).

    An item is ``(volume, label)``: a float32 tensor (1, S, S, S) in network layout and [-1, 1], and
    an int class (-1 without labels). ``dataset[(epoch, index)]`` also works, so augmentation stays
    reproducible inside persistent DataLoader workers.
    """

    epoch_aware = True

    def __init__(
        self,
        root: str | os.PathLike,
        modality: str | None = None,
        window: tuple[float, float] | None = None,
        size: int | None = None,
        trim_blank: bool | None = None,
        labels: str | os.PathLike | bool | None = None,
        augment: bool = False,
        seed: int = 0,
        strict: bool = False,
        validate: bool = True,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ConfigError(f"{self.root}: no such folder")
        if int(seed) < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed}")
        self.augment, self.seed, self.strict, self.epoch = bool(augment), int(seed), bool(strict), 0
        self.skipped: list[tuple[Path, str]] = []
        self.manifest: dict | None = read_manifest(self.root) if (self.root / MANIFEST).exists() else None
        if self.manifest is not None:
            self.settings = self._manifest_settings(modality, window, size, trim_blank)
            self.items = self._manifest_items()
        else:
            self.items = self._nifti_items()
            if not self.items:
                raise ConfigError(f"no usable volumes in {self.root} (no {MANIFEST}, no .nii or .nii.gz files)")
            self.settings = self._nifti_settings(modality, window, size, trim_blank)
        if not self.items:
            raise ConfigError(f"no usable volumes in {self.root}")
        if validate:
            self.validate()
        self.labels_path = self._labels_path(labels)
        if self.labels_path is not None:
            self._attach_labels(read_labels(self.labels_path))

    # -- construction ---------------------------------------------------------------------------

    def _manifest_settings(self, modality, window, size, trim_blank) -> PreprocessSettings:
        try:
            settings = PreprocessSettings.from_dict(self.manifest["settings"])
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"{self.root / MANIFEST}: bad settings ({first_line(error)})") from None
        asked = {"modality": modality, "window": window, "size": size, "trim_blank": trim_blank}
        for key, value in asked.items():
            held = getattr(settings, key)
            if key == "window" and value is not None:
                value = tuple(float(v) for v in value)
            if value is not None and value != held:
                raise ConfigError(f"{self.root} was preprocessed with {key}={held}, not {value}")
        return settings

    def _nifti_settings(self, modality, window, size, trim_blank) -> PreprocessSettings:
        if modality is None:
            raise ConfigError(
                f"{self.root} has no {MANIFEST}; to read NIfTI files directly give modality 'ct' or 'mri'"
            )
        return PreprocessSettings(
            modality, tuple(window) if window is not None else None, size or DEFAULT_SIZE, bool(trim_blank)
        )

    def _manifest_items(self) -> list[_Item]:
        items = []
        for entry in self.manifest["files"]:
            try:
                name = str(entry["name"])
                keys = (name, strip_suffix(str(entry.get("source_relative", name))))
                spacing = tuple(float(s) for s in entry["output_spacing"])
                items.append(_Item(self.root / str(entry["file"]), name, keys, spacing))
            except (KeyError, TypeError, ValueError) as error:
                raise ConfigError(f"{self.root / MANIFEST}: malformed file entry ({first_line(error)})") from None
        return items

    def _nifti_items(self) -> list[_Item]:
        files = find_nifti_files(self.root)
        names = output_names(files, self.root)
        return [
            _Item(f, name, (name, strip_suffix(f.relative_to(self.root).as_posix()))) for f, name in zip(files, names)
        ]

    def _labels_path(self, labels: str | os.PathLike | bool | None) -> Path | None:
        if labels is False:
            return None
        if labels is None or labels is True:
            path = self.root / LABELS_FILE
            if labels is True and not path.is_file():
                raise ConfigError(f"{path}: no such labels file")
            return path if path.is_file() else None
        path = Path(labels)
        if not path.is_file():
            raise ConfigError(f"{path}: no such labels file")
        return path

    def _attach_labels(self, table: dict[str, int]) -> None:
        missing = []
        for item in self.items:
            found = {table[key] for key in item.keys if key in table}
            if len(found) > 1:
                raise ConfigError(f"{self.labels_path}: {item.path.name} has conflicting labels {sorted(found)}")
            if not found:
                missing.append(item.path.name)
            else:
                item.label = found.pop()
        if missing:
            raise ConfigError(f"{self.labels_path}: no label for {len(missing)} file(s): {_names(missing)}")

    # -- checks ---------------------------------------------------------------------------------

    def validate(self) -> list[tuple[Path, str]]:
        """Check every item cheaply; strict: ConfigError naming the bad files, else drop them and warn."""
        bad = [(item, cause) for item in self.items if (cause := self._problem(item))]
        if not bad:
            return []
        described = _names([f"{item.path.name} ({cause})" for item, cause in bad], separator="; ")
        if self.strict:
            raise ConfigError(f"{len(bad)} unusable volume(s) in {self.root}: {described}")
        dropped = {id(item) for item, _ in bad}
        self.items = [item for item in self.items if id(item) not in dropped]
        skipped = [(item.path, cause) for item, cause in bad]
        self.skipped += skipped
        if not self.items:
            raise ConfigError(f"no usable volumes in {self.root}: {described}")
        warnings.warn(f"skipped {len(bad)} unusable volume(s) in {self.root}: {described}", stacklevel=2)
        return skipped

    def _problem(self, item: _Item) -> str | None:
        if self.manifest is not None:
            return npy_problem(item.path, self.settings.size)
        if not item.path.is_file():
            return "file is missing"
        problem = nifti_header_problem(item.path)
        if problem is None:
            item.spacing = nominal_spacing(item.path, self.settings.size)
        return problem

    # -- items ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = (int(index[0]), int(index[1])) if isinstance(index, tuple) else (self.epoch, int(index))
        if not -len(self.items) <= index < len(self.items):
            raise IndexError(f"index {index} is outside a dataset of {len(self.items)} volumes")
        index %= len(self.items)
        item = self.items[index]
        volume = torch.from_numpy(self._load(item))[None]
        if self.augment:
            volume = augment_volume(volume, seeded_generator(_AUGMENT_STREAM, self.seed, epoch, index))
        return volume, item.label

    def _load(self, item: _Item) -> np.ndarray:
        if self.manifest is None:
            return preprocess_file(item.path, self.settings)[0]
        return np.array(np.load(item.path, mmap_mode="r", allow_pickle=False), dtype=np.float32)

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for augmentation when items are asked for by a plain index."""
        self.epoch = int(epoch)

    # -- description ----------------------------------------------------------------------------

    @property
    def paths(self) -> list[Path]:
        return [item.path for item in self.items]

    @property
    def labels(self) -> list[int]:
        return [item.label for item in self.items]

    @property
    def num_classes(self) -> int:
        """max label + 1, or 0 without labels."""
        return max(self.labels) + 1 if self.labels_path is not None else 0

    def summary(self) -> dict:
        """The training data description for a model card."""
        for item in self.items:
            if item.spacing is None:
                item.spacing = nominal_spacing(item.path, self.settings.size)
        spacing = np.median(np.asarray([item.spacing for item in self.items]), axis=0)
        summary = {
            "root": str(self.root.resolve()),
            "kind": "nifti" if self.manifest is None else "preprocessed",
            "count": len(self.items),
            "skipped": len(self.skipped),
            "modality": self.settings.modality,
            "size": self.settings.size,
            "intensity": self.settings.intensity(),
            "spacing_mm": [round(float(s), 6) for s in spacing],
            "orientation": "RAS",
            "preprocessing": dict(self.manifest["settings"]) if self.manifest else self.settings.to_dict(),
            "num_classes": self.num_classes,
        }
        if self.manifest is not None:
            summary["engine_version"] = self.manifest.get("engine_version", "")
        if self.num_classes:
            summary["class_counts"] = np.bincount(self.labels, minlength=self.num_classes).tolist()
        return summary


def npy_problem(path: Path, size: int) -> str | None:
    """Why a preprocessed array is unusable (memory-mapped: header, then min and max), or None."""
    if not path.is_file():
        return "file is missing"
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as error:
        return f"not a readable .npy file ({first_line(error)})"
    if array.shape != (size,) * 3:
        return f"shape {tuple(array.shape)}, expected {(size,) * 3}"
    if array.dtype.kind != "f":
        return f"dtype {array.dtype} is not floating point"
    low, high = float(array.min()), float(array.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        return "has NaN or infinite values"
    if low == high:
        return f"every voxel has the same value ({low:g})"
    if low < -1.0 - RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        return f"values {low:g} .. {high:g} lie outside [-1, 1]"
    return None


def read_labels(path: str | os.PathLike) -> dict[str, int]:
    """A CSV with header ``file,label`` -> {file name without .npy/.nii/.nii.gz: label}."""
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read labels ({first_line(error)})") from None
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if "file" not in header or "label" not in header:
        raise ConfigError(f"{path}: the first line must be the header 'file,label'")
    file_col, label_col = header.index("file"), header.index("label")
    table: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(file_col, label_col):
            raise ConfigError(f"{path} line {number}: expected 'file,label'")
        name, text = row[file_col].strip(), row[label_col].strip()
        try:
            label = int(text)
        except ValueError:
            raise ConfigError(f"{path} line {number}: label '{text}' is not an integer") from None
        if label < 0:
            raise ConfigError(f"{path} line {number}: labels are integers >= 0, got {label}")
        key = strip_suffix(name.removeprefix("./"))
        if table.get(key, label) != label:
            raise ConfigError(f"{path} line {number}: '{name}' already has label {table[key]}")
        table[key] = label
    return table


def _names(names: list[str], separator: str = ", ") -> str:
    shown = separator.join(names[:_NAMES_SHOWN])
    return shown + (f"{separator}... ({len(names) - _NAMES_SHOWN} more)" if len(names) > _NAMES_SHOWN else "")


# -- sampling -------------------------------------------------------------------------------------


class EpochSampler(Sampler[int]):
    """One epoch of a fresh permutation per (seed, epoch); rank r of W takes items r, r+W, r+2W, ...

    With per-rank batches of b, step t of all ranks together covers global positions [t*b*W, (t+1)*b*W):
    the same items as one process with a global batch of b*W. drop_last drops the tail that does not
    divide by W; otherwise the permutation's start is repeated to fill it.
    """

    def __init__(self, length: int, seed: int = 0, rank: int = 0, world_size: int = 1, drop_last: bool = True):
        if length < 0 or seed < 0:
            raise ConfigError(f"length and seed must be non-negative, got {length} and {seed}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is not in a world of {world_size} process(es)")
        self.length, self.seed, self.rank, self.world_size, self.drop_last = length, seed, rank, world_size, drop_last
        self.epoch = 0
        self._start = 0  # where the next iteration begins (set by load_state_dict)
        self._cursor = 0  # items this epoch handed out so far

    @property
    def per_rank(self) -> int:
        """Items each rank gets in a full epoch."""
        return self.length // self.world_size if self.drop_last else math.ceil(self.length / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._start, self._cursor = int(epoch), 0, 0

    def permutation(self, epoch: int | None = None) -> torch.Tensor:
        """The global order of an epoch (all ranks)."""
        epoch = self.epoch if epoch is None else epoch
        return torch.randperm(self.length, generator=seeded_generator(_SHUFFLE_STREAM, self.seed, epoch))

    def indices(self, epoch: int | None = None) -> list[int]:
        """This rank's indices for a whole epoch."""
        order = self.permutation(epoch)
        total = self.per_rank * self.world_size
        if total > self.length:
            order = order.repeat(math.ceil(total / self.length))
        return order[:total][self.rank :: self.world_size].tolist()

    def __iter__(self):
        start, self._start = self._start, 0
        self._cursor = start
        return self._walk(self.indices()[start:], start)

    def _walk(self, indices: list[int], start: int):
        for offset, index in enumerate(indices, start=start + 1):
            self._cursor = offset
            yield index

    def __len__(self) -> int:
        return max(0, self.per_rank - self._start)

    def state_dict(self, consumed: int | None = None) -> dict:
        """{"epoch", "position"}: position = items of this epoch consumed (default: handed out so far)."""
        position = self._cursor if consumed is None else int(consumed)
        if not 0 <= position <= self.per_rank:
            raise ConfigError(f"position {position} is outside an epoch of {self.per_rank} items")
        return {"epoch": self.epoch, "position": position}

    def load_state_dict(self, state: dict) -> None:
        """The next iteration continues after the first ``position`` indices of epoch ``epoch``."""
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position <= self.per_rank:
            raise ConfigError(f"cannot resume at epoch {epoch}, position {position} (epoch has {self.per_rank})")
        self.epoch, self._start, self._cursor = epoch, position, position


class _EpochBatches:
    """Batches of a sampler's current epoch, dropping the incomplete last one; (epoch, index) when tagged."""

    def __init__(self, sampler: EpochSampler, batch_size: int, tagged: bool) -> None:
        self.sampler, self.batch_size, self.tagged = sampler, batch_size, tagged

    def __iter__(self):
        epoch, batch = self.sampler.epoch, []
        for index in self.sampler:
            batch.append((epoch, index) if self.tagged else index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size


class InfiniteLoader:
    """Endless (volumes, labels) batches, epoch after epoch; ``state_dict()`` says where to continue.

    ``position`` counts items consumed on this rank in the current epoch (batches * batch_size).
    Incomplete last batches are dropped, so all ranks take the same number of steps per epoch.
    """

    def __init__(
        self,
        dataset: Dataset,
        sampler: EpochSampler,
        batch_size: int,
        num_workers: int = 0,
        pin_memory: bool = False,
        state: dict | None = None,
    ) -> None:
        if batch_size < 1 or num_workers < 0:
            raise ConfigError(f"batch size must be >= 1 and workers >= 0, got {batch_size} and {num_workers}")
        if len(dataset) != sampler.length:
            raise ConfigError(f"the sampler covers {sampler.length} items but the dataset has {len(dataset)}")
        if sampler.per_rank < batch_size:
            raise ConfigError(
                f"{sampler.length} volumes over {sampler.world_size} process(es) give {sampler.per_rank} per epoch, "
                f"fewer than one batch of {batch_size}"
            )
        self.dataset, self.sampler, self.batch_size = dataset, sampler, batch_size
        batches = _EpochBatches(sampler, batch_size, tagged=getattr(dataset, "epoch_aware", False))
        self._loader = DataLoader(
            dataset,
            batch_sampler=batches,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=num_workers > 0,
        )
        self.epoch, self.position = sampler.epoch, 0
        self._iterator = None
        if state is not None:
            self.load_state_dict(state)

    def __iter__(self) -> InfiniteLoader:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        while True:
            if self._iterator is None:
                self.sampler.load_state_dict({"epoch": self.epoch, "position": self.position})
                if hasattr(self.dataset, "set_epoch"):
                    self.dataset.set_epoch(self.epoch)
                self._iterator = iter(self._loader)
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator, self.epoch, self.position = None, self.epoch + 1, 0
                continue
            self.position += self.batch_size
            return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        """Continue after ``position`` items of epoch ``epoch`` (batches already in flight are discarded)."""
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position <= self.sampler.per_rank:
            raise ConfigError(f"cannot resume at epoch {epoch}, position {position}")
        self.epoch, self.position, self._iterator = epoch, position, None


def batches(
    dataset: Dataset,
    sampler: EpochSampler,
    batch_size: int,
    num_workers: int = 0,
    pin_memory: bool = False,
    state: dict | None = None,
) -> InfiniteLoader:
    """Endless batches over epochs, restorable from ``state`` ({"epoch", "position"})."""
    return InfiniteLoader(dataset, sampler, batch_size, num_workers, pin_memory, state)
