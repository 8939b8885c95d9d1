"""Encoding real scans: preprocess a NIfTI or DICOM series the way the model was trained, encode it to z, rebuild it.

HA-GAN's encoders (E^H on slabs, E^G on their joined features) map a real volume in [-1, 1] to a
latent z; generating the full volume from z shows how well the model can represent the scan.
``python -m engine encode`` writes z (``.npy``, shape (1, latent_dim)) and optionally the
reconstruction as NIfTI, and prints PSNR / SSIM / NMSE of the round trip over the volume and
inside the foreground, each next to the scores of two constant volumes: "blank" (the background,
what a reconstruction that lost the scan gives; on a mostly blank scan it scores a high
whole-volume PSNR) and "mean" (the original's mean over the region, the best constant guess).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write
from .card import ModelCard
from .checkpoints import load_model
from .data.preprocess import PreprocessSettings, strip_suffix
from .demo import default_model
from .device import DEVICE_CHOICES, describe_device, resolve_device
from .enums import Part
from .errors import ConfigError, VolumeError
from .generate import generate_part
from .metrics.reconstruction import round_trip_metrics
from .model_input import PreparedScan, card_preprocessing, foreground_mask, prepare_scan
from .nifti import is_nifti_path, save_nifti, sidecar_path
from .validation import add_force_option, check_output
from .volume import Volume, generated_affine


def settings_for_card(card: ModelCard) -> PreprocessSettings:
    """The preprocessing the model was trained with (from its card), at the model's resolution."""
    return card_preprocessing(card)


def prepare_for_model(
    volume_or_path: Volume | str | os.PathLike, card: ModelCard, series: str | None = None
) -> torch.Tensor:
    """A scan (a Volume in physical units, a NIfTI path or a DICOM series folder) -> (1, 1, S, S, S) in [-1, 1].

    ``prepare_scan(...).volume``: preprocessed as the card records; (D, H, W) = (k, j, i).
    """
    return prepare_scan(volume_or_path, card, series=series).volume


@dataclass
class Encoding:
    """A scan, its latent and its reconstruction (network range, CPU), with round-trip metrics."""

    z: torch.Tensor  # (1, latent_dim)
    original: torch.Tensor  # (1, 1, S, S, S) in [-1, 1]
    reconstruction: torch.Tensor | None = None  # None for conditional models (a class is needed)
    # psnr (dB), ssim, nmse over the volume; "blank_*" and "mean_*": the same for a constant volume
    # (the background; the original's mean); "foreground_*": all of these inside the foreground
    metrics: dict[str, float] = field(default_factory=dict)
    foreground: torch.Tensor | None = None  # bool (1, 1, S, S, S)
    warnings: list[str] = field(default_factory=list)


def encode_scan(model, volume: torch.Tensor | PreparedScan, reconstruct: bool = True) -> Encoding:
    """Encode a prepared volume (``prepare_scan`` or ``prepare_for_model``) and, optionally, generate it
    back in full and compare: metrics over the volume and inside its foreground, each next to a
    constant baseline."""
    warnings: list[str] = []
    if isinstance(volume, PreparedScan):
        mask, warnings, volume = volume.foreground, list(volume.warnings), volume.volume
    else:
        mask = foreground_mask(volume[0, 0])[None, None]
    if not getattr(model, "has_encoders", False):
        raise ConfigError("this model has no encoders (E and Sub_E): it cannot encode a scan")
    size = model.card.config.resolution
    if tuple(volume.shape) != (1, 1, size, size, size):
        raise ConfigError(f"the encoder takes a (1, 1, {size}, {size}, {size}) volume, got {tuple(volume.shape)}")
    with torch.inference_mode():
        z = model.encode(volume.to(model.device)).float().cpu()
    original = volume.float().cpu()
    encoding = Encoding(z=z, original=original, foreground=mask, warnings=warnings)
    if reconstruct and not model.card.config.num_class:
        rebuilt = generate_part(model, z, Part.FULL).float().cpu()
        encoding.reconstruction = rebuilt
        encoding.metrics = round_trip_metrics(original, rebuilt, mask)
    return encoding


def metrics_lines(metrics: dict[str, float]) -> list[str]:
    """Two lines for people: the whole volume and the foreground, each next to the constant baselines."""
    lines = []
    for label, prefix in (("volume", ""), ("foreground", "foreground_")):
        m = {key[len(prefix) :]: value for key, value in metrics.items() if key.startswith(prefix)}
        share = f" ({100 * metrics['foreground_fraction']:.1f}% of voxels)" if prefix else ""
        lines.append(
            f"{label}{share}: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, NMSE {m['nmse']:.4g}"
            f"  |  blank: PSNR {m['blank_psnr']:.2f} dB, SSIM {m['blank_ssim']:.4f}"
            f"  |  mean: PSNR {m['mean_psnr']:.2f} dB, SSIM {m['mean_ssim']:.4f}"
        )
    return lines


