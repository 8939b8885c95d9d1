"""Data-efficient discriminator training for HA-GAN: differentiable augmentation and lazy R1.

DiffAugment (Zhao et al., NeurIPS 2020) in 3D: every input of both discriminators, real and
generated, goes through the same random, differentiable transforms, so D cannot memorise the
training volumes and G still gets gradients through them. Policies:

- ``color``: brightness + U(-0.5, 0.5), contrast x U(0.5, 1.5) about the volume's mean;
- ``translation``: a shift of up to 1/8 of the volume along each axis, the uncovered part filled
  with -1 (the empty background of every data set here);
- ``cutout``: a box of half the edge along each axis set to -1.

What must stay consistent: D^H reads a slab together with its crop position, D^L the anchor;
the two branches only average their logits, so neither sees the other's input. A slab and its
position are the pair that D reads jointly: a translation along the slab axis therefore moves
the position input (the slab becomes the one of a volume shifted by that much) instead of shifting
the slab's content, and the anchor is shifted by the same millimetres. In-plane shifts and the
colour transform are the same for a slab and its anchor (one transformed volume); cutout boxes
are drawn for each branch on its own.

ADA (Karras et al., NeurIPS 2020): each transform is applied to a row with probability p, which
follows the sign of D's logits on the real inputs: averaged over ``ADA_INTERVAL`` iterations,
above the target p rises, below it falls, by ``ADA_INTERVAL * batch / ADA_IMAGES`` per step
(p can go from 0 to 1 within ADA_IMAGES real volumes). Without a target p is 1.

R1 (Mescheder et al., ICML 2018), lazily (Karras et al., StyleGAN2): every k iterations D's loss
gets gamma/2 * k * E|grad_x D(x)|^2 over the real inputs (slab and anchor) it was shown.
"""

from __future__ import annotations

import torch

from ..enums import Family
from ..errors import ConfigError

POLICIES = ("translation", "cutout", "color")
FILL = -1.0  # the network value of empty background (air, outside the head)
TRANSLATION = 1 / 8  # largest shift, as a fraction of each axis
CUTOUT = 1 / 2  # cutout box edge, as a fraction of each axis
ADA_INTERVAL = 4  # iterations between adjustments of p
ADA_IMAGES = 5000  # real volumes over which p may go from 0 to 1


def parse_policies(text: str) -> tuple[str, ...]:
    """'translation,cutout,color' -> the policies in a fixed order; '' -> none."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise ConfigError(f"unknown --diffaugment policy '{unknown[0]}'; choose from {','.join(POLICIES)}")
    return tuple(name for name in POLICIES if name in names)


def check_options(diffaugment: str, ada_target: float, r1: float, r1_every: int, family: str) -> None:
    """One-line errors for settings of the discriminator's augmentation and R1."""
    policies = parse_policies(diffaugment)
    if not 0.0 <= ada_target < 1.0:
        raise ConfigError(f"--ada-target must lie in (0, 1) (0: off), got {ada_target}")
    if ada_target and not policies:
        raise ConfigError("--ada-target needs --diffaugment (the transforms whose probability it steers)")
    if r1 < 0:
        raise ConfigError(f"--r1 must be 0 (off) or positive, got {r1}")
    if r1_every < 1:
        raise ConfigError(f"--r1-every must be at least 1, got {r1_every}")
    if family != Family.HA_GAN and (policies or r1):
        raise ConfigError("--diffaugment, --ada-target and --r1 are for HA-GAN")


