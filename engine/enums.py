"""The named choices the engine and the app pass around, as string enums.

Each member *is* its string (``Part.FULL == "full"``), so values read from JSON, command lines and
model cards compare equal to members, and members print, format and serialise as plain strings.
"""

from __future__ import annotations

from enum import StrEnum


class Part(StrEnum):
    """What of a hierarchical generator's output is made."""

    FULL = "full"  # G^H over all features: the whole high-resolution volume
    ANCHOR = "anchor"  # G^L: the low-resolution volume the hierarchy starts from
    SLAB = "slab"  # G^H on one sub-volume of features (what training sees)
    STITCHED = "stitched"  # the full volume built slab by slab


class Family(StrEnum):
    """Which GAN a run trains."""

    HA_GAN = "ha-gan"
    SPLIT_SHUFFLE = "split-shuffle"


class PhantomKind(StrEnum):
    """The built-in synthetic training data."""

    CHEST_CT = "chest-ct"
    BRAIN_MRI = "brain-mri"


PHANTOM_KINDS = tuple(kind.value for kind in PhantomKind)  # plain strings: argparse and messages show them


class Precision(StrEnum):
    """Arithmetic for generation and training; AUTO picks the device's default."""

    AUTO = "auto"
    FP32 = "fp32"
    TF32 = "tf32"  # fp32 storage, TensorFloat-32 matrix products (CUDA)
    BF16 = "bf16"
    FP16 = "fp16"
