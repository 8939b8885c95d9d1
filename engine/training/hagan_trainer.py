"""HA-GAN training: the reference's four updates per iteration, with its flaws fixed.

One iteration (Sun et al. 2022; official train.py):
1. D on a real slab + its low-resolution volume, and on a generated slab + anchor, both with the
   crop position; 2. G (non-saturating loss through D); 3. E^H: L1 between a real slab and G^H of
   its encoding; 4. E^G: L1 between the real slab/low-res volume and G's reconstruction of the
   latent E^G infers from the 8 E^H feature slabs.

Fixed here (the reference's own code does otherwise):
- crop positions are multiples of 4, so the generated slab and the real slab cover the same voxels
  (the reference's fake slab is off by c mod 4 voxels);
- the real low-resolution target is area (mean) downsampling, not every 4th voxel;
- python, numpy and torch RNGs are seeded and saved with every checkpoint, as is the data position;
- batch size 1 works (no squeeze); any device; DistributedDataParallel instead of DataParallel.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as activation_checkpoint

from ..card import ModelCard
from ..model import HAGANModel
from ..models.hagan import Discriminator, Encoder, Generator, SubEncoder
from .augment import DiscriminatorAugment, parse_policies, r1_penalty
from .init_source import copy_hagan_into, inflate_2d_into
from .trainer import Trainer, data_label, set_requires_grad


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


class HAGANTrainer(Trainer):
    """HA-GAN's networks, its four updates per iteration and its model file (G or its EMA, E, Sub_E)."""

    def build(self) -> None:
        cfg, device = self.cfg, self.env.device
        self.G, self.D = Generator(self.net).to(device), Discriminator(self.net).to(device)
        self.E, self.sub_E = Encoder(self.net).to(device), SubEncoder(self.net).to(device)
        self.g_step = GeneratorStep(self.G, cfg.grad_checkpoint)
        self.ema = copy.deepcopy(self.G).eval().requires_grad_(False) if cfg.ema else None
        self._spread_ceiling: float | None = None  # mode seeking: the data's pair spread, once measured
        policies = parse_policies(cfg.diffaugment)
        self.augment = (
            DiscriminatorAugment(policies, self.net.max_slab_start, cfg.seed + 2, cfg.ada_target) if policies else None
        )
        wrapped = map(self.wrap, (self.g_step, self.D, self.E, self.sub_E))
        self.g_step_ddp, self.D_ddp, self.E_ddp, self.sub_E_ddp = wrapped
        self.optimizers = {
            "G": self.adam(self.G, cfg.lr_g),
            "D": self.adam(self.D, cfg.lr_d),
            "E": self.adam(self.E, cfg.lr_e),
            "Sub_E": self.adam(self.sub_E, cfg.lr_e),
        }

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "E": self.E, "Sub_E": self.sub_E}

    def initialise(self) -> None:
        """``--init-from``: copy an HA-GAN of the same architecture (fine-tuning); ``--init-from-2d``:
        inflate a 2D split-shuffle model's layers into G and D where they correspond."""
        ema = None
        if self.cfg.init_from:
            self.init_summary, ema = copy_hagan_into(self.cfg, self.networks(), self.log)
        elif self.cfg.init_from_2d:
            self.init_summary = inflate_2d_into(self.cfg, {"G": self.G, "D": self.D}, self.log)
        if self.ema is not None and self.init_summary:
            self.ema.load_state_dict(ema if ema is not None else self.G.state_dict())

    # -- one iteration -------------------------------------------------------------------------
    def draw(self) -> tuple[torch.Tensor, int]:
        """This process's latents (slice of the global batch) and the shared crop position."""
        z = self.latents(self.cfg.batch_size, self.local_batch)
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
        slabs, anchors, position = torch.cat([x_slab, fake_slab]), torch.cat([x_small, fake_anchor]), crop
        if self.augment is not None:
            slabs, anchors, position = self.d_inputs(x_slab, x_small, fake_slab, fake_anchor, crop)
        lazy_r1 = self.cfg.r1 > 0 and self.iteration % self.cfg.r1_every == 0
        if lazy_r1:  # the real rows as leaves, for the gradient of D's real logits
            n = x.shape[0]
            real_slab, real_anchor = (v[:n].detach().requires_grad_() for v in (slabs, anchors))
            slabs, anchors = torch.cat([real_slab, slabs[n:]]), torch.cat([real_anchor, anchors[n:]])
        with self.autocast():
            out = self.D_ddp(slabs, anchors, position)
            real, fake = out.logit.float().split(x.shape[0])
            d_real, d_fake = bce(real, torch.ones_like(real)), bce(fake, torch.zeros_like(fake))
            d_loss = d_real + d_fake
            if labels is not None:
                d_loss = d_loss + F.cross_entropy(out.class_logits[: x.shape[0]].float(), labels)
        if lazy_r1:
            penalty = r1_penalty(real, (real_slab, real_anchor))
            d_loss = d_loss + 0.5 * self.cfg.r1 * self.cfg.r1_every * penalty
            losses["R1"] = penalty
        if self.augment is not None:
            self.augment.observe(float(self.env.mean(real.detach().sign().mean())), self.cfg.batch_size)
            losses["augment_p"] = torch.tensor(self.augment.p, device=self.env.device)
        self._update("D", d_loss)
        losses.update(D=d_loss, D_real=d_real, D_fake=d_fake)

        # 2. G: non-saturating loss through a frozen D, fresh latents, same crop
        set_requires_grad(self.D, False)
        set_requires_grad(self.G, True)
        paired = self.cfg.mode_seeking > 0
        ceiling = self.spread_ceiling() if paired else None
        g_labels = labels if labels is None or not paired else torch.cat([labels, labels])
        for _ in range(self.cfg.g_iter):
            z, _ = self.draw()
            if paired:  # a second latent per row: the mode-seeking term compares the two volumes
                z = torch.cat([z, self.latents(self.cfg.batch_size, self.local_batch)])
            with self.autocast():
                slab, anchor = self.g_step_ddp(z, g_labels, crop)
                if self.augment is None:
                    out = self.D(slab, anchor, crop)
                else:  # G learns through the same transforms D saw (differentiable)
                    out = self.D(*self.augment(slab, anchor, crop, self.env.rank, self.env.world_size))
                g_loss = bce(out.logit.float(), torch.ones_like(out.logit, dtype=torch.float32))
                if labels is not None:
                    g_loss = g_loss + self.cfg.lambda_class * F.cross_entropy(out.class_logits.float(), g_labels)
                if paired:
                    spread = latent_spread(z, slab, anchor)
                    # W / spread, less what it is at the data's own spread: no reward beyond it
                    push = (1.0 / (spread + 1e-5) - 1.0 / ceiling).clamp(min=0.0)
                    g_loss = g_loss + self.mode_seeking_weight() * push
            self._update("G", g_loss)
            self._update_ema(self.G)
        losses["G"] = g_loss
        if paired:
            losses["G_spread"] = spread

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

    def mode_seeking_weight(self) -> float:
        """--mode-seeking, ramped in linearly over --mode-seeking-ramp iterations of this run."""
        ramp = self.cfg.mode_seeking_ramp
        return self.cfg.mode_seeking * (min(1.0, (self.iteration + 1) / ramp) if ramp else 1.0)

    def d_inputs(self, x_slab, x_small, fake_slab, fake_anchor, crop: int):
        """Both halves of D's batch through the augmentation: (slabs, anchors, positions)."""
        rank, world = self.env.rank, self.env.world_size
        real = self.augment(x_slab, x_small, crop, rank, world)
        fake = self.augment(fake_slab, fake_anchor, crop, rank, world)
        return tuple(torch.cat(pair) for pair in zip(real, fake))

    def extra_state(self) -> dict:
        return {"augment": self.augment.state_dict()} if self.augment is not None else {}

    def load_extra_state(self, payload: dict) -> None:
        if self.augment is not None and "augment" in payload:
            self.augment.load_state_dict(payload["augment"])

    def spread_ceiling(self) -> float:
        """The training data's own pair spread, measured once: the mode-seeking term stops there."""
        if self._spread_ceiling is None:
            self._spread_ceiling = data_spread(self.dataset)
            self.log.message(
                f"mode seeking: pairs of training volumes spread {self._spread_ceiling:.3f}; G is pushed up to that"
            )
        return self._spread_ceiling

    def training_notes(self) -> dict:
        notes = super().training_notes()
        cfg = self.cfg
        if self.augment is not None:
            adaptive = {"ada_target": cfg.ada_target, "augment_p": round(self.augment.p, 4)} if cfg.ada_target else {}
            notes["diffaugment"] = {"policies": list(self.augment.policies), **adaptive}
        if cfg.r1:
            notes["r1"] = {"gamma": cfg.r1, "every": cfg.r1_every}
        if not self.cfg.mode_seeking:
            return notes
        ramp = {"mode_seeking_ramp": cfg.mode_seeking_ramp} if cfg.mode_seeking_ramp else {}
        ceiling = round(self.spread_ceiling(), 4)
        return {**notes, "mode_seeking": cfg.mode_seeking, **ramp, "mode_seeking_ceiling": ceiling}

    def optimiser_text(self) -> str:
        cfg = self.cfg
        return f"Adam betas ({cfg.beta1}, {cfg.beta2}); lr G {cfg.lr_g}, D {cfg.lr_d}, E {cfg.lr_e}"

    def default_name(self, summary: dict) -> str:
        return default_model_name(self.cfg.resolution, summary)

    def make_model(self, card: ModelCard) -> HAGANModel:
        """G (the EMA copy when enabled), E and Sub_E, on the CPU."""
        generator = self.exported_generator
        return HAGANModel(
            card, copy.deepcopy(generator).cpu(), copy.deepcopy(self.E).cpu(), copy.deepcopy(self.sub_E).cpu()
        )


