"""Built-in training data: procedural chest CT and MNI152-derived brain T1 phantoms.

``dataset`` makes phantoms by kind, size and seed (volumes, a torch dataset, NIfTI files),
``chest_ct`` and ``brain_mri`` paint the two kinds, ``shapes`` is the geometric toolkit they share,
and ``cli`` is the ``engine phantoms`` command. The names below are the package's public face.
"""

from .brain_mri import MNI_BRAIN_CENTRE_MM, MRI_FOREGROUND_REFERENCE, MRI_WINDOW
from .chest_ct import HU
from .cli import register, run_phantoms
from .dataset import (
    FOV_MM,
    GENERATOR,
    MAX_SIZE,
    MIN_SIZE,
    MODALITY,
    PHANTOM_KINDS,
    PhantomDataset,
    make_phantom,
    phantom_intensity,
    phantom_preprocessing,
    phantom_spacing,
    write_phantoms,
)

__all__ = [
    "FOV_MM",
    "GENERATOR",
    "HU",
    "MAX_SIZE",
    "MIN_SIZE",
    "MNI_BRAIN_CENTRE_MM",
    "MODALITY",
    "MRI_FOREGROUND_REFERENCE",
    "MRI_WINDOW",
    "PHANTOM_KINDS",
    "PhantomDataset",
    "make_phantom",
    "phantom_intensity",
    "phantom_preprocessing",
    "phantom_spacing",
    "register",
    "run_phantoms",
    "write_phantoms",
]
