"""Network definitions (no I/O, no devices)."""

from .hagan import Discriminator, Encoder, Generator, HAGANConfig, SubEncoder, encode_volume
from .inflate import STRATEGIES, inflate, inflate_state_dict
from .split_shuffle import (
    BLOCK_TYPES,
    SplitShuffleConfig,
    SplitShuffleConv,
    SplitShuffleDiscriminator,
    SplitShuffleGenerator,
    channel_shuffle,
)

__all__ = [
    "BLOCK_TYPES",
    "STRATEGIES",
    "Discriminator",
    "Encoder",
    "Generator",
    "HAGANConfig",
    "SplitShuffleConfig",
    "SplitShuffleConv",
    "SplitShuffleDiscriminator",
    "SplitShuffleGenerator",
    "SubEncoder",
    "channel_shuffle",
    "encode_volume",
    "inflate",
    "inflate_state_dict",
]
