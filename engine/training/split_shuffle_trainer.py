"""Split&Shuffle-GAN training: stage 2d on slices of the volumes, stage 3d on the volumes.

One iteration: D on a batch of real images (slices in stage 2d, volumes in stage 3d) and as many
generated ones, then G, both with the non-saturating logistic loss (binary cross-entropy on D's
logits, as HA-GAN's trainer uses). Stage 2d draws ``slices_per_volume`` random slices across
``slice_axis`` (axial: across network D) from every volume of a batch; a stage 3d run may start
from a 2D model by inflation (``--init-from``, ``--inflate``). Checkpoints, resume, logging,
DDP, stop signals and export are the shared ``Trainer``'s.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..card import ModelCard
from ..model import SplitShuffleModel
from ..models.split_shuffle import SplitShuffleDiscriminator, SplitShuffleGenerator
from .config import SLICE_AXES
from .init_source import inflate_twin
from .trainer import Trainer, data_label, set_requires_grad


class SplitShuffleTrainer(Trainer):
    """The split-shuffle family's networks (2D or 3D per ``stage``) and its GAN updates."""

    def build(self) -> None:
        cfg, device = self.cfg, self.env.device
        self.G = SplitShuffleGenerator(self.net).to(device)
        self.D = SplitShuffleDiscriminator(self.net).to(device)
        self.ema = copy.deepcopy(self.G).eval().requires_grad_(False) if cfg.ema else None
        self.G_ddp, self.D_ddp = self.wrap(self.G), self.wrap(self.D)
        self.optimizers = {"G": self.adam(self.G, cfg.lr_g), "D": self.adam(self.D, cfg.lr_d)}

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def initialise(self) -> None:
        """``--init-from``: inflate the 2D model into the 3D networks."""
        if self.cfg.init_from:
            self.init_summary = inflate_twin(self.cfg, {"G": self.G, "D": self.D}, self.log)
            if self.ema is not None:
                self.ema.load_state_dict(self.G.state_dict())

    # -- one iteration -------------------------------------------------------------------------
    def slices(self, volumes: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S, S) local volumes -> (B * k, 1, S, S) random slices across ``slice_axis``.

        The slice positions of the whole global batch are drawn from the shared generator, and
        every process takes its volumes' rows, so N processes see what one would.
        """
        k, axis = self.cfg.slices_per_volume, SLICE_AXES[self.cfg.slice_axis]
        picks = torch.randint(0, volumes.shape[axis], (self.cfg.batch_size, k), generator=self.rng)
        picks = picks[self.env.rank * self.local_batch : (self.env.rank + 1) * self.local_batch]
        return torch.stack([volumes[b].select(axis - 1, int(i)) for b in range(len(volumes)) for i in picks[b]])

    def step(self, x: torch.Tensor, labels: torch.Tensor | None) -> dict[str, float]:
        x = x.to(self.env.device, non_blocking=True)
        if self.net.dims == 2:
            x = self.slices(x)
        count = x.shape[0]
        bce = F.binary_cross_entropy_with_logits

        # D: real and generated in one forward (no batch statistics in D)
        set_requires_grad(self.G, False)
        set_requires_grad(self.D, True)
        z = self.latents(count * self.env.world_size, count)
        with torch.no_grad(), self.autocast():
            fake = self.G(z)
        with self.autocast():
            real_logit, fake_logit = self.D_ddp(torch.cat([x, fake])).float().split(count)
            d_real, d_fake = bce(real_logit, torch.ones_like(real_logit)), bce(fake_logit, torch.zeros_like(fake_logit))
            d_loss = d_real + d_fake
        self._update("D", d_loss)

        # G: non-saturating loss through a frozen D, fresh latents
        set_requires_grad(self.D, False)
        set_requires_grad(self.G, True)
        for _ in range(self.cfg.g_iter):
            z = self.latents(count * self.env.world_size, count)
            with self.autocast():
                fake = self.G_ddp(z)
                logit = self.D(fake).float()
                g_loss = bce(logit, torch.ones_like(logit))
            self._update("G", g_loss)
            self._update_ema(self.G)
        as_volume = (lambda t: t[:, None]) if self.net.dims == 2 else (lambda t: t)  # previews take (1, D, H, W)
        self._last_previews = {"real": as_volume(x[0]), "generated": as_volume(fake[0])}
        losses = {"D": d_loss, "D_real": d_real, "D_fake": d_fake, "G": g_loss}
        return {k: float(self.env.mean(v.detach().float())) for k, v in losses.items()}

    # -- export ----------------------------------------------------------------------------------
    def training_notes(self) -> dict:
        notes = {**super().training_notes(), "stage": self.cfg.stage, "loss": "non-saturating logistic (BCE)"}
        if self.cfg.stage == "2d":
            notes.update(slice_axis=self.cfg.slice_axis, slices_per_volume=self.cfg.slices_per_volume)
        return notes

    def default_name(self, summary: dict) -> str:
        c = self.net
        return f"Split&Shuffle-GAN {c.dims}D {c.resolution} {c.blocks} {data_label(summary)}".strip()

    def make_model(self, card: ModelCard) -> SplitShuffleModel:
        """G (the EMA copy when enabled) and D, on the CPU: D too, so a 2D model can be inflated whole."""
        generator = self.exported_generator
        return SplitShuffleModel(card, copy.deepcopy(generator).cpu(), copy.deepcopy(self.D).cpu())
