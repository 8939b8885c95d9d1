"""The ``engine phantoms`` command: write phantoms as NIfTI files, or make them into a phantom cache."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...errors import ConfigError
from .dataset import PHANTOM_KINDS, check_count, check_out, write_phantoms


def register(commands) -> None:
    """Add the ``phantoms`` command to an argparse subparsers object."""
    parser = commands.add_parser(
        "phantoms",
        help="write synthetic training volumes (procedural chest CT or MNI152-based brain T1)",
        description="Write built-in phantoms as NIfTI files (RAS, physical units) with JSON sidecars.",
    )
    parser.add_argument("--kind", choices=PHANTOM_KINDS, required=True, help="which phantom")
    parser.add_argument("--count", type=int, default=8, help="how many volumes (default 8)")
    parser.add_argument("--size", type=int, default=128, help="edge length in voxels, a power of two 32..256")
    parser.add_argument("--out", help="output folder (created if missing); with --cache: links to the cached arrays")
    parser.add_argument("--seed", type=int, default=0, help="first seed; volume n uses seed + n (default 0)")
    parser.add_argument(
        "--cache", metavar="DIR", help="make them into a phantom cache (as train --phantom-cache DIR) instead"
    )
    parser.add_argument("--workers", type=int, default=1, help="with --cache: processes making phantoms (default 1)")
    parser.set_defaults(run=run_phantoms)


def run_phantoms(args: argparse.Namespace) -> int:
    """The ``phantoms`` command."""
    if args.cache:
        from ..phantom_cache import PhantomCache

        cache, seeds = (
            PhantomCache(args.cache, args.kind, args.size),
            range(args.seed, args.seed + check_count(args.count)),
        )
        made = cache.fill(seeds, max(1, args.workers))
        print(f"phantom cache {cache.folder}: {made} made, {len(seeds) - made} already there")
        if args.out:
            print(f"linked into {cache.link(seeds, check_out(args.out))} (a real set for engine evaluate)")
        return 0
    if not args.out:
        raise ConfigError("phantoms needs --out FOLDER (NIfTI files) or --cache DIR")
    paths = write_phantoms(args.kind, args.count, args.size, args.out, seed=args.seed)
    print(f"wrote {len(paths)} {args.kind} phantoms ({args.size}^3) to {Path(args.out)}")
    return 0
