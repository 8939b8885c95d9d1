"""Command line: ``python -m engine <command>``.

Every command exits non-zero with a one-line cause on bad input (no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import torch
from tqdm import tqdm

from . import __version__
from .checkpoints import convert_official, load_model, read_model_card
from .demo import default_model
from .device import DEVICE_CHOICES, describe_device, resolve_device
from .dicom import save_dicom_series
from .enums import Part, Precision
from .errors import ConfigError, EngineError, clean_text, first_line
from .generate import (
    DEFAULT_BUDGET_MB,
    PARTS,
    FastGenerator,
    GenerationOptions,
    SampleRequest,
    auto_batch_size,
    check_options,
    check_part,
    sample_volumes,
)
from .interpolation import METHODS, check_frames, frame_stem, frames_for_steps, interpolation_requests
from .latent import parse_seeds
from .nifti import is_nifti_path, save_nifti, sidecar_path
from .precision import PRECISION_CHOICES
from .reading import read_volume
from .validation import (
    MAX_FRAMES,
    OneLineParser,
    add_force_option,
    check_output,
    check_spacing,
    is_our_sidecar,
    positive_float_arg,
    seed_arg,
    write_error_line,
)
from .volume import IntensityMapping

DEFAULT_STEPS = 8  # interpolate: frames per segment unless --steps or --frames says otherwise
# commands defined here: their runs need neither training, data nor metrics code (nor scipy)
CORE_COMMANDS = ("sample", "interpolate", "info", "convert")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(all_commands=not (argv and argv[0] in CORE_COMMANDS))
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # e.g. `info | head`: the reader has all it wanted
        _silence_stdout()
        return 0
    except EngineError as error:
        write_error_line(str(error))
    except MemoryError as error:
        write_error_line(f"out of memory ({first_line(error)})")
    except OSError as error:
        write_error_line(f"{type(error).__name__}: {first_line(error)}")
    except KeyboardInterrupt:
        write_error_line("interrupted")
        return 130
    return 2


def _silence_stdout() -> None:
    """Point stdout at the null device, so the interpreter's final flush raises nothing."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def build_parser(all_commands: bool = True) -> argparse.ArgumentParser:
    """Every command; ``all_commands`` False: only CORE_COMMANDS (quicker to import for one of them)."""
    parser = OneLineParser(prog="python -m engine", description="HA-GAN volume generation engine")
    parser.add_argument("--version", action="version", version=f"engine {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sample = commands.add_parser("sample", help="generate volumes from seeds and write NIfTI files")
    _add_model_options(sample)
    seeds = sample.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=seed_arg, default=None, help="one seed (default 0)")
    seeds.add_argument("--seeds", type=parse_seeds_arg, help='a seed list such as "0,3,10-12"')
    sample.add_argument("--part", choices=PARTS, default=Part.FULL, help="which part of the hierarchy (default full)")
    sample.add_argument(
        "--slab-start", type=int, default=0, help="first voxel of the slab for --part slab (multiple of 4)"
    )
    sample.add_argument("--truncation", type=float, default=1.0, help="scale z toward 0, in (0, 1] (default 1: none)")
    sample.add_argument("--class-label", type=int, default=None, help="class for conditional models")
    sample.add_argument(
        "--intensity",
        choices=("physical", "raw"),
        default="physical",
        help="physical: the model's units (HU for CT); raw: the generator's [-1, 1] output",
    )
    _add_generation_options(sample)
    _add_format_option(sample)
    sample.add_argument("--out", required=True, help="a .nii/.nii.gz file (one seed) or a folder")
    add_force_option(sample)
    sample.set_defaults(run=run_sample)

    interpolate = commands.add_parser("interpolate", help="volumes along a latent path through keyframe seeds")
    _add_model_options(interpolate)
    interpolate.add_argument("--seeds", type=parse_seeds_arg, required=True, help='keyframe seeds, e.g. "1,5,9"')
    count = interpolate.add_mutually_exclusive_group()
    count.add_argument(
        "--steps",
        type=int,
        help=f"frames per segment between keyframes: (keyframes - 1) * steps + 1 frames (default {DEFAULT_STEPS})",
    )
    count.add_argument("--frames", type=int, help="frames along the whole path, both ends included (not with --steps)")
    interpolate.add_argument("--method", choices=METHODS, default=METHODS[0])
    interpolate.add_argument("--part", choices=("full", "anchor"), default="full")
    interpolate.add_argument("--truncation", type=float, default=1.0, help="scale z toward 0, in (0, 1]")
    interpolate.add_argument("--class-label", type=int, default=None, help="class for conditional models")
    interpolate.add_argument("--intensity", choices=("physical", "raw"), default="physical")
    _add_generation_options(interpolate)
    _add_format_option(interpolate)
    interpolate.add_argument("--out", required=True, help="a folder for frame0000_<part>.nii.gz, ...")
    add_force_option(interpolate)
    interpolate.set_defaults(run=run_interpolate)

    info = commands.add_parser("info", help="print a model's card and parameter counts, or a volume's header")
    _add_model_options(info)
    info.add_argument(
        "--volume", help="a NIfTI file or DICOM series folder: print its shape, geometry, units, provenance"
    )
    info.add_argument("--series", metavar="UID", help="which series, when the DICOM folder holds several")
    info.add_argument("--json", action="store_true", help="print the model card as JSON")
    info.set_defaults(run=run_info)

    convert = commands.add_parser("convert", help="official HA-GAN .pth files -> one .safetensors model file")
    convert.add_argument("--official", required=True, help="folder with G_iterN.pth (E, Sub_E beside it) or the G file")
    convert.add_argument("--resolution", type=int, required=True, choices=(128, 256))
    convert.add_argument("--out", required=True, help="the .safetensors file to write")
    convert.add_argument("--modality", choices=("ct", "mri"), default="ct")
    convert.add_argument(
        "--window",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="physical values of -1 and +1 (CT default -1024 600 HU)",
    )
    convert.add_argument("--spacing", type=float, nargs=3, metavar=("I", "J", "K"), help="nominal voxel size in mm")
    convert.add_argument("--half", action="store_true", help="store weights in float16 (half the size)")
    add_force_option(convert)
    convert.set_defaults(run=run_convert)

    for register in _command_modules() if all_commands else ():
        register(commands)
    return parser


