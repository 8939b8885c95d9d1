"""The dict round trip every network configuration shares (its fields are stored in model cards)."""

from __future__ import annotations

from dataclasses import asdict


class DictConfig:
    """``to_dict`` / ``from_dict`` for a configuration dataclass; unknown keys (other card fields) are ignored."""

    @classmethod
    def from_dict(cls, values: dict):
        known = {k: values[k] for k in cls.__dataclass_fields__ if k in values}
        return cls(**known)

    def to_dict(self) -> dict:
        return asdict(self)
