"""The ``gallery`` and ``directions`` commands: a contact sheet of many seeds; SeFa directions as JSON."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .checkpoints import load_model
from .demo import default_model
from .device import DEVICE_CHOICES, resolve_device
from .directions import save_directions, sefa
from .enums import Part
from .errors import ConfigError
from .gallery import (
    LEVELS,
    PLANES,
    ThumbnailCache,
    ThumbnailMaker,
    ThumbnailSpec,
    check_sheet_path,
    contact_sheet,
    percentile_window,
    save_contact_sheet,
)
from .latent import parse_seeds
from .precision import EXACT, PRECISION_CHOICES


def register(commands) -> None:
    """Add ``gallery`` and ``directions`` to an argparse subparsers object."""
    gallery = commands.add_parser("gallery", help="a contact-sheet PNG: one slice of each of many seeds")
    _model_options(gallery)
    gallery.add_argument("--seeds", type=_seeds, default=list(range(16)), help='e.g. "0-63" or "1,5,9" (default 0-15)')
    gallery.add_argument("--plane", choices=tuple(PLANES), default="axial")
    gallery.add_argument("--slice", type=float, default=0.5, help="relative position along the plane's normal, 0..1")
    gallery.add_argument("--window", type=_window, help="W,L in the model's units (default: 1st-99th percentile)")
    gallery.add_argument("--level", choices=LEVELS, default=Part.FULL, help="anchor (fast, S/4) or full (default)")
    gallery.add_argument("--columns", type=int, help="thumbnails per row (default: a square grid)")
    gallery.add_argument("--cell", type=int, default=192, help="pixels per thumbnail (default 192)")
    gallery.add_argument("--truncation", type=float, default=1.0, help="scale z toward 0, in (0, 1]")
    gallery.add_argument("--class-label", type=int, default=None, help="class for conditional models")
    gallery.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="auto",
        help="arithmetic: auto (exact fp32; tf32 on CUDA) or bf16 where the processor has it (faster, inexact)",
    )
    gallery.add_argument("--cache", help="a folder that keeps thumbnails for the next run (default: none)")
    gallery.add_argument("--out", required=True, help="the .png file to write")
    gallery.set_defaults(run=run_gallery)

    directions = commands.add_parser("directions", help="latent directions of a model (SeFa) as JSON")
    _model_options(directions)
    directions.add_argument("--count", type=int, default=10, help="how many directions, strongest first (default 10)")
    directions.add_argument("--out", required=True, help="the .json file to write")
    directions.set_defaults(run=run_directions)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        "--model",
        dest="checkpoint",
        help="our .safetensors model or official HA-GAN files; default: the bundled chest CT demo model",
    )
    parser.add_argument("--resolution", type=int, choices=(128, 256), help="resolution of official HA-GAN files")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")


def _seeds(text: str) -> list[int]:
    try:
        return parse_seeds(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _window(text: str) -> tuple[float, float]:
    try:
        width, level = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not W,L (two numbers, e.g. 1500,-600)") from None
    if width <= 0:
        raise argparse.ArgumentTypeError(f"window width must be positive, got {width:g}")
    return width, level


def _load(args: argparse.Namespace):
    return load_model(args.checkpoint or default_model(), args.resolution, resolve_device(args.device), parts=("G",))


def run_gallery(args: argparse.Namespace) -> int:
    spec = ThumbnailSpec(args.plane, args.slice, args.level, args.truncation, args.class_label, args.precision)
    spec.check()
    if args.columns is not None and args.columns < 1:
        raise ConfigError(f"columns must be at least 1, got {args.columns}")
    if args.cell < 16:
        raise ConfigError(f"a cell needs at least 16 pixels, got {args.cell}")
    out = check_sheet_path(args.out)
    started = time.perf_counter()
    model = _load(args)
    maker = ThumbnailMaker(model, ThumbnailCache(args.cache) if args.cache else None)
    thumbnails = list(maker.make(args.seeds, spec))
    window = args.window or percentile_window([t.image for t in thumbnails])
    name = model.card.name or "HA-GAN"
    precision = maker.precision(spec)
    shown = "" if precision == EXACT else f" · {precision}"
    title = f"{name} · {args.plane} {args.slice:g} · {thumbnails[0].level}{shown} · W{window[0]:g} L{window[1]:g}"
    sheet = contact_sheet(thumbnails, window, args.columns, args.cell, title)
    save_contact_sheet(sheet, out)
    seconds = time.perf_counter() - started
    print(f"wrote {out} ({len(thumbnails)} seeds, {sheet.width}x{sheet.height} px) in {seconds:.1f} s", file=sys.stderr)
    return 0


def run_directions(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() != ".json":
        raise ConfigError(f"{out.name}: directions are written as a .json file")
    if not out.parent.is_dir():
        raise ConfigError(f"{out}: folder {out.parent} does not exist")
    model = _load(args)
    directions = sefa(model, args.count)
    save_directions(directions, out)
    shares = ", ".join(f"{100 * s:.1f}%" for s in directions.shares[:5])
    print(f"wrote {out}: {len(directions)} SeFa directions of {directions.layer}; top shares {shares}", file=sys.stderr)
    return 0
