"""Training as a child process, without Qt: the command line, the JSON progress lines, the losses seen.

The app runs ``python -m engine train ... --progress-json -`` and reads one JSON event per stdout
line (start, progress, preview, checkpoint, skipped, stopped, finished; see
engine/training/run_log.py). Everything here is plain Python so it can be tested without a display.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from engine.api import FAMILIES, PRESETS_BY_FAMILY, EngineError, TrainConfig, package_root, train_arguments

DEFAULT_FAMILY = FAMILIES[0]
RESOLUTIONS = (32, 64, 128, 256)


def repo_root() -> Path:
    """The folder holding the ``engine`` package: the child's working directory, so ``-m engine`` imports."""
    return package_root()


def default_run_dir(root: Path, now: datetime | None = None) -> Path:
    """``root/<date>_<time>``, with a suffix when that folder exists already."""
    stamp = (now or datetime.now()).strftime("%Y-%m-%d_%H%M%S")
    candidate, n = root / stamp, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stamp}-{n}"
    return candidate


def is_run(folder: Path) -> bool:
    """Whether ``folder`` holds a training run (its settings file) that ``--resume`` can continue."""
    return (Path(folder) / "config.json").is_file()


def saved_iteration(folder: Path) -> int | None:
    """The iteration of the run's newest checkpoint (``checkpoints/checkpoint-NNNNNNNN.pt``), None without one."""
    found = [re.fullmatch(r"checkpoint-(\d+)\.pt", p.name) for p in (Path(folder) / "checkpoints").glob("*.pt")]
    numbers = [int(m.group(1)) for m in found if m]
    return max(numbers) if numbers else None


def run_settings(run_dir: Path) -> TrainConfig | None:
    """The settings a run was started with (its ``config.json``, read by the engine); None when they
    are missing or unreadable (the form then stays as it is)."""
    try:
        return TrainConfig.load(Path(run_dir) / "config.json")
    except (EngineError, TypeError):  # TypeError: keys of the right name with values of the wrong kind
        return None


def start_arguments(config: TrainConfig, device: str = "auto") -> list[str]:
    """Arguments after the interpreter for a new run; the engine writes its settings as options."""
    return ["-m", "engine", "train", *train_arguments(config), "--device", device, "--progress-json", "-"]


def records_network(source: Path) -> bool:
    """Whether a start model knows its own network settings: our files and run folders do."""
    return source.suffix == ".safetensors" or is_run(source)


def resume_arguments(run_dir: Path, iterations: int, device: str = "auto") -> list[str]:
    """Arguments after the interpreter to continue ``run_dir`` up to ``iterations`` in total."""
    args = ["-m", "engine", "train", "--resume", str(run_dir), "--iterations", str(iterations)]
    return [*args, "--device", device, "--progress-json", "-"]


def family_presets(family: str) -> dict[str, dict]:
    """A family's network-size presets (name -> widths), as the engine's settings define them."""
    return dict(PRESETS_BY_FAMILY.get(family, {}))


def parse_event(line: str) -> dict | None:
    """One stdout line -> its JSON event, or None for anything else (messages, partial output)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def last_status(stderr_tail: str) -> str:
    """The newest piece of stderr: tqdm redraws its bar with carriage returns, not new lines."""
    pieces = [p.strip() for p in re.split(r"[\r\n]+", stderr_tail)]
    return next((p for p in reversed(pieces) if p), "")


def error_line(stderr_tail: str) -> str:
    """The one-line cause of a failed run: the engine's last "error: ..." line, else the last line."""
    lines = [p.strip() for p in re.split(r"[\r\n]+", stderr_tail) if p.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        return errors[-1].removeprefix("error:").strip()
    return lines[-1] if lines else ""


class LineBuffer:
    """Bytes arrive in arbitrary chunks; hand back complete lines only."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> list[str]:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        return lines

    def flush(self) -> list[str]:
        rest, self._pending = self._pending, ""
        return [rest] if rest else []


@dataclass
class LossHistory:
    """Every logged loss of a run: ``curves[name] = (iterations, values)``."""

    curves: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)

    def add(self, iteration: int, losses: dict[str, float]) -> None:
        for name, value in losses.items():
            steps, values = self.curves.setdefault(name, ([], []))
            if steps and iteration <= steps[-1]:  # a resumed run repeats iterations after its checkpoint
                keep = next((i for i, s in enumerate(steps) if s >= iteration), len(steps))
                del steps[keep:], values[keep:]
            steps.append(iteration)
            values.append(float(value))

    def __len__(self) -> int:
        return max((len(steps) for steps, _ in self.curves.values()), default=0)
