"""Parameter counts: dense versus Split&Shuffle blocks, for the split-shuffle family and for HA-GAN.

Counted: trainable parameters (convolution and FC weights and biases, GroupNorm scales and
shifts); spectral-norm buffers are not parameters. G includes its FC layer unless a column says
"without FC". HA-GAN's G is G^A + G^L + G^H and D is D^H + D^L (encoders are not counted).
"Replaced convs" is the parameters of the convolutions the blocks replace, relative to the same
convolutions dense (D's first and G's last convolutions stay dense in every variant).

    python benchmarks/params.py [--sizes 64 128] [--latent-dim 128 --g-width 32 --d-width 32 --max-width 256]

Networks are built on the meta device (no memory, no initialisation): the table takes seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.models.hagan import Discriminator, Generator, HAGANConfig  # noqa: E402
from engine.models.split_shuffle import (  # noqa: E402
    BLOCK_TYPES,
    SplitShuffleConfig,
    SplitShuffleDiscriminator,
    SplitShuffleGenerator,
    count_parameters,
    replaced_parameters,
)

ORDER = ("dense", *[b for b in BLOCK_TYPES if b != "dense"])


def networks(family: str, resolution: int, block: str, args) -> tuple[torch.nn.Module, torch.nn.Module, int]:
    """G, D and the number of FC parameters of G."""
    with torch.device("meta"):
        if family == "split-shuffle":
            widths = dict(latent_dim=args.latent_dim, g_width=args.g_width, d_width=args.d_width)
            config = SplitShuffleConfig(resolution=resolution, max_width=args.max_width, blocks=block, **widths)
            g, d = SplitShuffleGenerator(config), SplitShuffleDiscriminator(config)
            return g, d, count_parameters(g.fc)
        config = HAGANConfig(resolution=resolution, blocks=block)  # official widths (latent 1024, g 32, d 16)
        g, d = Generator(config), Discriminator(config)
        return g, d, count_parameters(g.fc1)


def rows(family: str, resolution: int, args) -> list[list[str]]:
    dense_g, dense_d, _ = networks(family, resolution, "dense", args)
    base = count_parameters(dense_g) + count_parameters(dense_d)
    table = []
    for block in ORDER:
        g, d, fc = networks(family, resolution, block, args)
        total = count_parameters(g) + count_parameters(d)
        before_g, after_g = replaced_parameters(dense_g, g)
        before_d, after_d = replaced_parameters(dense_d, d)
        replaced = (after_g + after_d) / (before_g + before_d) if before_g + before_d else 1.0
        table.append(
            [
                family,
                f"{resolution}³",
                block,
                millions(count_parameters(g)),
                millions(count_parameters(g) - fc),
                millions(count_parameters(d)),
                millions(total),
                millions(total - fc),
                f"{total / base:.1%}",
                f"{(total - fc) / (base - fc):.1%}",
                f"{replaced:.3f}" + (f" (G {after_g / before_g:.3f}, D {after_d / before_d:.3f})" if before_g else ""),
            ]
        )
    return table


def millions(count: int) -> str:
    return f"{count / 1e6:.2f} M"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    defaults = SplitShuffleConfig()
    for name in ("latent_dim", "g_width", "d_width", "max_width"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    args = parser.parse_args()
    head = ["family", "size", "blocks", "G", "G without FC", "D", "G+D", "G+D without FC", "G+D / dense"]
    head += ["without FC / dense", "replaced convs / dense"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for family in ("split-shuffle", "ha-gan"):
        for size in args.sizes:
            for row in rows(family, size, args):
                print("| " + " | ".join(row) + " |")
    print(
        f"\nsplit-shuffle widths: latent {args.latent_dim}, g {args.g_width}, d {args.d_width}, at most "
        f"{args.max_width}; HA-GAN: official widths (latent 1024, g 32, d 16), D^H + D^L, no encoders."
    )


if __name__ == "__main__":
    main()
