"""Network definitions (no I/O, no devices)."""

from .hagan import Discriminator, Encoder, Generator, HAGANConfig, SubEncoder, encode_volume

__all__ = ["Discriminator", "Encoder", "Generator", "HAGANConfig", "SubEncoder", "encode_volume"]
