"""Latent directions found without labels: SeFa, the closed-form factorisation of the first layer.

Everything z changes passes through the generator's first layer, a Linear map W (fc1 of HA-GAN's
G^A, fc of a Split&Shuffle generator; no norm or activation before it). Moving z by α·n changes
that layer's output by α·W n, so the unit directions that change it most are the top eigenvectors
of WᵀW (Shen & Zhou, CVPR 2021). For conditional models only the columns that multiply z count.

Why SeFa: it is deterministic (the same directions on every run and machine), takes milliseconds
(one eigendecomposition of a latent_dim² matrix) and needs no sampling or forward pass. GANSpace's
PCA of sampled fc1 outputs would find the same directions here: fc1 is linear, so for z ~ N(0, I)
the outputs' covariance is W Wᵀ, whose principal axes map back to z as the eigenvectors of WᵀW.

A direction's ``share`` is its eigenvalue over the sum of all of them: how much of the first
layer's response to a random step it carries. z ~ N(0, I), so z·n is N(0, 1) for a unit n, and
α in [-3, 3] (±3σ) keeps a moved latent as typical as the one it started from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write
from .errors import ConfigError

SIGMA_RANGE = 3.0  # sliders and sweeps run over α in [-3, 3]


@dataclass
class Directions:
    """Unit directions in latent space (rows of ``vectors``), strongest first, with their eigenvalue shares."""

    vectors: np.ndarray  # (count, latent_dim), unit rows
    eigenvalues: np.ndarray  # (count,)
    shares: np.ndarray  # (count,) eigenvalue / sum of all eigenvalues
    method: str = "sefa"
    layer: str = ""
    model_hash: str = ""
    model_name: str = ""
    names: list[str] = field(default_factory=list)  # optional user names, "" where unnamed

    def __len__(self) -> int:
        return len(self.vectors)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "layer": self.layer,
            "model_hash": self.model_hash,
            "model_name": self.model_name,
            "latent_dim": int(self.vectors.shape[1]),
            "directions": [
                {"index": i, "eigenvalue": float(e), "share": float(s), "vector": [float(v) for v in vector]}
                for i, (vector, e, s) in enumerate(zip(self.vectors, self.eigenvalues, self.shares))
            ],
        }

    @classmethod
    def from_dict(cls, values: dict) -> Directions:
        entries = values["directions"]
        return cls(
            vectors=np.asarray([e["vector"] for e in entries], dtype=np.float32),
            eigenvalues=np.asarray([e["eigenvalue"] for e in entries], dtype=np.float64),
            shares=np.asarray([e["share"] for e in entries], dtype=np.float64),
            method=values.get("method", "sefa"),
            layer=values.get("layer", ""),
            model_hash=values.get("model_hash", ""),
            model_name=values.get("model_name", ""),
        )


def first_layer(model) -> tuple[str, torch.Tensor]:
    """The name and the z columns of the Linear layer that consumes z: (out_features, latent_dim)."""
    generator = model.generator
    name = "fc1" if hasattr(generator, "fc1") else "fc"
    layer = getattr(generator, name, None)
    if not isinstance(layer, torch.nn.Linear):
        raise ConfigError("this generator has no Linear first layer that takes z; SeFa needs one")
    latent_dim = model.card.config.latent_dim
    return name, layer.weight.detach()[:, :latent_dim]


def sefa(model, count: int = 10) -> Directions:
    """The ``count`` strongest directions of the model's first layer (eigenvectors of WᵀW), unit length.

    An eigenvector's sign is arbitrary; each is turned so that its largest component is positive,
    which makes the result identical on every run.
    """
    name, weight = first_layer(model)
    latent_dim = weight.shape[1]
    if not 1 <= count <= latent_dim:
        raise ConfigError(f"count must lie in [1, {latent_dim}] (the latent size), got {count}")
    w = weight.to("cpu", torch.float64)
    eigenvalues, eigenvectors = torch.linalg.eigh(w.T @ w)  # ascending
    order = torch.argsort(eigenvalues, descending=True)
    eigenvalues, eigenvectors = eigenvalues[order].clamp_min(0), eigenvectors[:, order]
    vectors = eigenvectors.T[:count]
    largest = vectors.gather(1, vectors.abs().argmax(dim=1, keepdim=True))
    vectors = vectors * torch.sign(largest)
    total = float(eigenvalues.sum()) or 1.0
    card = model.card
    return Directions(
        vectors=vectors.float().numpy(),
        eigenvalues=eigenvalues[:count].numpy(),
        shares=(eigenvalues[:count] / total).numpy(),
        layer=name,
        model_hash=card.content_hash,
        model_name=card.name,
    )


def move(z: torch.Tensor, direction, alpha: float) -> torch.Tensor:
    """z' = z + α·n with n the unit vector along ``direction`` (a vector of latent_dim values)."""
    n = torch.as_tensor(np.asarray(direction, dtype=np.float32)).reshape(1, -1)
    norm = float(n.norm())
    if norm == 0.0:
        raise ConfigError("a direction must not be the zero vector")
    if n.shape[1] != z.shape[-1]:
        raise ConfigError(f"direction has {n.shape[1]} values, the latent {z.shape[-1]}")
    return z + float(alpha) * (n / norm).to(z.dtype)


def move_along(z: torch.Tensor, directions: Directions, alphas) -> torch.Tensor:
    """z moved by alphas[k] along direction k for every k; a zero α leaves its direction out (z exactly
    unchanged when all are zero)."""
    moved = z
    for vector, alpha in zip(directions.vectors, alphas):
        if alpha:
            moved = move(moved, vector, alpha)
    return moved


def save_directions(directions: Directions, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise ConfigError(f"{path.name}: directions are written as a .json file")
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: folder {path.parent} does not exist")
    text = json.dumps(directions.to_dict(), indent=1)
    return atomic_write(path, lambda tmp: tmp.write_text(text), suffix=".json")


def load_directions(path: str | Path) -> Directions:
    path = Path(path)
    try:
        return Directions.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path}: not a directions file ({type(error).__name__})") from None
