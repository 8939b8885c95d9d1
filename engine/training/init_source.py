"""Where a run's first weights come from: another model (file or run folder), inflated or copied.

``--init-from`` (split-shuffle, stage 3d) inflates the 2D twin of the run's networks one to one;
``--init-from-2d`` (HA-GAN) inflates the 2D layers that correspond to HA-GAN layers
(``engine.models.inflate.inflate_matching``). A run folder gives its newest checkpoint (the EMA
generator where the run keeps one), a model file its networks (2D stage files hold G and D).
``--init-from`` (HA-GAN) fine-tunes: an HA-GAN of the same architecture (our file, an official
checkpoint or a run folder) gives G, E^H and E^G, and D where the source has one.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from torch import nn

from ..checkpoints import load_model, load_official, read_model_card
from ..enums import Family
from ..errors import ConfigError, first_line
from ..models.hagan import HAGANConfig
from ..models.inflate import inflate, inflate_matching
from ..models.split_shuffle import SplitShuffleConfig, SplitShuffleDiscriminator, SplitShuffleGenerator
from .config import TrainConfig
from .run_checkpoint import checkpoint_mismatch, list_checkpoints, read_checkpoint
from .run_log import RunLog

# network settings a 3d run takes over from its 2D source when they are not given
ADOPTED = ("resolution", "latent_dim", "g_width", "d_width", "max_width", "blocks", "block_groups")


def source_config(path: str, resolution: int | None = None) -> HAGANConfig | SplitShuffleConfig:
    """The network settings of a model file or run folder (official files: given ``resolution``)."""
    source = Path(path)
    if not source.exists():
        raise ConfigError(f"{source}: no such model file or run folder")
    if source.is_dir() and (source / "config.json").exists():
        return TrainConfig.load(source / "config.json").network()
    if source.is_file() and source.suffix == ".safetensors":
        return read_model_card(source).config
    if source.is_dir() and not any(source.glob("G_iter*.pth")):
        raise ConfigError(f"{source}: not a training run (no config.json) and not a model file")
    if resolution is None:
        raise ConfigError(f"{source}: official HA-GAN files do not record their resolution; give --resolution 128/256")
    return load_official(source, resolution, parts=("G",)).card.config


def newest_checkpoint(run_dir: Path, networks: dict[str, nn.Module]) -> dict:
    """A source run's newest checkpoint that fits ``networks`` (G, and the others it holds), or a one-line
    error; damaged or foreign checkpoints before it are skipped with a warning naming them."""
    problems = []
    for path in reversed(list_checkpoints(run_dir / "checkpoints")):
        try:
            payload = read_checkpoint(path)
            models = payload.get("models") if isinstance(payload.get("models"), dict) else {}
            present = {name: net for name, net in networks.items() if name == "G" or name in models}
            problem = checkpoint_mismatch(payload, present, {})
        except Exception as error:  # a damaged file: report and try the previous one
            problem = first_line(error, 120)
        if not problem:
            for text in problems:
                print(f"skipped checkpoint {text}", file=sys.stderr)
            return payload
        problems.append(f"{path.name}: {problem}")
    if problems:
        raise ConfigError(f"{run_dir}: no usable checkpoint ({'; '.join(problems)})")
    raise ConfigError(f"{run_dir}: the run has no checkpoint yet")


def check_2d_source(path: str, option: str) -> SplitShuffleConfig:
    """The 2D split-shuffle settings of ``path``, or a one-line error saying what it is instead."""
    config = source_config(path)
    if not isinstance(config, SplitShuffleConfig):
        raise ConfigError(
            f"{path} is an ha-gan model; {option} takes a 2D split-shuffle model "
            "(train one with --family split-shuffle --stage 2d)"
        )
    if config.dims != 2:
        raise ConfigError(f"{path} is a 3D split-shuffle model; {option} takes a 2D one (--stage 2d)")
    return config


def adopt_network(given: dict, path: str) -> dict:
    """Command-line settings of a 3d run, completed with its 2D source's network settings."""
    config = check_2d_source(path, "--init-from")
    return {**{k: getattr(config, k) for k in ADOPTED}, **given}


def load_2d_networks(path: str, option: str) -> tuple[dict[str, nn.Module], dict]:
    """The 2D networks ({"G": ..., "D": ...}, D where present) and a summary of where they came from."""
    config = check_2d_source(path, option)
    source = Path(path)
    if not source.is_dir():
        model = load_model(source, parts=("G", "D"))
        nets = {"G": model.generator, **({"D": model.discriminator} if model.discriminator is not None else {})}
        return nets, {"from": str(source), "content_hash": model.card.content_hash}
    generator, discriminator = SplitShuffleGenerator(config), SplitShuffleDiscriminator(config)
    payload = newest_checkpoint(source, {"G": generator, "D": discriminator})
    generator.load_state_dict(payload.get("ema", payload["models"]["G"]))
    discriminator.load_state_dict(payload["models"]["D"])
    return {"G": generator, "D": discriminator}, {"from": str(source), "iteration": int(payload["iteration"])}


def check_hagan_source(path: str, resolution: int | None) -> HAGANConfig:
    """The HA-GAN settings of ``path``, or a one-line error saying what it is instead."""
    config = source_config(path, resolution)
    if not isinstance(config, HAGANConfig):
        raise ConfigError(
            f"{path} is a split-shuffle model; HA-GAN --init-from takes an HA-GAN model "
            "(a 2D split-shuffle model is inflated with --init-from-2d)"
        )
    return config


