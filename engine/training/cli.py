"""`python -m engine train`: start, resume or extend an HA-GAN or Split&Shuffle-GAN run (one process or torchrun)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import torch

from ..device import DEVICE_CHOICES
from ..enums import Family, PhantomKind
from ..errors import ConfigError, TrainingError
from ..validation import add_force_option, check_output
from .config import PRESETS, SPLIT_SHUFFLE_PRESETS, TRAIN_PRECISIONS, TrainConfig
from .distributed import Distributed, setup, teardown
from .hagan_trainer import HAGANTrainer
from .init_source import adopt_hagan_network, adopt_network, check_sources
from .run_checkpoint import list_checkpoints
from .run_guard import RunLock, load_run_config, remove_stale_temp_files, resumed_config
from .split_shuffle_trainer import SplitShuffleTrainer
from .trainer import Trainer

TRAINERS = {Family.HA_GAN: HAGANTrainer, Family.SPLIT_SHUFFLE: SplitShuffleTrainer}

# option -> (type, help); defaults come from TrainConfig (the reference's values)
_OPTIONS = {
    "resolution": (int, "volume size S (32, 64, 128, 256)"),
    "iterations": (int, "total iterations (default 80000)"),
    "batch_size": (int, "global batch size across all processes (default 4)"),
    "latent_dim": (int, "latent size (default: from the preset)"),
    "g_width": (int, "generator width g (G^H channels; default: from the preset)"),
    "d_width": (int, "discriminator width (default: from the preset)"),
    "e_width": (int, "sub-encoder width (default: from the preset)"),
    "num_class": (int, "classes for a conditional model (labels.csv next to the data)"),
    "lr_g": (float, "generator learning rate (default 1e-4)"),
    "lr_d": (float, "discriminator learning rate (default 4e-4)"),
    "lr_e": (float, "encoder learning rates (default 1e-4)"),
    "beta1": (float, "Adam beta1 (default 0)"),
    "beta2": (float, "Adam beta2 (default 0.999)"),
    "g_iter": (int, "generator updates per iteration (default 1)"),
    "lambda_class": (float, "weight of the class loss for G (default 0.1)"),
    "mode_seeking": (
        float,
        "HA-GAN: weight of a mode-seeking term for G (MSGAN, Mao et al. 2019), which rewards different "
        "volumes for different latents up to the training data's own spread; try 0.02-0.1 when the seeds "
        "of a model look alike (default 0: off, as the reference)",
    ),
    "diffaugment": (
        str,
        "HA-GAN: differentiable augmentation of both discriminators' real and generated inputs (DiffAugment, "
        "3D): a comma list of translation, cutout, color (default: off)",
    ),
    "ada_target": (
        float,
        "HA-GAN: adaptive augmentation (ADA): the --diffaugment transforms are applied with a probability "
        "steered so that the mean sign of D on real inputs stays near this, e.g. 0.6 (default 0: always applied)",
    ),
    "r1": (float, "HA-GAN: weight gamma of an R1 gradient penalty on D's real inputs, e.g. 1 (default 0: off)"),
    "r1_every": (int, "lazy R1: apply the penalty every K iterations, scaled by K (default 16)"),
    "mode_seeking_ramp": (
        int,
        "HA-GAN: raise the mode-seeking weight linearly from 0 over this many iterations of the run, so a "
        "fine-tuned G is not shaken at the start (default 0: the full weight at once)",
    ),
    "ema": (float, "decay of an EMA copy of G used for export, e.g. 0.999 (default 0: off)"),
    "seed": (int, "seed of every random number generator (default 0)"),
    "checkpoint_every": (int, "iterations between run checkpoints (default 500)"),
    "keep": (int, "run checkpoints kept (default 3)"),
    "log_every": (int, "iterations between logged losses (default 20)"),
    "preview_every": (int, "iterations between TensorBoard preview slices (default 200)"),
    "workers": (int, "data loading processes; phantoms are then all made at the start (default 0)"),
    "phantom_count": (int, "distinct phantoms with --phantoms, made once and kept in memory (default 2000)"),
    "phantom_cache": (
        str,
        "with --phantoms: keep them in this folder (float16, memory-mapped, about 4 MB each at 128^3), made once "
        "and shared by later runs, resumes and evaluations (default: off, made in memory per run)",
    ),
    "name": (str, "model name in the exported model card"),
    # model family, blocks and inflation (checked by TrainConfig: one-line errors)
    "family": (str, "ha-gan (default) or split-shuffle"),
    "blocks": (str, "convolution blocks: dense (HA-GAN default), mixed (split-shuffle default), planes, grouped"),
    "upsample": (
        str,
        "HA-GAN: G's upsampling: nearest (official; can leave 2-voxel bands), trilinear or blur (smoother); "
        "no weights change, so --init-from may switch it",
    ),
    "block_groups": (int, "groups of 'grouped' blocks (default 4)"),
    "max_width": (int, "split-shuffle: widest layer (default: from the preset)"),
    "stage": (str, "split-shuffle: 2d (a slice model, trained on slices) or 3d (volumes; default)"),
    "slice_axis": (str, "split-shuffle 2d: axial (default), coronal or sagittal slices"),
    "slices_per_volume": (int, "split-shuffle 2d: slices drawn from each volume of a batch (default 4)"),
    "init_from": (
        str,
        "split-shuffle 3d: a 2D model file or run folder to inflate; HA-GAN: an HA-GAN model file, official "
        "checkpoint or run folder of the same architecture to fine-tune (G, encoders, D where present)",
    ),
    "init_from_2d": (str, "HA-GAN: a 2D split-shuffle model file or run folder, inflated where layers correspond"),
    "inflate": (str, "inflation strategy: center (default), average, repeat or random (no copy: the baseline)"),
    "fc_init": (str, "the FC layer under inflation: tile (default) or random"),
}


def register(commands) -> None:
    train = commands.add_parser(
        "train",
        help="train HA-GAN or Split&Shuffle-GAN on a data folder or built-in phantoms",
        description="Train HA-GAN (default) or Split&Shuffle-GAN (--family split-shuffle --stage 2d, then "
        "--stage 3d --init-from RUN_2D --inflate center). Multi-GPU / multi-machine: "
        "torchrun --nproc_per_node N -m engine train ...",
    )
    source = train.add_mutually_exclusive_group()
    source.add_argument("--data", help="a preprocessed folder (python -m engine preprocess) or a NIfTI folder")
    source.add_argument(
        "--phantoms", choices=tuple(kind.value for kind in PhantomKind), help="train on built-in phantoms"
    )
    train.add_argument("--out", help="the run folder (checkpoints, TensorBoard logs, model.safetensors)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its newest complete checkpoint")
    train.add_argument(
        "--preset",
        choices=tuple(dict.fromkeys([*PRESETS, *SPLIT_SHUFFLE_PRESETS])),
        help="network widths: HA-GAN official (default), small, demo, tiny; split-shuffle default, small, tiny",
    )
    for name, (kind, text) in _OPTIONS.items():
        train.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=text)
    train.add_argument("--modality", choices=("ct", "mri"), help="for NIfTI folders read directly")
    train.add_argument("--window", type=float, nargs=2, metavar=("LOW", "HIGH"), help="CT window in HU")
    train.add_argument("--augment", action="store_true", default=None, help="random flips and intensity changes")
    train.add_argument("--grad-checkpoint", action="store_true", default=None, help="recompute G^A in backward")
    train.add_argument(
        "--precision",
        choices=tuple(precision.value for precision in TRAIN_PRECISIONS),  # plain strings: argparse shows their repr
        default=None,
        help="mixed precision: bf16 on CUDA or a CPU with bf16 instructions, fp16 on CUDA",
    )
    train.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    train.add_argument("--progress-json", metavar="FILE", help="append JSON progress lines to FILE ('-': stdout)")
    train.add_argument("--export-half", action="store_true", help="write the final model in float16")
    train.set_defaults(run=run_train)

    export = commands.add_parser(
        "export", help="a run's newest (or a chosen) checkpoint -> a model file (also while the run goes on)"
    )
    export.add_argument("--run", dest="run_dir", required=True, metavar="RUN_DIR", help="a training run folder")
    export.add_argument("--out", required=True, help="the .safetensors model file to write")
    export.add_argument("--half", action="store_true", help="store weights in float16")
    export.add_argument(
        "--iteration", type=int, help="export the kept checkpoint of this iteration instead of the newest"
    )
    export.add_argument(
        "--average",
        type=int,
        default=1,
        metavar="K",
        help="G averaged over the newest K kept checkpoints up to that one (steadier than any one; default 1)",
    )
    add_force_option(export)
    export.set_defaults(run=run_export)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    given = {name: getattr(args, name) for name in (*_OPTIONS, "preset", "augment", "grad_checkpoint", "precision")}
    given = {k: v for k, v in given.items() if v is not None}
    if args.window is not None:
        given["window"] = tuple(args.window)
    if args.modality:
        given["modality"] = args.modality
    _check_progress_json(args.progress_json)
    if args.resume:
        if args.data or args.phantoms or args.out:
            raise ConfigError("--resume continues a run with its own data and folder; leave out --data/--out")
        run_dir = Path(args.resume)
        if not run_dir.is_dir():
            raise ConfigError(f"{run_dir}: no such run folder")
        cfg, notes = resumed_config(run_dir, given)
        if os.environ.get("RANK", "0") == "0":
            for note in notes:
                print(note, file=sys.stderr)
        return cfg
    if not (args.data or args.phantoms) or not args.out:
        raise ConfigError("train needs --data DIR (or --phantoms KIND) and --out RUN_DIR, or --resume RUN_DIR")
    data = f"phantoms:{args.phantoms}" if args.phantoms else args.data
    if args.data and not Path(args.data).is_dir():
        raise ConfigError(f"{args.data}: no such data folder")
    out = Path(args.out)
    if str(out) in ("-", ""):
        raise ConfigError(f"--out {args.out!r}: give a folder name for the run")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    if (out / "config.json").exists():
        raise ConfigError(f"{out} already holds a run; continue it with --resume {out} or choose another folder")
    family = given.get("family", Family.HA_GAN)
    if given.get("init_from") and family == Family.SPLIT_SHUFFLE and given.get("stage", "3d") == "3d":
        given = adopt_network(given, given["init_from"])  # the 2D model's widths unless given
    elif given.get("init_from") and family == Family.HA_GAN and not given.get("init_from_2d"):
        given = adopt_hagan_network(given, given["init_from"])  # the source's widths unless given
    cfg = TrainConfig(data=data, out=str(out), **given)
    check_sources(cfg)  # before the run folder is made
    return cfg


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (None when ``path`` exists)."""
    path = path.absolute()
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def _check_progress_json(path: str | None) -> None:
    if path and path != "-":
        target = Path(path)
        if target.is_dir() or not target.parent.is_dir():
            raise ConfigError(f"--progress-json {path}: needs a file in an existing folder")


