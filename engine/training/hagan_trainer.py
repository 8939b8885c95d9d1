"""HA-GAN training: the reference's four updates per iteration, with its flaws fixed.

One iteration (Sun et al. 2022; official train.py):
1. D on a real slab + its low-resolution volume, and on a generated slab + anchor, both with the
   crop position; 2. G (non-saturating loss through D); 3. E^H: L1 between a real slab and G^H of
   its encoding; 4. E^G: L1 between the real slab/low-res volume and G's reconstruction of the
   latent E^G infers from the 8 E^H feature slabs.

Fixed here (see shared/design/hagan.md section h):
- crop positions are multiples of 4, so the generated slab and the real slab cover the same voxels
  (the reference's fake slab is off by c mod 4 voxels);
- the real low-resolution target is area (mean) downsampling, not every 4th voxel;
- python, numpy and torch RNGs are seeded and saved with every checkpoint, as is the data position;
- batch size 1 works (no squeeze); any device; DistributedDataParallel instead of DataParallel.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.checkpoint import checkpoint as activation_checkpoint

from .. import __version__
from ..card import ModelCard
from ..checkpoints import save_model
from ..device import describe_hardware
from ..errors import ConfigError
from ..model import HAGANModel
from ..models.hagan import Discriminator, Encoder, Generator, SubEncoder
from ..volume import IntensityMapping
from .config import TrainConfig
from .data import build_dataset, data_stream
from .distributed import Distributed
from .run_checkpoint import capture_rng, load_latest, restore_rng, write_checkpoint
from .run_log import RunLog


class GeneratorStep(nn.Module):
    """What DDP wraps for G: one forward giving the slab at ``crop`` and the anchor."""

    def __init__(self, generator: Generator, grad_checkpoint: bool = False):
        super().__init__()
        self.generator = generator
        self.grad_checkpoint = grad_checkpoint

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.generator
        if self.grad_checkpoint and torch.is_grad_enabled():
            features = activation_checkpoint(g.features, z, labels, use_reentrant=False)
        else:
            features = g.features(z, labels)
        return g.slab(features, crop), g.anchor(features)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class HAGANTrainer:
    """Builds the networks and optimisers, runs iterations, writes checkpoints and the model."""

    def __init__(self, cfg: TrainConfig, env: Distributed, progress_json: str | None = None, quiet: bool = False):
        self.cfg, self.env = cfg, env
        if cfg.batch_size % env.world_size:
            raise ConfigError(f"batch size {cfg.batch_size} must be divisible by the {env.world_size} processes")
        if cfg.precision != "fp32" and env.device.type != "cuda":
            raise ConfigError(f"{cfg.precision} training needs a CUDA GPU; use fp32 here")
        self.run_dir = Path(cfg.out)
        self.local_batch = cfg.batch_size // env.world_size
        self.net = cfg.network()
        torch.manual_seed(cfg.seed)  # identical initial weights on every process
        device = env.device
        self.G, self.D = Generator(self.net).to(device), Discriminator(self.net).to(device)
        self.E, self.sub_E = Encoder(self.net).to(device), SubEncoder(self.net).to(device)
        self.g_step = GeneratorStep(self.G, cfg.grad_checkpoint)
        self.ema = copy.deepcopy(self.G).eval().requires_grad_(False) if cfg.ema else None
        wrap = (
            (lambda m: DDP(m, device_ids=[device.index] if device.type == "cuda" else None))
            if env.enabled
            else (lambda m: m)
        )
        self.g_step_ddp, self.D_ddp, self.E_ddp, self.sub_E_ddp = map(wrap, (self.g_step, self.D, self.E, self.sub_E))
        betas = (cfg.beta1, cfg.beta2)
        self.optimizers = {
            "G": torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=betas, eps=1e-8),
            "D": torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=betas, eps=1e-8),
            "E": torch.optim.Adam(self.E.parameters(), lr=cfg.lr_e, betas=betas, eps=1e-8),
            "Sub_E": torch.optim.Adam(self.sub_E.parameters(), lr=cfg.lr_e, betas=betas, eps=1e-8),
        }
        use_scaler = cfg.precision == "fp16"
        self.scalers = {name: torch.amp.GradScaler("cuda", enabled=use_scaler) for name in self.optimizers}
        # One generator for latents and crop positions, identical on every process: each process
        # takes its slice of the global batch, so N processes draw what one process would.
        self.rng = torch.Generator("cpu").manual_seed(cfg.seed + 1)
        self.dataset = build_dataset(cfg, env.is_main, env.barrier)
        self.data = data_stream(self.dataset, self.local_batch, cfg.seed, env.rank, env.world_size, cfg.workers)
        self.iteration = 0
        self.elapsed = 0.0
        self.log = RunLog(self.run_dir, cfg.iterations, 0, progress_json, active=env.is_main and not quiet)
        for path, cause in getattr(self.dataset, "skipped", []):
            self.log.message(f"skipped {path}: {cause}")
            self.log.event("skipped", file=str(path), cause=cause)
        self._stop = False

    # -- one iteration -------------------------------------------------------------------------
    def autocast(self):
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.precision)
        return torch.autocast("cuda", dtype=dtype, enabled=dtype is not None)

    def draw(self) -> tuple[torch.Tensor, int]:
        """This process's latents (slice of the global batch) and the shared crop position."""
        cfg, env = self.cfg, self.env
        z = torch.randn(cfg.batch_size, cfg.latent_dim, generator=self.rng)
        z = z[env.rank * self.local_batch : (env.rank + 1) * self.local_batch].to(env.device)
        positions = self.net.max_slab_start // 4 + 1
        crop = 4 * int(torch.randint(0, positions, (1,), generator=self.rng))
        return z, crop

    def step(self, x: torch.Tensor, labels: torch.Tensor | None) -> dict[str, float]:
        t = self.net.slab_thickness
        x = x.to(self.env.device, non_blocking=True)
        labels = None if self.net.num_class == 0 else labels.to(self.env.device)
        z, crop = self.draw()
        x_slab, x_small = x[:, :, crop : crop + t], F.avg_pool3d(x, 4)
        bce = F.binary_cross_entropy_with_logits
        losses = {}

        # 1. D: real and fake in one forward (D has no batch statistics), the same crop for both
        set_requires_grad(self.G, False)
        set_requires_grad(self.D, True)
        with torch.no_grad(), self.autocast():
            fake_slab, fake_anchor = self.g_step(z, labels, crop)
        with self.autocast():
            out = self.D_ddp(torch.cat([x_slab, fake_slab]), torch.cat([x_small, fake_anchor]), crop)
            real, fake = out.logit.float().split(x.shape[0])
            d_real, d_fake = bce(real, torch.ones_like(real)), bce(fake, torch.zeros_like(fake))
            d_loss = d_real + d_fake
            if labels is not None:
                d_loss = d_loss + F.cross_entropy(out.class_logits[: x.shape[0]].float(), labels)
        self._update("D", d_loss)
        losses.update(D=d_loss, D_real=d_real, D_fake=d_fake)

        # 2. G: non-saturating loss through a frozen D, fresh latents, same crop
        set_requires_grad(self.D, False)
        set_requires_grad(self.G, True)
        for _ in range(self.cfg.g_iter):
            z, _ = self.draw()
            with self.autocast():
                slab, anchor = self.g_step_ddp(z, labels, crop)
                out = self.D(slab, anchor, crop)
                g_loss = bce(out.logit.float(), torch.ones_like(out.logit, dtype=torch.float32))
                if labels is not None:
                    g_loss = g_loss + self.cfg.lambda_class * F.cross_entropy(out.class_logits.float(), labels)
            self._update("G", g_loss)
            self._update_ema()
        losses["G"] = g_loss

        # 3. E^H: reconstruct the real slab through the frozen G^H (slab statistics, as trained)
        set_requires_grad(self.G, False)
        with self.autocast():
            e_loss = F.l1_loss(self.G.high_res(self.E_ddp(x_slab)).float(), x_slab)
        self._update("E", e_loss)
        losses["E"] = e_loss

        # 4. E^G: latents from the 8 feature slabs, reconstructed by the frozen G
        with torch.no_grad(), self.autocast():
            features = torch.cat([self.E(x[:, :, k * t : (k + 1) * t]) for k in range(8)], dim=2)
        with self.autocast():
            rec_slab, rec_anchor = self.g_step(self.sub_E_ddp(features), labels, crop)
            sub_loss = 0.5 * (F.l1_loss(rec_slab.float(), x_slab) + F.l1_loss(rec_anchor.float(), x_small))
        self._update("Sub_E", sub_loss)
        losses["Sub_E"] = sub_loss
        self._last_previews = {"real_slab": x_slab[0], "generated_slab": slab[0], "anchor": anchor[0]}
        self._last_previews["reconstruction"] = rec_slab[0]
        return {k: float(self.env.mean(v.detach().float())) for k, v in losses.items()}

    def _update(self, name: str, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the {name} loss became {float(loss)} at iteration {self.iteration + 1}")
        optimizer, scaler = self.optimizers[name], self.scalers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is not None:
            for target, source in zip(self.ema.parameters(), self.G.parameters()):
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
        nets = {"G": self.G, "D": self.D, "E": self.E, "Sub_E": self.sub_E}
        state = {
            "iteration": self.iteration,
            "elapsed": self.elapsed,
            "models": {k: v.state_dict() for k, v in nets.items()},
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "scalers": {k: v.state_dict() for k, v in self.scalers.items()},
            "rng": capture_rng({"latents": self.rng}),
            "data": self.data.state_dict(),
            "engine_version": __version__,
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def save_checkpoint(self) -> None:
        if self.env.is_main:
            path = write_checkpoint(self.run_dir / "checkpoints", self.iteration, self.state(), self.cfg.keep)
            self.log.event("checkpoint", iteration=self.iteration, path=str(path))
        self.env.barrier()

    def resume(self) -> bool:
        """Continue from the newest complete checkpoint; False when there is none yet."""
        payload = load_latest(self.run_dir / "checkpoints")
        if payload is None:
            return False
        for problem in payload["_skipped"]:
            self.log.message(f"skipped damaged checkpoint {problem}")
        nets = {"G": self.G, "D": self.D, "E": self.E, "Sub_E": self.sub_E}
        for name, net in nets.items():
            net.load_state_dict(payload["models"][name])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(payload["optimizers"][name])
        for name, scaler in self.scalers.items():
            scaler.load_state_dict(payload["scalers"][name])
        if self.ema is not None and "ema" in payload:
            self.ema.load_state_dict(payload["ema"])
        restore_rng(payload["rng"], {"latents": self.rng})
        self.data.load_state_dict(payload["data"])
        self.iteration, self.elapsed = int(payload["iteration"]), float(payload["elapsed"])
        self.log.message(f"resumed from {Path(payload['_path']).name} (iteration {self.iteration})")
        return True

    # -- export ----------------------------------------------------------------------------------
    def export(self, path: Path, dtype: torch.dtype = torch.float32) -> Path:
        """Our model file: G (the EMA copy when enabled), E, Sub_E, and a full model card."""
        cfg, summary = self.cfg, self.dataset.summary()
        card = ModelCard(
            config=self.net,
            name=cfg.name or default_model_name(cfg.resolution, summary),
            modality=summary.get("modality", "unknown"),
            intensity=IntensityMapping.from_dict(summary["intensity"]),
            spacing_mm=tuple(summary.get("spacing_mm", summary.get("spacing", (1.0, 1.0, 1.0)))),
            source=f"trained with engine {__version__} (python -m engine train)",
            training={
                "data": summary,
                "iterations": self.iteration,
                "batch_size": cfg.batch_size,
                "processes": self.env.world_size,
                "time_hours": round(self.elapsed / 3600, 3),
                "hardware": describe_hardware(self.env.device),
                "ema": cfg.ema,
                "precision": cfg.precision,
                "optimiser": f"Adam betas ({cfg.beta1}, {cfg.beta2}); lr G {cfg.lr_g}, D {cfg.lr_d}, E {cfg.lr_e}",
                "seed": cfg.seed,
            },
        )
        generator = self.ema if self.ema is not None else self.G
        model = HAGANModel(
            card, copy.deepcopy(generator).cpu(), copy.deepcopy(self.E).cpu(), copy.deepcopy(self.sub_E).cpu()
        )
        return save_model(model, path, dtype)


def default_model_name(resolution: int, summary: dict) -> str:
    """E.g. 'HA-GAN 128 CT' or 'HA-GAN 128 chest-ct phantoms'."""
    kind = summary.get("kind", "")
    what = f"{kind} phantoms" if kind in ("chest-ct", "brain-mri") else summary.get("modality", "").upper()
    return f"HA-GAN {resolution} {what}".strip()
