"""The dict round trip every network configuration shares (its fields are stored in model cards)."""

from __future__ import annotations

from dataclasses import asdict

from ..errors import ConfigError


class DictConfig:
    """``to_dict`` / ``from_dict`` for a configuration dataclass; unknown keys (other card fields) are ignored."""

    @classmethod
    def from_dict(cls, values: dict):
        known = {k: values[k] for k in cls.__dataclass_fields__ if k in values}
        for key, value in known.items():  # a card is read from a file: 32.5 or "64" is no width
            kind = cls.__dataclass_fields__[key].type
            kind = getattr(kind, "__name__", kind)
            if kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
                raise ConfigError(f"{key} must be an integer, got {value!r:.40}")
            if kind == "str" and not isinstance(value, str):
                raise ConfigError(f"{key} must be text, got {value!r:.40}")
        return cls(**known)

    def to_dict(self) -> dict:
        return asdict(self)