class DiscriminatorAugment:
    """The random transforms of D's inputs (see the module notes), with ADA's probability p."""

    def __init__(self, policies: tuple[str, ...], max_slab_start: int, seed: int, ada_target: float = 0.0):
        self.policies, self.max_start = policies, max_slab_start
        self.ada_target = ada_target
        self.p = 0.0 if ada_target else 1.0
        self.rng = torch.Generator("cpu").manual_seed(seed)
        self._signs, self._seen = 0.0, 0

    def __call__(
        self, slab: torch.Tensor, anchor: torch.Tensor, start: int, rank: int = 0, world: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Transformed (slab, anchor) and each row's crop position (a float tensor, for D).

        Parameters are drawn for the global batch (``world`` processes) and this process takes
        its rows, so every process draws the same numbers and the rows get different ones.
        """
        rows = slab.shape[0]
        params = self._draw(rows * world)
        params = {k: v[rank * rows : (rank + 1) * rows].to(slab.device) for k, v in params.items()}
        position = torch.full((rows,), float(start), device=slab.device)
        if "color" in self.policies:
            mean = anchor.mean(dim=(1, 2, 3, 4), keepdim=True)
            gain, offset = params["contrast"].view(-1, 1, 1, 1, 1), params["brightness"].view(-1, 1, 1, 1, 1)
            slab, anchor = ((v - mean) * gain + mean + offset for v in (slab, anchor))
        if "translation" in self.policies:
            # whole anchor voxels (up to 1/8 of its edge); the slab moves 4x as many of its voxels
            reach = round(anchor.shape[-1] * TRANSLATION)
            depth, height, width = torch.round(params["shift"] * reach).long().unbind(1)
            anchor = _shift(anchor, (depth, height, width))
            slab = _shift(slab, (torch.zeros_like(depth), 4 * height, 4 * width))
            position = (position + 4 * depth).clamp(0, self.max_start)
        if "cutout" in self.policies:
            slab = _cutout(slab, params["slab_box"], params["cut"])
            anchor = _cutout(anchor, params["anchor_box"], params["cut"])
        return slab, anchor, position

    def _draw(self, count: int) -> dict[str, torch.Tensor]:
        """Uniform numbers for every transform; rows that skip a transform (ADA) get its identity."""
        g = self.rng
        apply = {name: torch.rand(count, generator=g) < self.p for name in POLICIES}
        brightness = (torch.rand(count, generator=g) - 0.5) * apply["color"]
        contrast = 1.0 + (torch.rand(count, generator=g) - 0.5) * apply["color"]
        # shifts as fractions of the largest one: turned into voxels where the sizes are known
        shift = (torch.rand(count, 3, generator=g) * 2 - 1) * apply["translation"][:, None]
        slab_box, anchor_box = torch.rand(count, 3, generator=g), torch.rand(count, 3, generator=g)
        return {
            "brightness": brightness,
            "contrast": contrast,
            "shift": shift,
            "slab_box": slab_box,
            "anchor_box": anchor_box,
            "cut": apply["cutout"],
        }

    # -- ADA -------------------------------------------------------------------------------------
    def observe(self, real_sign_mean: float, batch_size: int) -> None:
        """Record E[sign(D(real))] of one iteration; every ADA_INTERVAL iterations, move p."""
        if not self.ada_target:
            return
        self._signs += real_sign_mean
        self._seen += 1
        if self._seen == ADA_INTERVAL:
            overfit = self._signs / self._seen
            step = ADA_INTERVAL * batch_size / ADA_IMAGES
            direction = 1.0 if overfit > self.ada_target else -1.0
            self.p = min(1.0, max(0.0, self.p + direction * step))
            self._signs, self._seen = 0.0, 0

    def state_dict(self) -> dict:
        return {"p": self.p, "rng": self.rng.get_state(), "signs": self._signs, "seen": self._seen}

    def load_state_dict(self, state: dict) -> None:
        self.p, self._signs, self._seen = float(state["p"]), float(state["signs"]), int(state["seen"])
        self.rng.set_state(state["rng"])


def _shift(x: torch.Tensor, voxels: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Each row moved by its own whole-voxel shift along D, H, W; uncovered voxels set to FILL."""
    rows = x.shape[0]
    inside = torch.ones_like(x, dtype=torch.bool)
    for axis, shift in zip((2, 3, 4), voxels):
        size = x.shape[axis]
        source = torch.arange(size, device=x.device)[None, :] - shift[:, None]  # (rows, size)
        valid = (source >= 0) & (source < size)
        view = [rows, 1, 1, 1, 1]
        view[axis] = size
        index = source.clamp(0, size - 1).view(view).expand_as(x)
        x = torch.gather(x, axis, index)
        inside &= valid.view(view)
    return torch.where(inside, x, torch.full_like(x, FILL))


def _cutout(x: torch.Tensor, corner: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """A box of CUTOUT of each axis set to FILL in the rows where ``apply``; ``corner`` in [0, 1)
    places it (the box stays inside the volume)."""
    rows = x.shape[0]
    inside = apply.view(rows, 1, 1, 1, 1).clone()
    for axis in (2, 3, 4):
        size = x.shape[axis]
        edge = max(1, round(size * CUTOUT))
        first = (corner[:, axis - 2] * (size - edge + 1)).long()
        coordinate = torch.arange(size, device=x.device)[None, :]
        hit = (coordinate >= first[:, None]) & (coordinate < first[:, None] + edge)
        view = [rows, 1, 1, 1, 1]
        view[axis] = size
        inside = inside & hit.view(view)
    return torch.where(inside, torch.full_like(x, FILL), x)


def r1_penalty(real_logits: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """E over rows of |d sum(real logits) / d inputs|^2 (inputs: the leaves D read), for R1."""
    grads = torch.autograd.grad(real_logits.sum(), inputs, create_graph=True)
    return sum(g.float().square().flatten(1).sum(1) for g in grads).mean()
