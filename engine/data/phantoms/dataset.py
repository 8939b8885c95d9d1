"""Phantoms by kind, size and seed: as volumes, as a torch dataset of network tensors, as NIfTI files.

Every phantom is drawn from ``numpy.random.default_rng(seed)``, so a seed always gives the same
volume. A kind has a fixed field of view, so one seed renders the same subject at every size.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from ...card import CT_WINDOW
from ...enums import PHANTOM_KINDS, PhantomKind
from ...errors import ConfigError
from ...nifti import save_nifti
from ...volume import IntensityMapping, Volume, generated_affine
from ..preprocess import PreprocessSettings
from .brain_mri import MRI_FOREGROUND_REFERENCE, MRI_WINDOW, make_brain_mri
from .chest_ct import make_chest_ct

FOV_MM = {PhantomKind.CHEST_CT: 380.0, PhantomKind.BRAIN_MRI: 220.0}
MODALITY = {PhantomKind.CHEST_CT: "ct", PhantomKind.BRAIN_MRI: "mri"}
MIN_SIZE, MAX_SIZE = 32, 256
GENERATOR = "engine.data.phantoms"


def phantom_intensity(kind: str) -> IntensityMapping:
    """The intensity mapping of a phantom kind (network [-1, 1] <-> physical units)."""
    return CT_WINDOW if check_kind(kind) == PhantomKind.CHEST_CT else MRI_WINDOW


def phantom_preprocessing(kind: str, size: int) -> PreprocessSettings:
    """What phantom training data amounts to as preprocessing: the kind's window, its fixed spacing."""
    mapping = phantom_intensity(kind)
    return PreprocessSettings(
        MODALITY[kind],
        window=(mapping.low, mapping.high),
        size=size,
        resample="spacing",
        spacing_mm=(phantom_spacing(kind, size),) * 3,
        reference=MRI_FOREGROUND_REFERENCE if kind == PhantomKind.BRAIN_MRI else None,
    )


def phantom_spacing(kind: str, size: int) -> float:
    """Isotropic voxel size in mm: a fixed field of view over ``size`` voxels."""
    return FOV_MM[check_kind(kind)] / check_size(size)


def make_phantom(kind: str, size: int, seed: int) -> Volume:
    """One synthetic size^3 volume in physical units (HU for CT, a.u. for MRI), RAS, centred."""
    kind, size, seed = check_kind(kind), check_size(size), check_seed(seed)
    spacing = phantom_spacing(kind, size)
    rng = np.random.default_rng(seed)
    array = make_chest_ct(rng, size, spacing) if kind == PhantomKind.CHEST_CT else make_brain_mri(rng, size, spacing)
    provenance = {"phantom": kind, "seed": seed, "synthetic": True, "generator": GENERATOR}
    return Volume(array, generated_affine(size, (spacing,) * 3), phantom_intensity(kind), provenance)


class PhantomDataset(Dataset):
    """Fresh phantoms as network tensors: item i is the phantom of seed base_seed + i."""

    def __init__(self, kind: str, size: int, length: int, base_seed: int = 0) -> None:
        self.kind, self.size = check_kind(kind), check_size(size)
        self.length, self.base_seed = check_count(length), check_seed(base_seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -self.length <= index < self.length:
            raise IndexError(f"phantom {index} out of range ({self.length})")
        volume = make_phantom(self.kind, self.size, self.base_seed + index % self.length)
        return volume.to_network()[0].clamp_(-1.0, 1.0), -1

    def summary(self) -> dict:
        """The training data description for a model card."""
        spacing = [phantom_spacing(self.kind, self.size)] * 3
        return {
            "kind": self.kind,
            "modality": MODALITY[self.kind],
            "count": self.length,
            "size": self.size,
            "base_seed": self.base_seed,
            "intensity": phantom_intensity(self.kind).to_dict(),
            "spacing": spacing,
            "spacing_mm": spacing,
            "orientation": "RAS",
            "synthetic": True,
            "generator": GENERATOR,
            "preprocessing": phantom_preprocessing(self.kind, self.size).to_dict(),
        }


def write_phantoms(
    kind: str, count: int, size: int, out_dir: str | Path, seed: int = 0, progress: bool = True
) -> list[Path]:
    """Write ``count`` phantoms (seeds seed..seed+count-1) as ``<kind>-<seed:05d>.nii.gz`` files."""
    kind, size, count, seed = check_kind(kind), check_size(size), check_count(count), check_seed(seed)
    out_dir = check_out(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    seeds = range(seed, seed + count)
    for s in tqdm(seeds, desc=f"{kind} {size}^3", unit="vol", file=sys.stderr, disable=not progress):
        path = out_dir / f"{kind}-{s:05d}.nii.gz"
        paths.append(save_nifti(make_phantom(kind, size, s), path, f"PHANTOM {kind} seed {s}"))
    return paths


def check_kind(kind: str) -> str:
    """``kind`` if it is a phantom kind, else a ConfigError."""
    if kind not in PHANTOM_KINDS:
        raise ConfigError(f"unknown phantom kind '{kind}'; choose one of {', '.join(PHANTOM_KINDS)}")
    return kind


def check_size(size: int) -> int:
    """``size`` if it is a power of two in MIN_SIZE..MAX_SIZE, else a ConfigError."""
    if not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE or size & (size - 1):
        raise ConfigError(f"phantom size must be a power of two from {MIN_SIZE} to {MAX_SIZE}, got {size}")
    return int(size)


def check_count(count: int) -> int:
    """``count`` if it is a positive integer, else a ConfigError."""
    if not isinstance(count, (int, np.integer)) or count < 1:
        raise ConfigError(f"phantom count must be at least 1, got {count}")
    return int(count)


def check_seed(seed: int) -> int:
    """``seed`` if it is a non-negative integer (numpy seeds are), else a ConfigError."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"phantom seed must be a non-negative integer, got {seed}")
    return int(seed)


def check_out(out_dir: str | Path) -> Path:
    """``out_dir`` as a Path, unless it names an existing file."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file; phantoms are written into a folder")
    return out_dir