def make_trainer(cfg: TrainConfig, env: Distributed, progress_json: str | None = None, quiet: bool = False) -> Trainer:
    """The trainer of the run's model family."""
    return TRAINERS[cfg.family](cfg, env, progress_json, quiet)


def run_export(args: argparse.Namespace) -> int:
    """Rebuild the run on the CPU from its settings and newest checkpoint, without writing to it."""
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder")
    if args.average < 1:
        raise ConfigError(f"--average {args.average}: needs at least 1 checkpoint")
    out = check_output(args.out, args.force, "model file")
    if out.suffix != ".safetensors":
        raise ConfigError(f"{out}: model files end in .safetensors")
    cfg, note = load_run_config(run_dir)
    if note:
        print(note, file=sys.stderr)
    trainer = make_trainer(cfg, Distributed(device=torch.device("cpu")), quiet=True)
    resumed = trainer.resume(args.iteration)
    for problem in trainer.skipped_checkpoints:
        print(f"skipped checkpoint {problem}", file=sys.stderr)
    if not resumed:
        raise ConfigError(f"{run_dir}: the run has no checkpoint yet")
    if args.average != 1:
        trainer.average_generator(args.average)
    path = trainer.export(out, torch.float16 if args.half else torch.float32)
    averaged = f", G averaged over {', '.join(map(str, trainer.averaged))}" if trainer.averaged else ""
    print(f"wrote {path} (iteration {trainer.iteration}{averaged})")
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Validate everything, lock the run folder, build, resume or initialise, then save the settings and train.

    config.json is written only once the start has succeeded, so a failed start leaves no
    half-made run (a folder this start made is removed again).
    """
    cfg = config_from_args(args)
    run_dir = Path(cfg.out)
    created = _first_missing(run_dir)  # what a failed start removes again: only folders it made
    env = setup(args.device)
    lock = RunLock(run_dir)
    started = False
    try:
        if env.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            lock.acquire()
            if lock.took_over:
                print(f"{run_dir}: took over the lock of {lock.took_over}, which is no longer running", file=sys.stderr)
            for path in remove_stale_temp_files(run_dir):
                print(f"removed {path.name}, left by an interrupted write", file=sys.stderr)
        env.barrier()
        trainer = make_trainer(cfg, env, args.progress_json)
        if not (args.resume and trainer.resume()):
            if args.resume:
                trainer.log.message("no checkpoint yet: starting from iteration 0")
            trainer.initialise()  # --init-from / --init-from-2d, before the first iteration only
        if env.is_main:
            cfg.save(run_dir / "config.json")
        started = True
        env.barrier()
        try:
            model = trainer.fit()
        except FloatingPointError as error:
            kept = list_checkpoints(run_dir / "checkpoints")
            last = f"{kept[-1].name} is kept" if kept else "no checkpoint was written"
            raise TrainingError(f"{error}; stopped, {last} (resume with lower learning rates)") from None
        if model is not None and args.export_half and env.is_main:
            trainer.export(model, torch.float16)
        if model is not None and env.is_main:
            print(f"model written to {model}")
        return 0
    finally:
        lock.release()
        if created and not started and env.is_main and created.is_dir():
            shutil.rmtree(created, ignore_errors=True)  # made by this failed start: nothing of a run in it
        teardown(env)
