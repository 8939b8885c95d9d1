"""Phantoms made once and kept on disk, memory-mapped: shared by runs, resumes and evaluations.

A phantom takes seconds to make (about 1-2 s at 128^3 on one core), so a run over 2000 of them
used to spend minutes before its first iteration, and again on every resume. The cache stores
each phantom as the network sees it (float16, (S, S, S), values in [-1, 1]) in

    DIR/<kind>-<size>-<version>/<seed>.npy

where ``version`` is a hash of the source of the phantom modules that decide the voxels (and, for
the brain, nilearn's version, whose MNI template it uses), so a changed generator never serves
stale volumes. Files are written atomically (two runs making the same seed at once both write the
same bytes) and read with ``numpy.load(mmap_mode="r")``: every process shares one copy in the page cache.
A cache folder of one kind and size is also a real set for ``engine evaluate`` (``.npy`` arrays in
network layout); ``engine phantoms --cache DIR --out FOLDER`` links chosen seeds into a folder.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from importlib import metadata
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from ..atomic import atomic_write
from .phantoms import PhantomDataset, brain_mri, chest_ct, make_phantom, shapes
from .phantoms import dataset as phantom_dataset

# The modules whose source decides a phantom's voxels, hashed in this order (the CLI decides none).
GENERATOR_MODULES = (phantom_dataset, shapes, chest_ct, brain_mri)


@cache
def generator_version(kind: str) -> str:
    """A short hash of what decides a phantom's voxels besides its seed and size."""
    digest = hashlib.sha256()
    for module in GENERATOR_MODULES:
        digest.update(Path(module.__file__).read_bytes())
    if kind == "brain-mri":
        digest.update(metadata.version("nilearn").encode())
    return digest.hexdigest()[:10]


class PhantomCache:
    """The phantoms of one kind and size under a cache folder."""

    def __init__(self, root: str | os.PathLike, kind: str, size: int):
        PhantomDataset(kind, size, 1)  # validates kind and size (one-line errors)
        self.kind, self.size = kind, size
        self.folder = Path(root).expanduser() / f"{kind}-{size}-{generator_version(kind)}"

    def path(self, seed: int) -> Path:
        return self.folder / f"{seed}.npy"

    def load(self, seed: int) -> np.ndarray:
        """Phantom ``seed`` as a read-only memory map (made and stored first when missing)."""
        path = self.path(seed)
        if not path.exists():
            self.make(seed)
        return np.load(path, mmap_mode="r")

    def make(self, seed: int) -> None:
        volume = make_phantom(self.kind, self.size, seed).to_network()[0, 0].clamp_(-1.0, 1.0)
        array = volume.half().numpy()
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path(seed), lambda tmp: _save(tmp, array))

    def missing(self, seeds) -> list[int]:
        return [seed for seed in seeds if not self.path(seed).exists()]

    def fill(self, seeds, workers: int = 1, show_progress: bool = True) -> int:
        """Make every missing phantom of ``seeds`` in ``workers`` processes; returns how many were made."""
        missing = self.missing(seeds)
        if not missing:
            return 0
        bar = tqdm(total=len(missing), desc=f"phantom cache ({self.kind} {self.size}^3)", disable=not show_progress)
        if workers <= 1:
            for seed in missing:
                self.make(seed)
                bar.update()
        else:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                for _ in pool.map(_make, [self] * len(missing), missing, chunksize=1):
                    bar.update()
        bar.close()
        return len(missing)

    def link(self, seeds, folder: str | os.PathLike) -> Path:
        """A folder of links to these seeds' arrays: a real set for ``engine evaluate``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            link = folder / f"{self.kind}-{seed:05d}.npy"
            link.unlink(missing_ok=True)
            link.symlink_to(self.path(seed).resolve())
        return folder


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a handle: np.save would append .npy to the temporary name
        np.save(handle, array)


def _make(cache: PhantomCache, seed: int) -> None:
    """One phantom into the cache; a module function, so pool processes can run it."""
    cache.make(seed)


class CachedPhantomDataset(Dataset):
    """``PhantomDataset``'s items (seed base_seed + i) served from a ``PhantomCache``."""

    def __init__(self, kind: str, size: int, length: int, base_seed: int, root: str | os.PathLike):
        self.phantoms = PhantomDataset(kind, size, length, base_seed)
        self.cache = PhantomCache(root, kind, size)

    def __len__(self) -> int:
        return len(self.phantoms)

    def seeds(self) -> range:
        return range(self.phantoms.base_seed, self.phantoms.base_seed + len(self))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"phantom {index} out of range ({len(self)})")
        array = self.cache.load(self.phantoms.base_seed + index)
        return torch.from_numpy(np.asarray(array, dtype=np.float32))[None], -1

    def summary(self) -> dict:
        return self.phantoms.summary()

    def fill(self, workers: int, show_progress: bool = True) -> None:
        self.cache.fill(self.seeds(), workers, show_progress)
