"""Run checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is written to a temporary file in the same folder and renamed into place, so a
crash at any moment leaves either the previous complete checkpoint or the new one, never a torn
file under a checkpoint's name. The last ``keep`` checkpoints are kept. Files load with
``torch.load(weights_only=True)``: they hold only tensors, numbers, strings, lists and dicts.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from ..errors import CheckpointError, TrainingError, first_line

_NAME = re.compile(r"^checkpoint-(\d{8})\.pt$")


def checkpoint_path(folder: Path, iteration: int) -> Path:
    return folder / f"checkpoint-{iteration:08d}.pt"


def write_checkpoint(folder: Path, iteration: int, payload: dict, keep: int) -> Path:
    """Write atomically, then delete all but the newest ``keep`` checkpoints."""
    folder.mkdir(parents=True, exist_ok=True)
    target = checkpoint_path(folder, iteration)
    try:
        atomic_write(target, lambda tmp: _write_payload(payload, str(tmp)))
    except (OSError, RuntimeError) as error:  # torch reports a full disk as a RuntimeError of its writer
        kept = list_checkpoints(folder)
        last = f"the newest complete one, {kept[-1].name}, is kept" if kept else "no complete one is kept yet"
        raise TrainingError(f"{target}: could not write the checkpoint ({first_line(error, 160)}); {last}") from None
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return target


def _write_payload(payload: dict, path: str) -> None:
    """torch.save, flushed to the disk before the rename makes it the checkpoint."""
    with open(path, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary files are never listed)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))


def kept_iterations(folder: Path) -> list[int]:
    """The iterations of the complete checkpoints in ``folder``, oldest first."""
    return [int(_NAME.match(p.name).group(1)) for p in list_checkpoints(folder)]


def load_latest(folder: Path) -> dict | None:
    """The newest checkpoint that reads back; a damaged newest one falls back to the one before."""
    problems = []
    for path in reversed(list_checkpoints(folder)):
        try:
            return {**_read(path), "_skipped": problems}
        except Exception as error:  # a damaged file: report and try the previous one
            problems.append(f"{path.name}: {first_line(error, 120)}")
    if problems:
        raise CheckpointError(f"{folder}: no readable checkpoint ({'; '.join(problems)})")
    return None


def load_at(folder: Path, iteration: int) -> dict:
    """The kept checkpoint of ``iteration``, or a one-line error naming the ones that are kept."""
    path = checkpoint_path(folder, iteration)
    if not path.exists():
        kept = ", ".join(map(str, kept_iterations(folder))) or "none"
        raise CheckpointError(f"{folder}: no checkpoint of iteration {iteration} (kept: {kept})")
    try:
        return {**_read(path), "_skipped": []}
    except Exception as error:
        raise CheckpointError(f"{path}: {first_line(error, 120)}") from error


def read_checkpoint(path: Path) -> dict:
    """One run checkpoint (tensors, numbers, text only), with its path under ``_path``."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict):
        raise CheckpointError(f"holds a {type(payload).__name__}, not a run checkpoint")
    return {**payload, "_path": str(path)}


_read = read_checkpoint

_RUN_KEYS = ("iteration", "elapsed", "models", "optimizers", "scalers", "rng", "data")


def checkpoint_mismatch(payload: dict, networks: dict[str, torch.nn.Module], optimizers) -> str:
    """Why ``payload`` is not a checkpoint of this run's networks ("" when it is), without loading it."""
    missing = [key for key in _RUN_KEYS if key not in payload]
    if missing:
        return f"not a run checkpoint (no '{missing[0]}')"
    models = payload["models"]
    if not isinstance(models, dict) or not isinstance(payload["optimizers"], dict):
        return "not a run checkpoint (malformed networks)"
    for name, net in networks.items():
        state = models.get(name)
        if not isinstance(state, dict):
            return f"has no network {name}"
        expected = net.state_dict()
        if set(state) != set(expected):
            return f"network {name} has other layers (another architecture)"
        for key, value in expected.items():
            if not isinstance(state[key], torch.Tensor) or state[key].shape != value.shape:
                return f"network {name} has other layer sizes ('{key}'; another architecture)"
    absent = [name for name in optimizers if name not in payload["optimizers"]]
    return f"has no optimiser state for {absent[0]}" if absent else ""


# -- random number generators ------------------------------------------------------------------


def capture_rng(generators: dict[str, torch.Generator]) -> dict:
    """Every RNG state as plain tensors, lists and numbers (weights_only-safe)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, generators: dict[str, torch.Generator]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    for name, g in generators.items():
        g.set_state(state["generators"][name])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