def encoding_volumes(model, encoding: Encoding, name: str) -> dict[str, Volume]:
    """'original', 'reconstruction' and 'difference' (reconstruction - original) in physical units.

    All three sit in the model's generated frame (nominal spacing, centred), like its samples.
    """
    card = model.card
    affine = generated_affine(card.config.resolution, card.spacing_mm, Part.FULL)
    base = {"model": card.name or "HA-GAN", "model_hash": card.content_hash, "source_file": name}
    volumes = {
        "original": Volume.from_network(
            encoding.original[0], affine, card.intensity, {**base, "synthetic": False, "operation": "preprocessed"}
        )
    }
    if encoding.reconstruction is not None:
        provenance = {
            **base,
            "synthetic": True,
            "operation": "reconstruction (encode, then full)",
            "latent_origin": f"encoded {name}",
            "latent": [round(v, 7) for v in encoding.z.reshape(-1).tolist()],
        }
        rebuilt = Volume.from_network(encoding.reconstruction[0], affine, card.intensity, provenance)
        volumes["reconstruction"] = rebuilt
        difference = rebuilt.array - volumes["original"].array
        provenance = {**base, "synthetic": True, "operation": "reconstruction - original"}
        volumes["difference"] = Volume(difference, affine, card.intensity, provenance)
    return volumes


def scan_name(path: str | os.PathLike) -> str:
    """``/data/scan.nii.gz`` -> ``scan``."""
    return strip_suffix(Path(path).name)


# -- command line -------------------------------------------------------------------------------


def register(commands) -> argparse.ArgumentParser:
    """Add ``encode`` to an argparse subparsers object."""
    parser = commands.add_parser("encode", help="a real NIfTI scan -> its latent z (HA-GAN models with encoders)")
    parser.add_argument(
        "--model",
        "--checkpoint",
        dest="checkpoint",
        help="our .safetensors model or official HA-GAN files with E and Sub_E (default: the chest CT demo model)",
    )
    parser.add_argument("--resolution", type=int, choices=(128, 256), help="resolution of official HA-GAN files")
    parser.add_argument("--volume", required=True, help="the scan (.nii, .nii.gz or a DICOM series folder)")
    parser.add_argument("--series", metavar="UID", help="which series, when the DICOM folder holds several")
    parser.add_argument("--out", required=True, help="the latent as a .npy array of shape (1, latent_dim)")
    parser.add_argument("--reconstruction", metavar="FILE", help="also write the reconstruction (.nii or .nii.gz)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    add_force_option(parser)
    parser.set_defaults(run=run_encode)
    return parser


def run_encode(args: argparse.Namespace) -> int:
    """The ``encode`` command: check every path first, then load, encode and write."""
    out = Path(args.out)
    if out.suffix.lower() != ".npy":
        raise ConfigError(f"{out}: the latent is written as a .npy file")
    targets = [out]
    if args.reconstruction:
        if not is_nifti_path(args.reconstruction):
            raise ConfigError(f"{args.reconstruction}: the reconstruction is written as .nii or .nii.gz")
        targets.append(Path(args.reconstruction))
    for target in targets:
        check_output(target, args.force)
    if args.reconstruction and sidecar_path(args.reconstruction).exists() and not args.force:
        raise ConfigError(f"{sidecar_path(args.reconstruction)}: already exists; give --force to replace it")
    if not Path(args.volume).exists():
        raise VolumeError(f"{args.volume}: no such file or folder")
    started = time.perf_counter()
    device = resolve_device(args.device)
    model = load_model(args.checkpoint or default_model(), args.resolution, device, parts=("G", "E", "Sub_E"))
    if not model.has_encoders:
        raise ConfigError(f"{args.checkpoint or 'the model'}: has no encoders (E and Sub_E); it cannot encode a scan")
    if args.reconstruction and model.card.config.num_class:
        raise ConfigError("a conditional model needs a class to reconstruct; leave out --reconstruction")
    prepared = prepare_scan(args.volume, model.card, series=args.series)
    for warning in prepared.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    encoding = encode_scan(model, prepared, reconstruct=bool(args.reconstruction))
    z = encoding.z.numpy().astype(np.float32)
    atomic_write(out, lambda tmp: _save_npy(tmp, z), suffix=".npy")
    print(f"wrote {out} (latent {z.shape[1]}, {describe_device(device)})", file=sys.stderr)
    if args.reconstruction and encoding.reconstruction is not None:
        name = scan_name(args.volume)
        rebuilt = encoding_volumes(model, encoding, name)["reconstruction"]
        save_nifti(rebuilt, args.reconstruction, f"SYNTHETIC reconstruction of {name}")
        print(f"wrote {args.reconstruction} (metrics on [0, 1] data, data range 1)", file=sys.stderr)
        for line in metrics_lines(encoding.metrics):
            print(f"  {line}", file=sys.stderr)
    print(f"encoded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
