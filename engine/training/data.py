"""The training data stream: which dataset, and batches that can be resumed exactly."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from torch.utils.data import Dataset
from tqdm import tqdm

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
        base_seed = cfg.seed * 1_000_003
        if cfg.phantom_cache:
            from ..data.phantom_cache import CachedPhantomDataset

            return CachedPhantomDataset(kind, cfg.resolution, cfg.phantom_count, base_seed, cfg.phantom_cache)
        return CachedDataset(PhantomDataset(kind, cfg.resolution, cfg.phantom_count, base_seed=base_seed))
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
            self.cache[index] = _make_half(self.dataset, index)
        volume, label = self.cache[index]
        return volume.float(), label

    def summary(self) -> dict:
        return self.dataset.summary()

    def fill(self, workers: int, show_progress: bool = True) -> None:
        """Make every missing item now, in ``workers`` processes: a fast GPU would otherwise wait
        seconds per phantom for the first epoch, and loader workers would each make their own."""
        missing = [index for index in range(len(self)) if index not in self.cache]
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            items = pool.map(_make_half, [self.dataset] * len(missing), missing, chunksize=2)
            made = tqdm(zip(missing, items), total=len(missing), desc="preparing data", disable=not show_progress)
            for index, item in made:
                self.cache[index] = item


def _make_half(dataset: Dataset, index: int):
    """Item ``index`` as kept in the cache (float16); a function, so pool processes can run it."""
    volume, label = dataset[index]
    return volume.half(), label


def data_stream(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    rank: int = 0,
    world: int = 1,
    workers: int = 0,
    show_progress: bool = True,
):
    """Endless batches that a checkpoint can restore exactly (``InfiniteLoader`` over ``EpochSampler``).

    Each process reads its own disjoint part of every epoch's permutation, so the processes
    together see what one process with the global batch would see. With ``workers``, data made
    on the fly (phantoms) is made whole first in that many processes and then served from memory.
    """
    from ..data.dataset import EpochSampler, InfiniteLoader

    if hasattr(dataset, "fill") and workers > 0:  # in memory or in a disk cache
        dataset.fill(workers, show_progress)
        workers = 0  # made now; loader workers would only copy it

    if len(dataset) < batch_size * world:
        raise ConfigError(f"the data has {len(dataset)} volumes, fewer than one global batch ({batch_size * world})")
    sampler = EpochSampler(len(dataset), seed, rank=rank, world_size=world, drop_last=True)
    return InfiniteLoader(dataset, sampler, batch_size, num_workers=workers)