def latent_spread(z: torch.Tensor, slab: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """How far apart the two halves of a paired batch are as volumes, per unit of latent distance.

    Mode seeking (MSGAN, Mao et al. 2019): G adds ``weight / spread`` to its loss, so latents that
    differ must give volumes that differ; a collapsing G (every seed the same volume) pays for it.
    Unlike MSGAN the reward ends at the training data's own spread (``data_spread``): beyond it
    the term would only trade realism for difference.
    Slab and anchor count alike: the anchor carries the global shape, the slab the detail.
    """
    z1, z2 = z.float().chunk(2)
    return pair_distance(slab, anchor) / (z1 - z2).abs().mean()


def pair_distance(slab: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between the two halves of a batch, slab and anchor weighted alike."""
    s1, s2 = slab.float().chunk(2)
    a1, a2 = anchor.float().chunk(2)
    return 0.5 * ((s1 - s2).abs().mean() + (a1 - a2).abs().mean())


def data_spread(dataset, pairs: int = 8) -> float:
    """``latent_spread`` of real volumes: pairs of training volumes, as if drawn from two latents.

    Two standard-normal latents lie 2/sqrt(pi) apart per component on average, which is the
    latent distance a generated pair is divided by. A whole volume stands for the slab (the
    average over crop positions). Fewer than two volumes: no ceiling (infinity).
    """
    count = min(pairs, len(dataset) // 2)
    if count == 0:
        return float("inf")
    total = 0.0
    for k in range(count):
        volumes = torch.stack([dataset[i][0].float() for i in (2 * k, 2 * k + 1)])
        total += float(pair_distance(volumes, F.avg_pool3d(volumes, 4)))
    return total / count / (2.0 / math.sqrt(math.pi))


def default_model_name(resolution: int, summary: dict) -> str:
    """E.g. 'HA-GAN 128 CT' or 'HA-GAN 128 chest-ct phantoms'."""
    return f"HA-GAN {resolution} {data_label(summary)}".strip()
