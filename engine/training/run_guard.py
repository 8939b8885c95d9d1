"""What keeps a run folder usable: one process at a time, settings that survive a kill, no stale temp files.

- ``RunLock``: ``RUN/.lock`` holds the pid and host of the training process; a second process on the
  same run is refused, a lock whose process has died is taken over.
- ``load_run_config``: ``config.json``, or, when a kill or a full disk left it empty or torn, the
  settings every checkpoint carries (the newest readable one).
- ``resumed_config``: options given with ``--resume`` either change the run (iterations, learning rates,
  logging and checkpoint intervals) or are refused in one line.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict
from pathlib import Path

from ..errors import ConfigError, first_line
from .config import TrainConfig
from .run_checkpoint import kept_iterations, list_checkpoints, read_checkpoint

# settings a resumed run may change: they do not change the networks, the data or the optimiser's kind
CHANGEABLE_ON_RESUME = (
    "iterations",
    "lr_g",
    "lr_d",
    "lr_e",
    "log_every",
    "preview_every",
    "checkpoint_every",
    "keep",
    "workers",
    "name",
)
LOCK_NAME = ".lock"
TEMP_PATTERNS = (".checkpoint-*.pt.*.tmp", ".config.json.*.tmp", ".model.safetensors.*.tmp")


class RunLock:
    """An exclusive lock on a run folder for one training process (a file holding ``pid host``)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.held = False
        self.took_over: str = ""  # the stale holder, when its lock was taken over

    def acquire(self) -> RunLock:
        mine = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read()
                if holder is None or _alive(*holder):
                    who = f"process {holder[0]} on {holder[1]}" if holder else "another process"
                    raise ConfigError(
                        f"{self.path.parent} is in use by {who} (lock {self.path}); wait for it to finish or stop it"
                    ) from None
                self.took_over = f"process {holder[0]}"
                self.path.unlink(missing_ok=True)  # its process is gone: a stale lock
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(mine)
            if self.path.read_text() == mine:  # another process taking over the same stale lock lost the race
                self.held = True
                return self
        raise ConfigError(f"{self.path}: could not lock the run folder")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def _read(self) -> tuple[int, str] | None:
        """(pid, host) of the holder; None when the lock cannot be read (being written: treat as held)."""
        try:
            pid, host = self.path.read_text().split()
            return int(pid), host
        except FileNotFoundError:
            return (0, "")  # released in between: take it
        except (OSError, ValueError):
            return None


def _alive(pid: int, host: str) -> bool:
    if pid <= 0:
        return False
    if host != socket.gethostname():
        return True  # cannot tell from here: assume the other machine's process still runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, someone else's
    return True


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete the temporary files a kill left behind (call while holding the lock)."""
    removed = []
    for folder in (run_dir, run_dir / "checkpoints"):
        if folder.is_dir():
            for pattern in TEMP_PATTERNS:
                for path in folder.glob(pattern):
                    path.unlink(missing_ok=True)
                    removed.append(path)
    return removed


def load_run_config(run_dir: Path) -> tuple[TrainConfig, str]:
    """The run's settings and a note: "" from config.json, or where they were recovered from."""
    path = Path(run_dir) / "config.json"
    try:
        cfg = TrainConfig.load(path)
        cfg.out = str(run_dir)  # the folder as found now (a run may have been moved or copied)
        return cfg, ""
    except ConfigError as damaged:
        for checkpoint in reversed(list_checkpoints(Path(run_dir) / "checkpoints")):
            try:
                saved = read_checkpoint(checkpoint).get("config")
            except Exception:  # a damaged checkpoint: try the one before
                continue
            if isinstance(saved, dict):
                cfg = TrainConfig.from_dict({**saved, "out": str(run_dir)})
                return cfg, f"{path.name} was unreadable; settings recovered from {checkpoint.name}"
        if not path.exists() and not Path(run_dir).is_dir():
            raise ConfigError(f"{run_dir}: no such run folder") from None
        raise ConfigError(f"{damaged} and no checkpoint carries them") from None


def resumed_config(run_dir: Path, given: dict) -> tuple[TrainConfig, list[str]]:
    """The saved settings with the changeable options given applied; notes for stderr (one line each)."""
    saved, note = load_run_config(run_dir)
    notes = [note] if note else []
    current = asdict(saved)
    changes = {k: v for k, v in given.items() if current.get(k) != v}
    refused = [k for k in changes if k not in CHANGEABLE_ON_RESUME]
    if refused:
        shown = ", ".join(f"--{k.replace('_', '-')} (the run has {current.get(k)!r})" for k in refused)
        allowed = ", ".join("--" + k.replace("_", "-") for k in CHANGEABLE_ON_RESUME)
        raise ConfigError(f"--resume keeps the run's settings; cannot change {shown}; may change: {allowed}")
    kept = kept_iterations(Path(run_dir) / "checkpoints")
    if "iterations" in changes and kept and changes["iterations"] < kept[-1]:
        raise ConfigError(
            f"--iterations {changes['iterations']} is below the run's iteration {kept[-1]}; give at least {kept[-1]}"
        )
    try:
        cfg = TrainConfig.from_dict({**current, **changes, "out": str(run_dir)})
    except ConfigError as error:
        raise ConfigError(f"{run_dir}: {first_line(error)}") from None
    if changes:
        notes.append("resuming with " + ", ".join(f"{k} {current[k]} -> {v}" for k, v in changes.items()))
    return cfg, notes
