"""What every trainer shares: the loop, stop signals, run checkpoints, resume, logging and export.

A family's trainer (``HAGANTrainer``, ``SplitShuffleTrainer``) builds its networks and optimisers
in ``build``, does one iteration in ``step`` and makes its model in ``make_model``; this class
does the rest, identically for every family: batches that resume exactly, RNG states saved with
every atomic checkpoint, DDP wrapping, SIGTERM/SIGINT handling (finish the iteration, checkpoint,
export), the tqdm bar, TensorBoard and the JSON progress lines the app reads.
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from .. import __version__
from ..card import ModelCard
from ..checkpoints import save_model
from ..device import cpu_has_bf16, describe_hardware
from ..enums import PhantomKind, Precision
from ..errors import CheckpointError, ConfigError, first_line
from ..precision import cuda_math_description
from ..volume import IntensityMapping
from .config import TrainConfig
from .data import build_dataset, data_stream
from .distributed import Distributed
from .run_checkpoint import (
    capture_rng,
    checkpoint_mismatch,
    kept_iterations,
    list_checkpoints,
    load_at,
    read_checkpoint,
    restore_rng,
    write_checkpoint,
)
from .run_log import RunLog


def check_precision(precision: str, device: torch.device) -> None:
    """fp16 needs CUDA (its loss scaler); bf16 runs on CUDA, and on CPUs with bf16 instructions.

    On a CPU with AVX512-BF16 or AMX, bf16 autocast makes a 128^3 HA-GAN iteration about 3x faster
    (benchmarks/train_step.py); without them oneDNN emulates bf16 and it would be slower than fp32.
    """
    if precision == Precision.FP16 and device.type != "cuda":
        raise ConfigError("fp16 training needs a CUDA GPU (its loss scaler); use bf16 or fp32 here")
    if precision == Precision.BF16 and device.type == "cpu" and not cpu_has_bf16():
        raise ConfigError("bf16 training on this CPU would be emulated (no AVX512-BF16/AMX); use fp32")
    if precision == Precision.BF16 and device.type not in ("cuda", "cpu"):
        raise ConfigError(f"bf16 training runs on CUDA GPUs and CPUs, not on {device.type}; use fp32")


MAX_SKIPPED_IN_A_ROW = 5


def finite_gradients(optimizer: torch.optim.Optimizer) -> bool:
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    return not grads or bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class Trainer:
    """The shared run; subclasses provide ``build``, ``step``, ``networks`` and ``make_model``."""

    def __init__(self, cfg: TrainConfig, env: Distributed, progress_json: str | None = None, quiet: bool = False):
        self.cfg, self.env = cfg, env
        if cfg.batch_size % env.world_size:
            raise ConfigError(f"batch size {cfg.batch_size} must be divisible by the {env.world_size} processes")
        check_precision(cfg.precision, env.device)
        self.run_dir = Path(cfg.out)
        self.local_batch = cfg.batch_size // env.world_size
        self.net = cfg.network()
        torch.manual_seed(cfg.seed)  # identical initial weights on every process
        self.ema: nn.Module | None = None
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.build()
        use_scaler = cfg.precision == Precision.FP16
        self.scalers = {name: torch.amp.GradScaler("cuda", enabled=use_scaler) for name in self.optimizers}
        # One generator for latents and crop positions (or slices), identical on every process:
        # each process takes its slice of the global batch, so N processes draw what one would.
        self.rng = torch.Generator("cpu").manual_seed(cfg.seed + 1)
        self.dataset = build_dataset(cfg, env.is_main, env.barrier)
        self.data = data_stream(
            self.dataset, self.local_batch, cfg.seed, env.rank, env.world_size, cfg.workers, env.is_main and not quiet
        )
        self.iteration = 0
        self.elapsed = 0.0
        self.hardware: list[str] = []  # what trained the run, in order (a resume may move it)
        self.init_summary: dict = {}  # where the weights came from (--init-from), for the model card
        self.skipped_updates: dict[str, int] = {}  # non-finite updates skipped, by network
        self.skipped_in_a_row: dict[str, int] = {}
        self.skipped_checkpoints: list[str] = []  # unusable checkpoints passed over by resume, with the cause
        self.averaged: list[int] = []  # iterations whose G was averaged into the export (export --average)
        self.log = RunLog(self.run_dir, cfg.iterations, 0, progress_json, active=env.is_main and not quiet)
        for path, cause in getattr(self.dataset, "skipped", []):
            self.log.message(f"skipped {path}: {cause}")
            self.log.event("skipped", file=str(path), cause=cause)
        self._stop = False
        self._last_previews: dict[str, torch.Tensor] = {}

    # -- what a family provides ------------------------------------------------------------------
    def build(self) -> None:
        """Networks on ``env.device``, ``self.ema`` (or None) and ``self.optimizers``."""
        raise NotImplementedError

    def networks(self) -> dict[str, nn.Module]:
        """The trained networks by checkpoint name (G, D, ...)."""
        raise NotImplementedError

    def step(self, x: torch.Tensor, labels: torch.Tensor | None) -> dict[str, float]:
        """One iteration on a local batch of volumes; returns the losses (averaged over processes)."""
        raise NotImplementedError

    def make_model(self, card: ModelCard):
        """The model object to save (CPU copies of the networks, EMA generator where enabled)."""
        raise NotImplementedError

    def initialise(self) -> None:
        """Weights from another model before the first iteration (--init-from); nothing by default."""

    def default_name(self, summary: dict) -> str:
        raise NotImplementedError

    def training_notes(self) -> dict:
        """More for the card's training summary: where the first weights came from, if anywhere."""
        return {"init": self.init_summary} if self.init_summary else {}

    def extra_state(self) -> dict:
        """More for every run checkpoint (a family's own state, e.g. its augmentation); nothing by default."""
        return {}

    def load_extra_state(self, payload: dict) -> None:
        """Restore what ``extra_state`` saved (absent from older checkpoints)."""

    def optimiser_text(self) -> str:
        cfg = self.cfg
        return f"Adam betas ({cfg.beta1}, {cfg.beta2}); lr G {cfg.lr_g}, D {cfg.lr_d}"

    # -- helpers for steps -----------------------------------------------------------------------
    def wrap(self, module: nn.Module) -> nn.Module:
        """DistributedDataParallel when several processes train, else the module itself."""
        if not self.env.enabled:
            return module
        device = self.env.device
        return DDP(module, device_ids=[device.index] if device.type == "cuda" else None)

    def adam(self, module: nn.Module, lr: float) -> torch.optim.Adam:
        return torch.optim.Adam(module.parameters(), lr=lr, betas=(self.cfg.beta1, self.cfg.beta2), eps=1e-8)

    def autocast(self):
        dtype = {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}.get(self.cfg.precision)
        return torch.autocast(self.env.device.type, dtype=dtype, enabled=dtype is not None)

    def latents(self, count: int, per_process: int) -> torch.Tensor:
        """This process's rows of ``count`` latents drawn from the shared generator."""
        z = torch.randn(count, self.cfg.latent_dim, generator=self.rng)
        rank = self.env.rank
        return z[rank * per_process : (rank + 1) * per_process].to(self.env.device)

    def _update(self, name: str, loss: torch.Tensor) -> None:
        """One optimiser step, skipped when a gradient is not finite (a non-finite loss gives such).

        The decision rests on the gradients, not the loss: under DDP they are all-reduced, so every
        process skips the same updates (and every process joins the backward's all-reduce). fp16's
        scaler finds non-finite gradients itself. A skipped update is logged and counted (the model
        card shows the count); MAX_SKIPPED_IN_A_ROW in a row stop the run (divergence).
        """
        optimizer, scaler = self.optimizers[name], self.scalers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.cfg.precision != Precision.FP16 and not finite_gradients(optimizer):
            optimizer.zero_grad(set_to_none=True)
            self._skip_update(name, float(loss.detach()))
            return
        scaler.step(optimizer)
        scaler.update()
        self.skipped_in_a_row[name] = 0

    def _skip_update(self, name: str, loss: float) -> None:
        iteration = self.iteration + 1
        self.skipped_updates[name] = self.skipped_updates.get(name, 0) + 1
        self.skipped_in_a_row[name] = self.skipped_in_a_row.get(name, 0) + 1
        if self.skipped_in_a_row[name] >= MAX_SKIPPED_IN_A_ROW:
            raise FloatingPointError(
                f"the {name} gradients not finite in {MAX_SKIPPED_IN_A_ROW} iterations in a row "
                f"(the last {iteration}, loss {loss:.4g}): training diverged"
            )
        self.log.message(f"iteration {iteration}: {name} update skipped (non-finite gradients, loss {loss:.4g})")

    @torch.no_grad()
    def _update_ema(self, generator: nn.Module) -> None:
        if self.ema is not None:
            for target, source in zip(self.ema.parameters(), generator.parameters()):
                target.lerp_(source, 1.0 - self.cfg.ema)

    # -- the run -------------------------------------------------------------------------------
    def fit(self) -> Path | None:
        """Train until ``iterations`` or a stop signal, checkpointing; returns the exported model (main process)."""
        cfg = self.cfg
        self._install_stop_handlers()
        self.log.bar.reset(total=cfg.iterations)
        self.log.bar.update(self.iteration)
        self.log.event("start", iteration=self.iteration, iterations=cfg.iterations, run_dir=str(self.run_dir))
        started = time.perf_counter() - self.elapsed
        here = describe_hardware(self.env.device)
        if not self.hardware or self.hardware[-1] != here:
            self.hardware.append(here)
        try:
            while self.iteration < cfg.iterations and not self._stop:
                x, labels = next(self.data)
                losses = self.step(x, labels)
                self.iteration += 1
                self.elapsed = time.perf_counter() - started
                self.log.iteration(self.iteration, losses, self.iteration % cfg.log_every == 0 or self.iteration == 1)
                if self.iteration % cfg.preview_every == 0:
                    self.log.previews(self.iteration, self._last_previews)
                if self.iteration % cfg.checkpoint_every == 0 and self.iteration < cfg.iterations:
                    self.save_checkpoint()
            self.save_checkpoint()
            # a stopped run exports too, so its current state can be opened and sampled
            model_path = self.export(self.run_dir / "model.safetensors") if self.env.is_main else None
            if self._stop:
                self.log.event("stopped", iteration=self.iteration, model=str(model_path))
                self.log.message(f"stopped at iteration {self.iteration}; resume with --resume {self.run_dir}")
            else:
                self.log.event("finished", iteration=self.iteration, model=str(model_path))
            return model_path
        finally:
            self.log.close()

    def _install_stop_handlers(self) -> None:
        """SIGTERM / SIGINT finish the current iteration, write a checkpoint and stop."""

        def request_stop(signum, frame):
            self._stop = True

        if self.env.is_main or not self.env.enabled:
            for sig in (signal.SIGTERM, signal.SIGINT):
                # raises ValueError outside the main thread (e.g. a test driving the trainer)
                with contextlib.suppress(ValueError):
                    signal.signal(sig, request_stop)

    # -- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict:
        state = {
            "iteration": self.iteration,
            "elapsed": self.elapsed,
            "hardware": list(self.hardware),
            "models": {k: v.state_dict() for k, v in self.networks().items()},
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "scalers": {k: v.state_dict() for k, v in self.scalers.items()},
            "rng": capture_rng({"latents": self.rng}),
            "data": self.data.state_dict(),
            "engine_version": __version__,
            "skipped_updates": dict(self.skipped_updates),
            "config": asdict(self.cfg),  # a damaged config.json is recovered from here
        }
        if self.init_summary:
            state["init"] = self.init_summary
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return {**state, **self.extra_state()}

    def save_checkpoint(self) -> None:
        if self.env.is_main:
            path = write_checkpoint(self.run_dir / "checkpoints", self.iteration, self.state(), self.cfg.keep)
            self.log.event("checkpoint", iteration=self.iteration, path=str(path))
        self.env.barrier()

    def resume(self, iteration: int | None = None) -> bool:
        """Continue from the newest usable checkpoint (or the one of ``iteration``); False when there is none yet.

        Damaged checkpoints, and loadable ones of another kind or architecture, are skipped with a
        warning naming them (``self.skipped_checkpoints``); the one before is used.
        """
        folder = self.run_dir / "checkpoints"
        if iteration is not None:
            payload = load_at(folder, iteration)
            problem = checkpoint_mismatch(payload, self.networks(), self.optimizers)
            if problem:
                raise CheckpointError(f"{payload['_path']}: {problem}")
            self._apply(payload)
            return True
        problems = []
        for path in reversed(list_checkpoints(folder)):
            try:
                payload = read_checkpoint(path)
                problem = checkpoint_mismatch(payload, self.networks(), self.optimizers)
            except Exception as error:  # a damaged file: report and try the previous one
                problem = first_line(error, 120)
            if problem:
                problems.append(f"{path.name}: {problem}")
                continue
            self.skipped_checkpoints = problems
            for text in problems:
                self.log.message(f"skipped checkpoint {text}")
            self._apply(payload)
            return True
        if problems:
            raise CheckpointError(f"{folder}: no usable checkpoint ({'; '.join(problems)})")
        return False

    def _apply(self, payload: dict) -> None:
        for name, net in self.networks().items():
            net.load_state_dict(payload["models"][name])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(payload["optimizers"][name])
            for group in optimizer.param_groups:  # a resumed run may be given new learning rates
                group["lr"] = self.learning_rate(name)
        for name, scaler in self.scalers.items():
            scaler.load_state_dict(payload["scalers"][name])
        if self.ema is not None and "ema" in payload:
            self.ema.load_state_dict(payload["ema"])
        restore_rng(payload["rng"], {"latents": self.rng})
        self.data.load_state_dict(payload["data"])
        self.iteration, self.elapsed = int(payload["iteration"]), float(payload["elapsed"])
        self.hardware = list(payload.get("hardware", []))
        self.init_summary = payload.get("init", {})
        self.skipped_updates = dict(payload.get("skipped_updates", {}))
        self.load_extra_state(payload)
        self.log.message(f"resumed from {Path(payload['_path']).name} (iteration {self.iteration})")

    def learning_rate(self, optimizer: str) -> float:
        """The configured learning rate of an optimiser by its network name."""
        return {"G": self.cfg.lr_g, "D": self.cfg.lr_d}.get(optimizer, self.cfg.lr_e)

    def average_generator(self, count: int) -> None:
        """Set the exported G to its mean over the newest ``count`` kept checkpoints up to this
        iteration (checkpoint averaging): a GAN's weights swing from one checkpoint to the next,
        and their mean is steadier than any one of them. The encoders stay this iteration's."""
        folder = self.run_dir / "checkpoints"
        available = [i for i in kept_iterations(folder) if i <= self.iteration]
        if not 1 <= count <= len(available):
            raise ConfigError(
                f"--average {count}: needs at least 1 and at most the {len(available)} checkpoints kept"
                f" up to iteration {self.iteration}"
            )
        chosen = available[-count:]
        total: dict[str, torch.Tensor] = {}
        for iteration in chosen:
            payload = load_at(folder, iteration)
            problem = checkpoint_mismatch(payload, self.networks(), self.optimizers)
            if problem:
                raise CheckpointError(f"{payload['_path']}: {problem}")
            state = payload.get("ema") if self.ema is not None else None
            state = state or payload["models"]["G"]  # runs without EMA (or from before it) keep G itself
            for name, tensor in state.items():
                total[name] = total.get(name, 0) + tensor.double()
        reference = self.exported_generator.state_dict()
        self.exported_generator.load_state_dict(
            {name: (total[name] / count).to(reference[name].dtype) for name in reference}
        )
        self.averaged = chosen

    @property
    def exported_generator(self) -> nn.Module:
        """The G a model file gets: the EMA copy when enabled."""
        return self.ema if self.ema is not None else self.G

    # -- export ----------------------------------------------------------------------------------
    def export(self, path: Path, dtype: torch.dtype = torch.float32) -> Path:
        """Our model file with a full model card (data summary, iterations, time, hardware, init)."""
        cfg, summary = self.cfg, self.dataset.summary()
        training = {
            "data": summary,
            "iterations": self.iteration,
            "batch_size": cfg.batch_size,
            "processes": self.env.world_size,
            "time_hours": round(self.elapsed / 3600, 3),
            # the machines that trained it; `engine export` elsewhere does not change it
            "hardware": "; then ".join(self.hardware) or describe_hardware(self.env.device),
            "ema": cfg.ema,
            "precision": cfg.precision,
            # fp32 on CUDA runs its convolutions in TF32 unless switched off: say which
            **({"cuda_fp32_math": cuda_math_description()} if self.env.device.type == "cuda" else {}),
            "optimiser": self.optimiser_text(),
            "seed": cfg.seed,
            **({"skipped_updates": dict(self.skipped_updates)} if self.skipped_updates else {}),
            **({"averaged_iterations": self.averaged} if self.averaged else {}),
            **self.training_notes(),
        }
        card = ModelCard(
            config=self.net,
            name=cfg.name or self.default_name(summary),
            modality=summary.get("modality", "unknown"),
            intensity=IntensityMapping.from_dict(summary["intensity"]),
            spacing_mm=tuple(summary.get("spacing_mm", summary.get("spacing", (1.0, 1.0, 1.0)))),
            source=f"trained with engine {__version__} (python -m engine train)",
            training=training,
            preprocessing=dict(summary.get("preprocessing") or {}),
        )
        return save_model(self.make_model(card), path, dtype)


def data_label(summary: dict) -> str:
    """What the data was, for a default model name: 'chest-ct phantoms' or 'CT'."""
    kind = summary.get("kind", "")
    return f"{kind} phantoms" if kind in tuple(PhantomKind) else summary.get("modality", "").upper()
