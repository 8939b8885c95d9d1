"""Training beyond a plain run: fine-tuning, bf16 on the CPU, skipped non-finite updates, losses read back."""

import json

import numpy as np
import pytest
import torch

from engine.checkpoints import load_model, read_model_card
from engine.cli import main
from engine.device import cpu_has_bf16

TINY = ["--phantoms", "chest-ct", "--resolution", "32", "--batch-size", "2", "--phantom-count", "4", "--log-every", "1"]


def train(run, *extra):
    """`engine train` in-process; returns the JSON progress events."""
    progress = run.parent / f"{run.name}.jsonl"
    assert main(["train", *TINY, *extra, "--out", str(run), "--progress-json", str(progress)]) == 0
    return [json.loads(line) for line in progress.read_text().splitlines()]


def generator_weights(run) -> torch.Tensor:
    generator = load_model(run / "model.safetensors").generator
    return torch.cat([p.detach().flatten() for p in generator.parameters()])


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny HA-GAN trained 3 iterations with non-default widths (so adoption is visible)."""
    run = tmp_path_factory.mktemp("source") / "run"
    train(run, "--preset", "tiny", "--latent-dim", "24", "--iterations", "3")
    return run


def test_fine_tuning_continues_from_the_source_instead_of_starting_over(source, tmp_path):
    tuned, fresh = tmp_path / "tuned", tmp_path / "fresh"
    train(tuned, "--init-from", str(source / "model.safetensors"), "--iterations", "1", "--seed", "5")
    train(fresh, "--preset", "tiny", "--latent-dim", "24", "--iterations", "1", "--seed", "5")
    weights = {name: generator_weights(name) for name in (source, tuned, fresh)}
    # one Adam step (lr 1e-4) away from the source, far from a run that started from scratch
    assert (weights[tuned] - weights[source]).abs().max() < 2e-3
    assert (weights[fresh] - weights[source]).abs().mean() > 100 * (weights[tuned] - weights[source]).abs().mean()
    card = read_model_card(tuned / "model.safetensors")
    assert card.config == read_model_card(source / "model.safetensors").config  # widths adopted, not given
    init = card.training["init"]
    assert init["from"] == str(source / "model.safetensors") and init["iteration"] == 3
    assert init["networks"] == ["G", "E", "Sub_E"]  # a model file holds no D: D starts fresh


def test_fine_tuning_from_a_run_folder_takes_its_discriminator_too(source, tmp_path):
    from engine.training.config import TrainConfig
    from engine.training.distributed import Distributed
    from engine.training.hagan_trainer import HAGANTrainer
    from engine.training.run_checkpoint import load_latest

    cfg = TrainConfig.load(source / "config.json")
    cfg = TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "tuned"), "init_from": str(source)})
    trainer = HAGANTrainer(cfg, Distributed(device=torch.device("cpu")), quiet=True)
    trainer.initialise()
    saved = load_latest(source / "checkpoints")["models"]
    for name, net in trainer.networks().items():
        for key, value in net.state_dict().items():
            assert torch.equal(value, saved[name][key]), f"{name}.{key}"
    assert trainer.init_summary["networks"] == ["G", "D", "E", "Sub_E"]


def test_a_learning_rate_of_zero_freezes_g_while_d_warms_up(source, tmp_path):
    """The documented D warm-up on a model file: --lr-g 0 trains D and leaves G exactly as it was."""
    warm = tmp_path / "warm"
    train(warm, "--init-from", str(source / "model.safetensors"), "--lr-g", "0", "--iterations", "2", "--seed", "5")
    assert torch.equal(generator_weights(warm), generator_weights(source))
    assert read_model_card(warm / "model.safetensors").training["init"]["iteration"] == 3


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--latent-dim", "32"], "the HA-GAN model has latent_dim 24, this run 32"),
        (["--init-from-2d", "{model}"], "give --init-from (an HA-GAN to fine-tune) or --init-from-2d"),
        (["--inflate", "average"], "--inflate average needs a 2D model to inflate (--init-from-2d)"),
    ],
)
def test_a_source_that_cannot_start_the_run_is_a_one_line_error(source, tmp_path, capsys, extra, expected):
    model = str(source / "model.safetensors")
    args = ["train", *TINY, "--init-from", model, *[a.format(model=model) for a in extra], "--out", str(tmp_path / "r")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "r").exists()


def test_an_official_checkpoint_needs_its_resolution(tmp_path, capsys):
    official = tmp_path / "G_iter10.pth"
    official.write_bytes(b"not read before the resolution is known")
    assert main(["train", *TINY[:2], "--init-from", str(official), "--out", str(tmp_path / "r")]) == 2
    assert "do not record their resolution; give --resolution" in capsys.readouterr().err


def test_fp16_on_the_cpu_is_refused_and_bf16_trains_where_the_cpu_has_it(tmp_path, capsys):
    assert main(["train", *TINY, "--preset", "tiny", "--precision", "fp16", "--out", str(tmp_path / "h")]) == 2
    assert "fp16 training needs a CUDA GPU" in capsys.readouterr().err
    if not cpu_has_bf16():
        pytest.skip("this CPU has no bf16 instructions")
    events = train(tmp_path / "b", "--preset", "tiny", "--precision", "bf16", "--iterations", "2")
    losses = [e["losses"] for e in events if e["event"] == "progress"]
    assert len(losses) == 2 and all(np.isfinite(v) for step in losses for v in step.values())
    assert read_model_card(tmp_path / "b" / "model.safetensors").training["precision"] == "bf16"


def test_a_non_finite_update_is_skipped_and_counted_and_five_in_a_row_stop_the_run(tmp_path):
    from engine.training.config import TrainConfig
    from engine.training.distributed import Distributed
    from engine.training.hagan_trainer import HAGANTrainer

    cfg = TrainConfig(
        data="phantoms:chest-ct", out=str(tmp_path / "r"), resolution=32, preset="tiny", batch_size=2, phantom_count=4
    )
    trainer = HAGANTrainer(cfg, Distributed(device=torch.device("cpu")), quiet=True)

    def flat(net):
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    def step(poison_g: bool) -> dict[str, bool]:
        """One iteration, G's first gradient made NaN if asked; which networks changed."""
        first = next(trainer.G.parameters()).requires_grad_(True)  # the step sets it again
        handle = first.register_hook(lambda grad: grad * float("nan")) if poison_g else None
        before = {"G": flat(trainer.G), "D": flat(trainer.D)}
        try:
            trainer.step(*next(trainer.data))
        finally:
            if handle is not None:
                handle.remove()
        trainer.iteration += 1
        return {name: not torch.equal(before[name], flat(net)) for name, net in (("G", trainer.G), ("D", trainer.D))}

    assert step(poison_g=True) == {"G": False, "D": True}  # G's update skipped, D's made
    assert step(poison_g=False) == {"G": True, "D": True}
    assert trainer.skipped_updates == {"G": 1}
    card = read_model_card(trainer.export(tmp_path / "m.safetensors"))
    assert card.training["skipped_updates"] == {"G": 1}
    for _ in range(4):
        step(poison_g=True)
    with pytest.raises(FloatingPointError, match="G gradients not finite in 5 iterations in a row.*diverged"):
        step(poison_g=True)


