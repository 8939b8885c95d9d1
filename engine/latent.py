"""Latents: seed -> z (the shared contract), seed lists, truncation, lerp and slerp (paths: ``interpolation``)."""

from __future__ import annotations

import re

import torch

from .errors import ConfigError
from .validation import MAX_SEED, MAX_SEEDS


def seed_to_z(seed: int, latent_dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """z(seed) = randn(1, latent_dim) from a CPU generator seeded with ``seed``, then moved.

    Drawing on the CPU makes "seed 42" the same volume on every device.
    """
    if seed < 0:
        raise ConfigError(f"seeds are non-negative integers, got {seed}")
    generator = torch.Generator("cpu").manual_seed(seed)
    return torch.randn(1, latent_dim, generator=generator).to(device)


def seeds_to_z(seeds: list[int], latent_dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """One row per seed, each drawn exactly like ``seed_to_z``."""
    return torch.cat([seed_to_z(s, latent_dim) for s in seeds]).to(device)


_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$", re.ASCII)


def parse_seeds(text: str) -> list[int]:
    """Parse a seed list such as "0,3,10-12" into [0, 3, 10, 11, 12] (order kept).

    Sizes are checked before a range is expanded: at most ``MAX_SEEDS`` seeds, each in [0, 2**63 - 1].
    """
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part.isascii() and part.isdigit():
            bounds = (int(part), int(part))
        elif m := _RANGE.match(part):
            bounds = (int(m.group(1)), int(m.group(2)))
            if bounds[1] < bounds[0]:
                raise ConfigError(f"seed range '{part}' runs backwards")
        else:
            raise ConfigError(f"cannot read seed list '{text:.80}': '{part:.40}' is not a seed or a range like 10-12")
        if bounds[1] > MAX_SEED:
            raise ConfigError(f"seed {part:.40} is beyond the largest seed, 2**63 - 1")
        if len(seeds) + bounds[1] - bounds[0] + 1 > MAX_SEEDS:
            raise ConfigError(f"seed list '{text:.80}' names more than {MAX_SEEDS} seeds")
        seeds.extend(range(bounds[0], bounds[1] + 1))
    if not seeds:
        raise ConfigError(f"seed list '{text}' names no seeds")
    return seeds


def truncate(z: torch.Tensor, truncation: float) -> torch.Tensor:
    """The truncation trick for a N(0, I) latent: scale z toward the mean (0) by ``truncation``.

    1.0 leaves z unchanged; smaller values trade variety for typical-looking samples.
    """
    if not 0.0 < truncation <= 1.0:
        raise ConfigError(f"truncation must lie in (0, 1], got {truncation}")
    return z * truncation


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Linear interpolation between latents."""
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation along the great circle, with the norm interpolated linearly.

    Gaussian latents concentrate near a sphere, so slerp keeps intermediate latents typical
    where lerp shrinks them toward the origin. Falls back to lerp for (anti)parallel latents.
    """
    a_norm, b_norm = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    cos = ((a / a_norm) * (b / b_norm)).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    if bool((sin.abs() < 1e-6).any()):
        return lerp(a, b, t)
    direction = (torch.sin((1 - t) * omega) * a / a_norm + torch.sin(t * omega) * b / b_norm) / sin
    return direction * (a_norm + (b_norm - a_norm) * t)