def _command_modules():
    """Commands that live beside their code (training, data, metrics)."""
    from .data.phantoms import register as phantoms
    from .data.preprocess import register as preprocess
    from .encode import register as encode
    from .explore_cli import register as explore
    from .metrics.evaluate import register as evaluate
    from .training.cli import register as train

    return [train, preprocess, phantoms, evaluate, encode, explore]


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        "--model",
        dest="checkpoint",
        help="our .safetensors model (HA-GAN or split-shuffle), or official HA-GAN files (G_iterN.pth or "
        "their folder); default: the bundled chest CT demo model",
    )
    parser.add_argument(
        "--resolution", type=int, choices=(128, 256), help="resolution of official HA-GAN files (they do not record it)"
    )


def _add_generation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default=Precision.AUTO,
        help="fp32: exact (strict on CUDA); tf32: CUDA's fast float32; bf16: GPUs and CPUs with bf16 "
        "instructions; fp16: GPUs (default auto: tf32 on CUDA, fp32 elsewhere); the sidecar records it",
    )
    parser.add_argument(
        "--memory-budget",
        type=positive_float_arg,
        default=DEFAULT_BUDGET_MB,
        metavar="MB",
        help=f"bound on each convolution's temporaries; sets the chunk thickness (default {DEFAULT_BUDGET_MB})",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="latents per forward pass (default: 1 on CPU, what fits on GPU)"
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        default=None,
        help="the straightforward forward pass, for comparison (default: the faster path on this device)",
    )


def _add_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=("nifti", "dicom"), default="nifti", help="nifti (default), or dicom: a series folder each"
    )