def test_fine_tuning_an_official_checkpoint_takes_all_four_networks(tmp_path):
    from engine.cli import build_parser
    from engine.training.cli import config_from_args
    from engine.training.distributed import Distributed
    from engine.training.hagan_trainer import HAGANTrainer
    from tests.reference_hagan import write_official_checkpoint

    states = write_official_checkpoint(tmp_path, 128, iteration=80000)
    given = ["--phantoms", "chest-ct", "--out", str(tmp_path / "r"), "--init-from", str(tmp_path)]
    cfg = config_from_args(
        build_parser().parse_args(["train", *given, "--resolution", "128", "--batch-size", "1", "--phantom-count", "1"])
    )
    assert (cfg.latent_dim, cfg.g_width, cfg.d_width) == (1024, 32, 16)  # the official widths, taken over
    trainer = HAGANTrainer(cfg, Distributed(device=torch.device("cpu")), quiet=True)
    trainer.initialise()
    for name, net in trainer.networks().items():
        for key, value in net.state_dict().items():
            assert torch.equal(value, states[name][key]), f"{name}.{key}"
    assert trainer.init_summary["networks"] == ["G", "D", "E", "Sub_E"]


def test_a_runs_losses_are_read_back_across_a_resume(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from engine.training.run_log import read_losses

    assert read_losses(tmp_path) == {}  # no logs yet
    for steps, value in ((range(1, 6), 1.0), (range(3, 7), 2.0)):  # resumed from a checkpoint at 2
        writer = SummaryWriter(str(tmp_path / "tensorboard"))
        for step in steps:
            writer.add_scalar("loss/G", value, step)
            writer.add_scalar("speed/iterations_per_second", 9.0, step)
        writer.close()
    assert read_losses(tmp_path) == {"G": ([1, 2, 3, 4, 5, 6], [1.0, 1.0, 2.0, 2.0, 2.0, 2.0])}


def test_fine_tuning_chains_add_up_their_iterations():
    from engine.training.init_source import trained_iterations

    first = {"iterations": 1382}
    second = {"iterations": 3500, "init": {"iteration": trained_iterations(first), "strategy": "copy"}}
    third = {"iterations": 2000, "init": {"iteration": trained_iterations(second), "strategy": "copy"}}
    assert trained_iterations(second) == 4882 and trained_iterations(third) == 6882
    inflated = {"iterations": 100, "init": {"iteration": 50, "strategy": "center"}}  # a 2D twin: other steps
    assert trained_iterations(inflated) == 100


def test_a_chain_through_a_run_folder_counts_every_earlier_iteration(source, tmp_path):
    """model file (3 it.) -> run A (2 it.) -> run B from A's folder (1 it.): B's model has 6 in all."""
    from engine.training.init_source import trained_iterations

    first, second = tmp_path / "a", tmp_path / "b"
    train(first, "--init-from", str(source / "model.safetensors"), "--iterations", "2")
    train(second, "--init-from", str(first), "--iterations", "1")
    assert trained_iterations(read_model_card(second / "model.safetensors").training) == 6


def test_mode_seeking_keeps_seeds_apart_where_plain_training_lets_them_collapse(tmp_path):
    """--mode-seeking: the same start, data and seeds; the volumes of different latents end up
    further apart than without it, the spread is logged and the card records the weight."""
    from engine.latent import seed_to_z

    @torch.no_grad()
    def spread(run) -> float:
        model = load_model(run / "model.safetensors")
        volumes = [model.generator.full(model.generator.features(seed_to_z(s, 32))) for s in range(4)]
        return float(torch.stack(volumes).std(dim=0).mean())

    runs = {weight: tmp_path / f"w{weight}" for weight in (0, 1)}
    events = {}
    for weight, run in runs.items():
        extra = ["--mode-seeking", str(weight)] if weight else []
        events[weight] = train(run, "--preset", "tiny", "--iterations", "12", "--lr-g", "1e-3", *extra)
    spreads = {weight: spread(run) for weight, run in runs.items()}
    assert spreads[1] > 1.5 * spreads[0], spreads
    logged = [e["losses"] for e in events[1] if e.get("event") == "progress"]
    assert logged and all(losses["G_spread"] > 0 for losses in logged)
    assert all("G_spread" not in e.get("losses", {}) for e in events[0])
    training = read_model_card(runs[1] / "model.safetensors").training
    assert training["mode_seeking"] == 1.0 and 0 < training["mode_seeking_ceiling"] < 1
    assert "mode_seeking" not in read_model_card(runs[0] / "model.safetensors").training


def test_mode_seeking_stops_rewarding_spread_at_the_datas_own():
    """The ceiling is the training volumes' pair spread, in the units of a generated pair's."""
    import math

    from engine.training.hagan_trainer import data_spread, latent_spread

    zeros, ones = torch.zeros(1, 8, 8, 8), torch.ones(1, 8, 8, 8)
    assert data_spread([(zeros, 0), (ones, 0), (zeros, 0), (zeros, 0)]) == pytest.approx(0.5 * math.sqrt(math.pi) / 2)
    assert data_spread([(zeros, 0)]) == math.inf  # one volume: nothing to compare, no ceiling
    # a generated pair as far apart as that data pair, with typical latents, scores about the same
    z = torch.randn(2, 4096, generator=torch.Generator().manual_seed(0))
    slabs, anchors = torch.stack([zeros, ones]), torch.stack([zeros[:, :2, :2, :2], ones[:, :2, :2, :2]])
    assert float(latent_spread(z, slabs, anchors)) == pytest.approx(data_spread([(zeros, 0), (ones, 0)]), rel=0.05)


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--mode-seeking", "-1"], "--mode-seeking must be 0 (off) or positive"),
        (["--family", "split-shuffle", "--mode-seeking", "1"], "--mode-seeking is for HA-GAN"),
    ],
)
def test_impossible_mode_seeking_settings_are_one_line_errors(tmp_path, capsys, extra, expected):
    assert main(["train", *TINY, "--out", str(tmp_path / "r"), "--iterations", "1", *extra]) == 2
    assert expected in capsys.readouterr().err
