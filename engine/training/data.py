"""The training data stream: which dataset, and batches that can be resumed exactly."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError
from .config import TrainConfig

PHANTOM_PREFIX = "phantoms:"


def build_dataset(cfg: TrainConfig, is_main: bool = True, barrier=lambda: None) -> Dataset:
    """A data folder (preprocessed or plain NIfTI) or built-in phantoms ("phantoms:chest-ct").

    A plain NIfTI folder is preprocessed into ``<run>/data`` first (resumable, in parallel): every
    file is read once before training starts, so a bad file is named and skipped at the start
    instead of stopping the run halfway through.
    """
    if cfg.data.startswith(PHANTOM_PREFIX):
        from ..data.phantoms import PHANTOM_KINDS, PhantomDataset

        kind = cfg.data[len(PHANTOM_PREFIX) :]
        if kind not in PHANTOM_KINDS:
            raise ConfigError(f"unknown phantom kind '{kind}'; choose one of {', '.join(PHANTOM_KINDS)}")
        return CachedDataset(PhantomDataset(kind, cfg.resolution, cfg.phantom_count, base_seed=cfg.seed * 1_000_003))
    from ..data.dataset import VolumeFolder
    from ..data.preprocess import MANIFEST, PreprocessSettings, preprocess_folder

    root, skipped = Path(cfg.data), []
    if not (root / MANIFEST).exists():
        if not cfg.modality:
            raise ConfigError(f"{root}: a NIfTI folder needs --modality ct or mri (or run engine preprocess first)")
        settings = PreprocessSettings(modality=cfg.modality, window=cfg.window, size=cfg.resolution)
        target = Path(cfg.out) / "data"
        if is_main:
            report = preprocess_folder(root, target, settings, progress=True)
            skipped = list(report.skipped)
            if report.count == 0:
                raise ConfigError(f"{root}: no usable volumes")
        barrier()
        root = target
    dataset = VolumeFolder(root, size=cfg.resolution, augment=cfg.augment, seed=cfg.seed)
    dataset.skipped = skipped + list(dataset.skipped)
    return dataset


class CachedDataset(Dataset):
    """Keeps every item after its first use (float16), for data that is costly to make, like phantoms."""

    def __init__(self, dataset: Dataset):
        self.dataset, self.cache = dataset, {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        if index not in self.cache:
            volume, label = self.dataset[index]
            self.cache[index] = (volume.half(), label)
        volume, label = self.cache[index]
        return volume.float(), label

    def summary(self) -> dict:
        return self.dataset.summary()


class DataStream:
    """Batches forever, epoch after epoch, with a position that checkpoints can restore.

    Each process reads its own disjoint part of every epoch's permutation (EpochSampler), so the
    processes together see what one process with the global batch would see.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, rank: int = 0, world: int = 1, workers: int = 0):
        from ..data.dataset import EpochSampler

        if len(dataset) < batch_size * world:
            raise ConfigError(
                f"the data has {len(dataset)} volumes, fewer than one global batch ({batch_size * world})"
            )
        self.dataset, self.batch_size, self.workers = dataset, batch_size, workers
        self.sampler = EpochSampler(len(dataset), seed, rank=rank, world_size=world, drop_last=True)
        self.epoch, self.position = 0, 0  # position: items of this epoch already consumed here
        self._batches = None

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        while True:
            if self._batches is None:
                self._batches = self._epoch_batches()
            batch = next(self._batches, None)
            if batch is not None:
                self.position += batch[0].shape[0]
                return batch
            self.epoch, self.position, self._batches = self.epoch + 1, 0, None

    def _epoch_batches(self):
        self.sampler.set_epoch(self.epoch)
        indices = list(self.sampler)[self.position :]
        chunks = [indices[i : i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
        chunks = [c for c in chunks if len(c) == self.batch_size]
        if self.workers > 0:
            loader = DataLoader(self.dataset, batch_sampler=chunks, num_workers=self.workers, persistent_workers=False)
            yield from ((x, torch.as_tensor(y)) for x, y in loader)
            return
        for chunk in chunks:
            items = [self.dataset[i] for i in chunk]
            yield torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items])

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position, self._batches = int(state["epoch"]), int(state["position"]), None
