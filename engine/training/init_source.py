"""Where a run's first weights come from: a 2D Split&Shuffle model (file or run folder), inflated.

``--init-from`` (split-shuffle, stage 3d) inflates the 2D twin of the run's networks one to one;
``--init-from-2d`` (HA-GAN) inflates the 2D layers that correspond to HA-GAN layers
(``engine.models.inflate.inflate_matching``). A run folder gives its newest checkpoint (the EMA
generator where the run keeps one), a model file its networks (2D stage files hold G and D).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from ..checkpoints import load_model, read_model_card
from ..errors import ConfigError
from ..models.hagan import HAGANConfig
from ..models.inflate import inflate, inflate_matching
from ..models.split_shuffle import SplitShuffleConfig, SplitShuffleDiscriminator, SplitShuffleGenerator
from .config import TrainConfig
from .run_checkpoint import load_latest
from .run_log import RunLog

# network settings a 3d run takes over from its 2D source when they are not given
ADOPTED = ("resolution", "latent_dim", "g_width", "d_width", "max_width", "blocks", "block_groups")


def source_config(path: str) -> HAGANConfig | SplitShuffleConfig:
    """The network settings of a model file or run folder, without loading weights."""
    source = Path(path)
    if not source.exists():
        raise ConfigError(f"{source}: no such model file or run folder")
    if source.is_dir():
        if not (source / "config.json").exists():
            raise ConfigError(f"{source}: not a training run (no config.json) and not a model file")
        return TrainConfig.load(source / "config.json").network()
    return read_model_card(source).config


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
    payload = load_latest(source / "checkpoints")
    if payload is None:
        raise ConfigError(f"{source}: the run has no checkpoint yet")
    generator, discriminator = SplitShuffleGenerator(config), SplitShuffleDiscriminator(config)
    generator.load_state_dict(payload.get("ema", payload["models"]["G"]))
    discriminator.load_state_dict(payload["models"]["D"])
    return {"G": generator, "D": discriminator}, {"from": str(source), "iteration": int(payload["iteration"])}


def check_sources(cfg: TrainConfig) -> None:
    """Refuse an init source that cannot initialise this run, before the run folder is made."""
    if cfg.init_from_2d:
        check_2d_source(cfg.init_from_2d, "--init-from-2d")
    if not cfg.init_from:
        return
    config = check_2d_source(cfg.init_from, "--init-from")
    expected = dataclasses.replace(cfg.network(), dims=2)
    for field in dataclasses.fields(expected):
        ours, theirs = getattr(expected, field.name), getattr(config, field.name)
        if ours != theirs:
            raise ConfigError(
                f"{cfg.init_from}: the 2D model has {field.name} {theirs}, this run {ours}; "
                "leave the network options out to take the 2D model's"
            )


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