def adopt_hagan_network(given: dict, path: str) -> dict:
    """Command-line settings of a fine-tuning run, completed with its HA-GAN source's network settings."""
    config = check_hagan_source(path, given.get("resolution"))
    fields = ("resolution", "latent_dim", "g_width", "d_width", "e_width", "blocks", "block_groups", "num_class")
    fields += ("upsample",)
    return {**{k: getattr(config, k) for k in fields}, **given}


def check_sources(cfg: TrainConfig) -> None:
    """Refuse an init source that cannot initialise this run, before the run folder is made."""
    if cfg.init_from_2d:
        check_2d_source(cfg.init_from_2d, "--init-from-2d")
    if not cfg.init_from:
        return
    if cfg.family == Family.HA_GAN:
        _check_same(check_hagan_source(cfg.init_from, cfg.resolution), cfg.network(), cfg.init_from, "HA-GAN")
        return
    config = check_2d_source(cfg.init_from, "--init-from")
    _check_same(config, dataclasses.replace(cfg.network(), dims=2), cfg.init_from, "2D")


def _check_same(source, expected, path: str, what: str) -> None:
    for field in dataclasses.fields(expected):
        if field.name == "upsample":  # no weights of its own: a fine-tuning run may switch it
            continue
        ours, theirs = getattr(expected, field.name), getattr(source, field.name)
        if ours != theirs:
            raise ConfigError(
                f"{path}: the {what} model has {field.name} {theirs}, this run {ours}; "
                f"leave the network options out to take the {what} model's"
            )


def trained_iterations(training: dict) -> int:
    """Iterations behind a model: its own run's, plus those of the model it was fine-tuned from
    (which the card records as the source's own total, so chains of fine-tuning add up)."""
    init = training.get("init") or {}
    earlier = int(init.get("iteration", 0)) if init.get("strategy") == "copy" else 0
    return int(training.get("iterations", 0)) + earlier


def copy_hagan_into(cfg: TrainConfig, nets: dict[str, nn.Module], log: RunLog) -> tuple[dict, dict | None]:
    """HA-GAN ``--init-from``: the networks' weights from an HA-GAN of the same architecture.

    Returns the card's init summary and the source's EMA generator state (a run that keeps one),
    or None. Networks the source lacks (D in a model file) keep their fresh initialisation.
    """
    check_sources(cfg)
    source = Path(cfg.init_from)
    ema = None
    if source.is_dir() and (source / "config.json").exists():
        payload = newest_checkpoint(source, nets)
        states, ema = payload["models"], payload.get("ema")
        # the source run's own start counts too (a run fine-tuned from a model file)
        earlier = {"iterations": int(payload["iteration"]), "init": payload.get("init") or {}}
        summary = {"from": str(source), "iteration": trained_iterations(earlier)}
    else:
        model = load_model(source, resolution=cfg.resolution, parts=tuple(nets))
        states = {name: net.state_dict() for name, net in model.networks().items()}
        summary = {"from": str(source), "content_hash": model.card.content_hash}
        if model.card.training.get("iterations"):
            summary["iteration"] = trained_iterations(model.card.training)
    for name, net in nets.items():
        if name in states:
            net.load_state_dict(states[name])
        else:
            log.message(f"{cfg.init_from} has no {name}: {name} starts from a fresh initialisation")
    copied = [name for name in nets if name in states]
    log.message(f"initialised from {cfg.init_from} ({', '.join(copied)} copied)")
    return {**summary, "strategy": "copy", "networks": copied}, ema


def inflate_twin(cfg: TrainConfig, nets: dict[str, nn.Module], log: RunLog) -> dict:
    """``--init-from``: the run's 3D networks from their 2D twins; returns the card's init summary."""
    check_sources(cfg)
    nets_2d, summary = load_2d_networks(cfg.init_from, "--init-from")
    strategy = cfg.inflate or "center"
    for name, net in nets.items():
        if name in nets_2d:
            inflate(nets_2d[name], net, strategy, cfg.fc_init)
        else:
            log.message(f"{cfg.init_from} has no {name}: {name} starts from a fresh initialisation")
    log.message(f"initialised from {cfg.init_from} by {strategy} inflation ({', '.join(n for n in nets_2d)})")
    return {**summary, "strategy": strategy, "fc": cfg.fc_init, "networks": [n for n in nets if n in nets_2d]}


def inflate_2d_into(cfg: TrainConfig, nets: dict[str, nn.Module], log: RunLog) -> dict:
    """``--init-from-2d``: HA-GAN layers from the 2D layers that correspond; returns the card's init summary."""
    nets_2d, summary = load_2d_networks(cfg.init_from_2d, "--init-from-2d")
    strategy = cfg.inflate or "center"
    pairs = inflate_matching(nets_2d, nets, strategy, cfg.fc_init)
    if not pairs:
        raise ConfigError(
            f"{cfg.init_from_2d}: no layer of the 2D model corresponds to this HA-GAN's (channels, block type "
            "and in-plane kernels must be equal; see the README)"
        )
    layers = [f"{target} <- {source}" for target, source in pairs]
    done = "correspond (random: left at their fresh initialisation)" if strategy == "random" else "inflated"
    log.message(f"--init-from-2d ({strategy}): {len(pairs)} layers {done}: {', '.join(layers)}")
    return {**summary, "strategy": strategy, "fc": cfg.fc_init, "layers": layers}
