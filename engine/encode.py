"""Encoding real scans: preprocess a NIfTI the way the model was trained, encode it to z, rebuild it.

HA-GAN's encoders (E^H on slabs, E^G on their joined features) map a real volume in [-1, 1] to a
latent z; generating the full volume from z shows how well the model can represent the scan.
``python -m engine encode`` writes z (``.npy``, shape (1, latent_dim)) and optionally the
reconstruction as NIfTI, and prints PSNR / SSIM / NMSE of the round trip.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from .atomic import atomic_write
from .card import ModelCard
from .checkpoints import load_model
from .data.preprocess import PreprocessSettings, map_intensity, read_canonical, resample, strip_suffix
from .demo import default_model
from .device import DEVICE_CHOICES, describe_device, resolve_device
from .errors import ConfigError, VolumeError
from .generate import generate_part
from .metrics.reconstruction import reconstruction_metrics
from .nifti import is_nifti_path, save_nifti, sidecar_path
from .validation import add_force_option, check_output
from .volume import Volume, generated_affine


def settings_for_card(card: ModelCard) -> PreprocessSettings:
    """The preprocessing the model was trained with (from its card), at the model's resolution.

    Cards of models trained by this engine record the preprocessing settings; otherwise the
    card's intensity window maps physical values to [-1, 1].
    """
    size = card.config.resolution
    data = card.training.get("data") if isinstance(card.training, dict) else None
    recorded = data.get("preprocessing") if isinstance(data, dict) else None
    if isinstance(recorded, dict) and "modality" in recorded:
        try:
            return PreprocessSettings.from_dict({**recorded, "size": size})
        except (ConfigError, KeyError, TypeError, ValueError):
            pass  # an unusable record: fall back to the card's window
    modality = "ct" if card.modality == "ct" or card.intensity.unit.upper() == "HU" else "mri"
    return PreprocessSettings(modality, window=(card.intensity.low, card.intensity.high), size=size)


def prepare_for_model(volume_or_path: Volume | str | os.PathLike, card: ModelCard) -> torch.Tensor:
    """A scan (a Volume in physical units, or a NIfTI path) -> (1, 1, S, S, S) float32 in [-1, 1].

    Reoriented to RAS, intensity-mapped and resampled to the model's S^3 as its training data
    was; (D, H, W) = (k, j, i). A VolumeError names the file and the cause.
    """
    settings = settings_for_card(card)
    where = "" if isinstance(volume_or_path, Volume) else f"{volume_or_path}: "
    try:
        if isinstance(volume_or_path, Volume):
            image = nib.Nifti1Image(volume_or_path.array, volume_or_path.affine)
            array = np.asarray(nib.as_closest_canonical(image).dataobj, dtype=np.float32)
        else:
            array = read_canonical(volume_or_path).array
        network, _window = map_intensity(array, settings)
    except VolumeError as error:
        raise VolumeError(f"{where}{error}") from None
    cube = resample(network, settings.size).transpose(2, 1, 0)
    return torch.from_numpy(np.ascontiguousarray(cube, dtype=np.float32))[None, None]


@dataclass
class Encoding:
    """A scan, its latent and its reconstruction (network range, CPU), with round-trip metrics."""

    z: torch.Tensor  # (1, latent_dim)
    original: torch.Tensor  # (1, 1, S, S, S) in [-1, 1]
    reconstruction: torch.Tensor | None = None  # None for conditional models (a class is needed)
    metrics: dict[str, float] = field(default_factory=dict)  # psnr (dB), ssim, nmse


def encode_scan(model, volume: torch.Tensor, reconstruct: bool = True) -> Encoding:
    """Encode a prepared volume (``prepare_for_model``) and, optionally, generate it back in full."""
    if not getattr(model, "has_encoders", False):
        raise ConfigError("this model has no encoders (E and Sub_E): it cannot encode a scan")
    size = model.card.config.resolution
    if tuple(volume.shape) != (1, 1, size, size, size):
        raise ConfigError(f"the encoder takes a (1, 1, {size}, {size}, {size}) volume, got {tuple(volume.shape)}")
    with torch.inference_mode():
        z = model.encode(volume.to(model.device)).float().cpu()
    encoding = Encoding(z=z, original=volume.float().cpu())
    if reconstruct and not model.card.config.num_class:
        rebuilt = generate_part(model, z, "full").float().cpu()
        encoding.reconstruction = rebuilt
        encoding.metrics = {key: float(value[0]) for key, value in reconstruction_metrics(volume, rebuilt).items()}
    return encoding


def encoding_volumes(model, encoding: Encoding, name: str) -> dict[str, Volume]:
    """'original', 'reconstruction' and 'difference' (reconstruction - original) in physical units.

    All three sit in the model's generated frame (nominal spacing, centred), like its samples.
    """
    card = model.card
    affine = generated_affine(card.config.resolution, card.spacing_mm, "full")
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
    parser.add_argument("--volume", required=True, help="the scan to encode (.nii or .nii.gz)")
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
    if not Path(args.volume).is_file():
        raise VolumeError(f"{args.volume}: no such file")
    started = time.perf_counter()
    device = resolve_device(args.device)
    model = load_model(args.checkpoint or default_model(), args.resolution, device, parts=("G", "E", "Sub_E"))
    if not model.has_encoders:
        raise ConfigError(f"{args.checkpoint or 'the model'}: has no encoders (E and Sub_E); it cannot encode a scan")
    if args.reconstruction and model.card.config.num_class:
        raise ConfigError("a conditional model needs a class to reconstruct; leave out --reconstruction")
    volume = prepare_for_model(args.volume, model.card)
    encoding = encode_scan(model, volume, reconstruct=bool(args.reconstruction))
    z = encoding.z.numpy().astype(np.float32)
    atomic_write(out, lambda tmp: _save_npy(tmp, z), suffix=".npy")
    print(f"wrote {out} (latent {z.shape[1]}, {describe_device(device)})", file=sys.stderr)
    if args.reconstruction and encoding.reconstruction is not None:
        name = scan_name(args.volume)
        rebuilt = encoding_volumes(model, encoding, name)["reconstruction"]
        save_nifti(rebuilt, args.reconstruction, f"SYNTHETIC reconstruction of {name}")
        m = encoding.metrics
        print(
            f"wrote {args.reconstruction}: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, NMSE {m['nmse']:.4g}",
            file=sys.stderr,
        )
    print(f"encoded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