def parse_seeds_arg(text: str) -> list[int]:
    try:
        return parse_seeds(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


# -- commands ---------------------------------------------------------------------------------


def run_sample(args: argparse.Namespace) -> int:
    seeds = args.seeds if args.seeds is not None else [0 if args.seed is None else args.seed]
    if any(s < 0 for s in seeds):
        raise ConfigError("seeds are non-negative integers")
    if args.format == "dicom" and is_nifti_path(args.out):
        raise ConfigError(f"{args.out}: DICOM series are written into a folder; give a folder name")
    targets = _sample_targets(Path(args.out), seeds, args.part)
    _check_targets(targets, args.force, args.format == "dicom")
    model, device = _load_for_generation(args)
    check_part(model, args.part)
    if args.part == Part.SLAB:
        model.generator.check_slab_start(args.slab_start)
    physical = args.intensity == "physical"
    requests = [
        SampleRequest(seed, args.part, args.slab_start, args.truncation, args.class_label, physical) for seed in seeds
    ]
    return _generate_and_write(args, model, device, requests, targets)


def run_interpolate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if is_nifti_path(out) or (out.exists() and not out.is_dir()):
        raise ConfigError(f"{out}: an interpolation writes many frames; give a folder")
    if str(out) in ("-", ""):
        raise ConfigError(f"--out {str(out)!r}: give a folder for the frames")
    frames = _interpolation_frames(args)
    frame_files = [out / f"{frame_stem(i, frames, args.part)}.nii.gz" for i in range(frames)]
    _check_targets(frame_files, args.force, args.format == "dicom")
    model, device = _load_for_generation(args)
    check_part(model, args.part)
    requests = interpolation_requests(
        args.seeds,
        model.config.latent_dim,
        frames=frames,
        method=args.method,
        part=args.part,
        truncation=args.truncation,
        label=args.class_label,
        physical=args.intensity == "physical",
    )
    out.mkdir(parents=True, exist_ok=True)
    return _generate_and_write(args, model, device, requests, frame_files)


def _interpolation_frames(args: argparse.Namespace) -> int:
    """The frame count: --frames, or --steps per segment (the shorthand for (keyframes - 1) * steps + 1)."""
    keyframes, frames = len(args.seeds), args.frames
    if frames is None:
        steps = DEFAULT_STEPS if args.steps is None else args.steps
        frames = frames_for_steps(keyframes, steps)
        if keyframes > 1 and frames > MAX_FRAMES:
            raise ConfigError(f"--steps {steps} with {keyframes} keyframes make {frames} frames; at most {MAX_FRAMES}")
    check_frames(keyframes, frames)
    return frames


def _load_for_generation(args: argparse.Namespace):
    device = resolve_device(args.device)
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {args.batch_size}")
    checkpoint = args.checkpoint or default_model()
    model = load_model(checkpoint, args.resolution, device, parts=("G",))  # encoders are not needed here
    if model.hierarchical:
        FastGenerator(model.generator, args.memory_budget, args.precision)  # refuse bad settings before any work
    else:
        check_options(args.memory_budget, args.precision, device)
    return model, device


def _generate_and_write(args, model, device, requests: list[SampleRequest], targets: list[Path]) -> int:
    options = GenerationOptions(args.reference, args.memory_budget, args.precision, args.batch_size or 1)
    if args.batch_size is None:
        options = replace(options, batch_size=auto_batch_size(model, requests[0].part, len(requests), options))
    started = time.perf_counter()
    name = model.card.name or "HA-GAN"
    with tqdm(
        total=len(requests),
        desc=f"generating ({describe_device(device)})",
        unit="vol",
        file=sys.stderr,
        disable=len(requests) == 1,
    ) as progress:  # closed before an error is printed
        for request, target, volume in zip(requests, targets, sample_volumes(model, requests, options)):
            what = f"seed {request.seed}" if request.latent is None else request.origin
            if args.format == "dicom":
                target = save_dicom_series(volume, dicom_folder(target), model.card.modality)
            else:
                save_nifti(volume, target, f"SYNTHETIC {name} {request.part} {what}")
            tqdm.write(f"wrote {target}", file=sys.stderr)
            progress.update()
    print(f"{len(requests)} volume(s) in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def _check_targets(targets: list[Path], force: bool, dicom: bool = False) -> None:
    """Named outputs are replaced only with --force; a .json beside them only when it is our sidecar.
    DICOM outputs are a series folder per volume (the target's name without .nii.gz)."""
    for target in targets:
        if dicom:
            folder = dicom_folder(target)
            if folder.exists() and not force:
                raise ConfigError(f"{folder}: already exists; give --force to replace it")
            continue
        check_output(target, force, folder_made=True)
        sidecar = sidecar_path(target)
        if sidecar.exists() and not is_our_sidecar(sidecar):
            raise ConfigError(f"{sidecar}: exists and is not a sidecar written by this engine; not replacing it")
        if sidecar.exists() and not force:
            raise ConfigError(f"{sidecar}: already exists (the sidecar of {target.name}); give --force to replace it")


def dicom_folder(target: Path) -> Path:
    """The series folder that stands for a volume file name: ``seed0003_full.nii.gz`` -> ``seed0003_full``."""
    return target.with_name(target.name.removesuffix(".nii.gz").removesuffix(".nii"))


def _sample_targets(out: Path, seeds: list[int], part: str) -> list[Path]:
    if str(out) in ("-", ""):
        raise ConfigError(f"--out {str(out)!r}: give a .nii/.nii.gz file or a folder")
    if is_nifti_path(out):
        if len(seeds) > 1:
            raise ConfigError(f"{out}: several seeds need an output folder, not one file name")
        if not out.parent.exists():
            raise ConfigError(f"{out}: folder {out.parent} does not exist")
        return [out]
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder (a single file must end in .nii or .nii.gz)")
    out.mkdir(parents=True, exist_ok=True)
    return [out / f"seed{seed:04d}_{part}.nii.gz" for seed in seeds]


def run_info(args: argparse.Namespace) -> int:
    if args.checkpoint is not None and args.volume is not None:
        raise ConfigError("info takes --checkpoint or --volume, not both")
    if args.volume:
        return _volume_info(args.volume, args.series)
    path = Path(args.checkpoint) if args.checkpoint else default_model()
    if path.suffix == ".safetensors" and args.json:
        print(read_model_card(path).to_json())
        return 0
    model = load_model(path, args.resolution, "cpu", parts=("G", "E", "Sub_E", "D"))
    card = model.card
    if args.json:
        print(card.to_json())
        return 0
    rows = [
        ("name", card.name or "-"),
        ("family", card.family),
        *_network_rows(model),
        ("modality", card.modality),
        ("intensity", f"[-1, 1] -> [{card.intensity.low:g}, {card.intensity.high:g}] {card.intensity.unit}".rstrip()),
        ("spacing", " x ".join(f"{s:g}" for s in card.spacing_mm) + f" mm ({card.orientation})"),
        ("networks", ", ".join(model.networks())),
        ("source", card.source or "-"),
        ("content hash", card.content_hash or "-"),
    ]
    rows += [(f"training.{k}", json.dumps(v) if not isinstance(v, str) else v) for k, v in card.training.items()]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{clean_text(key):<{width}}  {clean_text(value)}")
    print("\nparameters")
    for name, count in model.parameter_counts().items():
        print(f"  {clean_text(name):<24} {count:>12,}")
    return 0


def _network_rows(model) -> list[tuple[str, str]]:
    """Resolution, latent, blocks and widths, as the model's family describes them."""
    c = model.config
    blocks = c.blocks + (f" ({c.block_groups} groups)" if c.blocks == "grouped" else "")
    latent = ("latent", f"{c.latent_dim}" + (f" + {c.num_class} classes" if c.num_class else ""))
    if not model.hierarchical:
        kind = "2D slice model" if c.dims == 2 else "whole volume; no anchor or slabs"
        widths = f"g {c.g_width}, d {c.d_width}, at most {c.max_width}"
        return [("resolution", f"{c.resolution}^{c.dims} ({kind})"), latent, ("blocks", blocks), ("widths", widths)]
    return [
        ("resolution", f"{c.resolution}^3 (anchor {c.feature_size}^3, slab {c.slab_thickness} slices)"),
        latent,
        *([("blocks", blocks)] if c.blocks != "dense" else []),
        *([("upsampling", c.upsample)] if c.upsample != "nearest" else []),
        ("widths", f"g {c.g_width}, d {c.d_width}, e {c.e_width}"),
    ]


def _volume_info(path: str, series: str | None = None) -> int:
    volume = read_volume(path, series)
    a, unit = volume.array, volume.intensity.unit
    axes = "".join(nib.orientations.aff2axcodes(volume.affine))
    print(f"shape         {a.shape[0]} x {a.shape[1]} x {a.shape[2]} voxels")
    print(f"spacing       {' x '.join(f'{s:.4g}' for s in volume.spacing)} mm, orientation {axes}")
    print(f"values        {a.min():.6g} .. {a.max():.6g} {unit}  (mean {a.mean():.6g})".rstrip())
    synthetic = volume.provenance.get("synthetic")
    print(f"synthetic     {'yes' if synthetic else 'not marked'}")
    for key in ("model", "model_hash", "seed", "latent_origin", "operation", "truncation"):
        if volume.provenance.get(key) is not None:
            print(f"{key:<13} {clean_text(volume.provenance[key], 300)}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    out = check_output(args.out, args.force, "model file")
    if args.spacing:
        check_spacing(args.spacing, "--spacing")
    intensity = (
        IntensityMapping(args.window[0], args.window[1], "HU" if args.modality == "ct" else "") if args.window else None
    )
    out = convert_official(
        args.official,
        args.resolution,
        out,
        args.modality,
        intensity,
        tuple(args.spacing) if args.spacing else None,
        torch.float16 if args.half else torch.float32,
    )
    card = read_model_card(out)
    print(f"wrote {out} ({', '.join(card.parts)}; {card.content_hash[:19]}...)", file=sys.stderr)
    return 0
