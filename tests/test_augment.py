"""The discriminator's differentiable augmentation (DiffAugment, ADA) and lazy R1 for HA-GAN training."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from engine.cli import main
from engine.models.hagan import Discriminator, Generator
from engine.training.augment import ADA_IMAGES, ADA_INTERVAL, FILL, DiscriminatorAugment, r1_penalty
from engine.training.config import TrainConfig
from engine.training.distributed import Distributed
from engine.training.hagan_trainer import HAGANTrainer


def volumes(count: int = 6, size: int = 32) -> torch.Tensor:
    """Smooth random volumes in [-1, 1] (every voxel distinct enough to tell shifts apart)."""
    x = torch.randn(count, 1, size, size, size, generator=torch.Generator().manual_seed(0))
    return torch.tanh(F.avg_pool3d(x, 3, 1, 1) * 3)


def shifted(volume: torch.Tensor, d: int, h: int, w: int) -> torch.Tensor:
    """The volume moved by (d, h, w) voxels, uncovered voxels FILL."""
    out = torch.full_like(volume, FILL)
    size = volume.shape[-1]

    def part(k):
        return slice(max(k, 0), size + min(k, 0)), slice(max(-k, 0), size - max(k, 0))

    (td, sd), (th, sh), (tw, sw) = part(d), part(h), part(w)
    out[..., td, th, tw] = volume[..., sd, sh, sw]
    return out


def test_a_translated_real_pair_is_the_slab_and_anchor_of_one_moved_volume_at_its_moved_position():
    x, start, thickness = volumes(), 12, 4  # 32^3: slabs of 4 slices, positions 0..28
    slab, anchor = x[:, :, start : start + thickness], F.avg_pool3d(x, 4)
    augment = DiscriminatorAugment(("translation",), max_slab_start=28, seed=3)
    moved_any = False
    for _ in range(4):
        out_slab, out_anchor, position = augment(slab, anchor, start)
        for row in range(x.shape[0]):
            matches = [
                k
                for k in itertools.product((-1, 0, 1), repeat=3)
                if torch.equal(out_anchor[row], F.avg_pool3d(shifted(x[row : row + 1], *(4 * v for v in k)), 4)[0])
            ]
            assert len(matches) == 1  # the anchor is the area-downsampled volume moved by whole anchor voxels
            d, h, w = (4 * v for v in matches[0])
            moved = shifted(x[row : row + 1], d, h, w)[0]
            at = int(position[row])
            assert at == start + d  # the position moves with the slab axis...
            assert torch.equal(out_slab[row], moved[:, at : at + thickness])  # ...so the slab is the moved one's
            moved_any |= matches[0] != (0, 0, 0)
    assert moved_any


def test_colour_changes_a_slab_and_its_anchor_alike_and_cutout_blanks_a_box():
    x = volumes()
    slab, anchor = x[:, :, 8:12], F.avg_pool3d(x, 4)
    out_slab, out_anchor, _ = DiscriminatorAugment(("color",), 28, seed=1)(slab, anchor, 8)
    for row in range(x.shape[0]):
        gain = (out_anchor[row].std() / anchor[row].std()).item()
        assert 0.5 <= gain <= 1.5 and abs(gain - 1) > 1e-3
        offsets = (out_slab[row] - gain * slab[row], out_anchor[row] - gain * anchor[row])
        assert torch.allclose(offsets[0], offsets[1].mean().expand_as(offsets[0]), atol=1e-5)  # one affine map
    out_slab, out_anchor, _ = DiscriminatorAugment(("cutout",), 28, seed=1)(slab, anchor, 8)
    for out, source in ((out_slab, slab), (out_anchor, anchor)):
        blanked = (out != source).flatten(1).float().mean(1)
        assert torch.all(blanked > 0.05) and torch.all(blanked <= 0.125 + 1e-6)  # a box of half of each edge
        assert torch.all(out[out != source] == FILL)


def test_generators_learn_through_the_augmentation(tiny_config):
    g, d = Generator(tiny_config), Discriminator(tiny_config)
    augment = DiscriminatorAugment(("translation", "cutout", "color"), tiny_config.max_slab_start, seed=0)
    features = g.features(torch.randn(4, tiny_config.latent_dim))
    slab, anchor = g.slab(features, 8), g.anchor(features)
    out = d(*augment(slab, anchor, 8))
    out.logit.sum().backward()
    for name in ("tp_conv7.weight", "sub_G.tp_conv3.weight", "fc1.weight"):
        grad = g.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_ada_raises_p_while_d_is_sure_of_the_reals_and_lowers_it_otherwise():
    augment = DiscriminatorAugment(("translation",), 28, seed=0, ada_target=0.6)
    assert augment.p == 0.0
    for _ in range(3 * ADA_INTERVAL):
        augment.observe(0.9, batch_size=4)
    step = ADA_INTERVAL * 4 / ADA_IMAGES
    assert augment.p == pytest.approx(3 * step)
    for _ in range(ADA_INTERVAL):
        augment.observe(0.1, batch_size=4)
    assert augment.p == pytest.approx(2 * step)
    again = DiscriminatorAugment(("translation",), 28, seed=5, ada_target=0.6)
    again.load_state_dict(augment.state_dict())  # a resume continues with the same p and draws
    x = volumes(2)
    assert again.p == augment.p
    assert all(
        torch.equal(a, b)
        for a, b in zip(again(x[:, :, :4], x[:, :, :8, :8, :8], 0), augment(x[:, :, :4], x[:, :, :8, :8, :8], 0))
    )


def test_r1_is_the_squared_gradient_norm_of_ds_real_logits():
    slab, anchor = torch.randn(3, 1, 2, 4, 4, requires_grad=True), torch.randn(3, 1, 2, 2, 2, requires_grad=True)
    w_slab, w_anchor = torch.randn(1, 1, 2, 4, 4), torch.randn(1, 1, 2, 2, 2)
    logits = (slab * w_slab).flatten(1).sum(1) + (anchor * w_anchor).flatten(1).sum(1)
    expected = w_slab.square().sum() + w_anchor.square().sum()
    assert r1_penalty(logits, (slab, anchor)).item() == pytest.approx(expected.item(), rel=1e-5)


def trainer(tmp_path, **options) -> HAGANTrainer:
    cfg = TrainConfig(
        data="phantoms:chest-ct", out=str(tmp_path), resolution=32, preset="tiny", batch_size=2, phantom_count=2
    )
    cfg = TrainConfig(**{**cfg.__dict__, **options})
    return HAGANTrainer(cfg, Distributed(device=torch.device("cpu")), quiet=True)


def reference_d_update(t: HAGANTrainer, x: torch.Tensor) -> None:
    """The D update of one iteration as written before augmentation existed (plain slab, anchor, crop)."""
    z, crop = t.draw()
    with torch.no_grad():
        fake_slab, fake_anchor = t.g_step(z, None, crop)
    x_slab, x_small = x[:, :, crop : crop + t.net.slab_thickness], F.avg_pool3d(x, 4)
    out = t.D(torch.cat([x_slab, fake_slab]), torch.cat([x_small, fake_anchor]), crop)
    real, fake = out.logit.float().split(x.shape[0])
    loss = F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
    loss = loss + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    t.optimizers["D"].zero_grad(set_to_none=True)
    loss.backward()
    t.optimizers["D"].step()


def d_weights(t: HAGANTrainer) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in t.D.parameters()])


@pytest.mark.parametrize("options", [{}, {"diffaugment": "translation,cutout,color"}, {"r1": 10.0, "r1_every": 1}])
def test_with_everything_off_d_takes_exactly_the_reference_step(tmp_path, options):
    x = volumes(2)
    ours, reference = trainer(tmp_path / "a", **options), trainer(tmp_path / "b")
    assert torch.equal(d_weights(ours), d_weights(reference))  # the same seed: the same start
    ours.step(x, None)
    reference_d_update(reference, x)
    same = torch.equal(d_weights(ours), d_weights(reference))
    assert same == (not options)  # bit for bit when off; each option changes the update


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--diffaugment", "translation,zoom"], "unknown --diffaugment policy 'zoom'"),
        (["--ada-target", "0.6"], "--ada-target needs --diffaugment"),
        (["--diffaugment", "color", "--ada-target", "1.5"], "--ada-target must lie in (0, 1)"),
        (["--r1", "-1"], "--r1 must be 0 (off) or positive"),
        (["--r1", "1", "--r1-every", "0"], "--r1-every must be at least 1"),
    ],
)
def test_bad_augmentation_settings_are_one_line_errors(tmp_path, capsys, extra, expected):
    assert main(["train", "--phantoms", "chest-ct", "--out", str(tmp_path / "r"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]
    assert not (tmp_path / "r").exists()


def test_mode_seeking_is_ramped_in_over_the_first_iterations_of_a_run(tmp_path, capsys):
    t = trainer(tmp_path / "r", mode_seeking=0.1, mode_seeking_ramp=10)
    weights = []
    for iteration in (0, 4, 9, 50):
        t.iteration = iteration
        weights.append(t.mode_seeking_weight())
    assert weights == pytest.approx([0.01, 0.05, 0.1, 0.1])
    args = ["train", "--phantoms", "chest-ct", "--out", str(tmp_path / "x"), "--mode-seeking-ramp", "100"]
    assert main(args) == 2
    assert "--mode-seeking-ramp takes a number of iterations" in capsys.readouterr().err
