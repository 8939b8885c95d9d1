"""What a run reports: a tqdm bar, TensorBoard scalars and preview slices, JSON lines for the app.

Preview slices are also written as PNG files (``RUN/previews/<name>.png``, replaced atomically) and
announced with a "preview" JSON event, so a viewer that is not TensorBoard (the app) can show them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..atomic import atomic_write


class RunLog:
    """Only the main process logs; the others get a silent instance."""

    def __init__(self, run_dir: Path, total: int, start: int, progress_json: str | None, active: bool = True):
        self.active = active
        self.run_dir = Path(run_dir)
        self.started = time.perf_counter()
        self.start_iteration = start
        self.bar = tqdm(total=total, initial=start, desc="training", unit="it", file=sys.stderr, disable=not active)
        self.writer = None
        if active:
            from torch.utils.tensorboard import SummaryWriter  # imported late: it is slow to import

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        self.json = None
        if active and progress_json:
            self.json = sys.stdout if progress_json == "-" else open(progress_json, "a", buffering=1)  # noqa: SIM115

    def iteration(self, iteration: int, losses: dict[str, float], log: bool) -> None:
        if not self.active:
            return
        self.bar.update(1)
        if not log:
            return
        rate = (iteration - self.start_iteration) / max(1e-9, time.perf_counter() - self.started)
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
        for key, value in losses.items():
            self.writer.add_scalar(f"loss/{key}", value, iteration)
        self.writer.add_scalar("speed/iterations_per_second", rate, iteration)
        self.event("progress", iteration=iteration, losses=losses, iterations_per_second=round(rate, 4))

    def previews(self, iteration: int, images: dict[str, torch.Tensor]) -> None:
        """Middle slices of (1, D, H, W) volumes in [-1, 1]: TensorBoard images, PNG files and a JSON event."""
        if not self.active:
            return
        folder = self.run_dir / "previews"
        folder.mkdir(parents=True, exist_ok=True)
        written = {}
        for name, volume in images.items():
            volume = volume.detach().float().cpu()[0]
            middle = ((volume[volume.shape[0] // 2] + 1) / 2).clamp(0, 1)
            self.writer.add_image(f"preview/{name}", middle[None], iteration)
            written[name] = str(write_png(folder / f"{name}.png", middle.numpy()))
        self.writer.flush()
        self.event("preview", iteration=iteration, images=written)

    def event(self, kind: str, **fields) -> None:
        """One JSON line: {"event": kind, "time": ..., ...fields}."""
        if self.json is not None:
            self.json.write(json.dumps({"event": kind, "time": round(time.time(), 3), **fields}) + "\n")
            self.json.flush()

    def message(self, text: str) -> None:
        if self.active:
            tqdm.write(text, file=sys.stderr)

    def close(self) -> None:
        if not self.active:
            return
        self.bar.close()
        self.writer.close()
        if self.json not in (None, sys.stdout):
            self.json.close()


def write_png(path: Path, image: np.ndarray) -> Path:
    """A 2D array in [0, 1] as an 8-bit grey PNG, replaced atomically (a reader never sees half a file)."""
    from PIL import Image  # torch's TensorBoard image summaries need Pillow too

    pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return atomic_write(path, lambda tmp: Image.fromarray(pixels).save(tmp, format="PNG"), suffix=".png")


def read_losses(run_dir: Path) -> dict[str, tuple[list[int], list[float]]]:
    """The losses a run has logged so far, ``{name: (iterations, values)}``, from its TensorBoard files.

    Across resumes TensorBoard keeps the newest value of a repeated iteration (the run continued
    from a checkpoint before it); an unreadable or missing log gives what could be read.
    """
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    folder = Path(run_dir) / "tensorboard"
    if not folder.is_dir():
        return {}
    events = EventAccumulator(str(folder), size_guidance={SCALARS: 0})
    events.Reload()
    curves = {}
    for tag in events.Tags().get("scalars", []):
        if tag.startswith("loss/"):
            by_step = {event.step: event.value for event in events.Scalars(tag)}
            steps = sorted(by_step)
            curves[tag.removeprefix("loss/")] = (steps, [by_step[step] for step in steps])
    return curves
