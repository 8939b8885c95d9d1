"""Encode the MNI152 T1 template (shipped with nilearn) with the bundled brain model; print and picture it.

The template is written to a NIfTI file and encoded exactly as ``python -m engine encode`` does
(the model card's preprocessing record, then E, Sub_E and G): the figures printed are the CLI's.
The picture shows the middle axial, coronal and sagittal slices of the preprocessed template
(top), its reconstruction (middle) and their difference (bottom, grey = 0), made with pillow.

    python benchmarks/encode_mni152.py [--model FILE] [--png resources/images/encode-mni152.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.checkpoints import load_model  # noqa: E402
from engine.encode import encode_scan, metrics_lines  # noqa: E402
from engine.model_input import prepare_scan  # noqa: E402

DEFAULT_MODEL = ROOT / "resources" / "models" / "demo-brain-mri.safetensors"


def slices(volume: np.ndarray) -> list[np.ndarray]:
    """Middle axial, coronal and sagittal slices of a (D, H, W) = (k, j, i) volume, superior/anterior up."""
    d, h, w = (n // 2 for n in volume.shape)
    axial = volume[d][::-1]  # rows j (anterior up), columns i
    coronal = volume[:, h][::-1]  # rows k (superior up), columns i
    sagittal = volume[:, :, w][::-1]  # rows k, columns j
    return [axial, coronal, sagittal]


def to_grey(image: np.ndarray, low: float, high: float) -> np.ndarray:
    return (np.clip((image - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def picture(original: np.ndarray, rebuilt: np.ndarray, scale: int = 2) -> Image.Image:
    rows = []
    for volume, (low, high) in ((original, (-1, 1)), (rebuilt, (-1, 1)), (rebuilt - original, (-1, 1))):
        rows.append(np.concatenate([to_grey(s, low, high) for s in slices(volume)], axis=1))
    grid = np.concatenate(rows, axis=0)
    return Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--resolution", type=int, default=2, choices=(1, 2), help="template resolution in mm")
    parser.add_argument("--png", help="write the picture here")
    args = parser.parse_args()

    from nilearn import datasets

    started = time.perf_counter()
    model = load_model(args.model, parts=("G", "E", "Sub_E"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"mni152_{args.resolution}mm.nii.gz"
        nib.save(datasets.load_mni152_template(resolution=args.resolution), path)
        prepared = prepare_scan(path, model.card)
    for warning in prepared.warnings:
        print(f"warning: {warning}")
    encoding = encode_scan(model, prepared)
    print(f"model     {model.card.name} ({model.card.content_hash[:19]})")
    low, high = prepared.window
    print(f"template  MNI152 T1 {args.resolution} mm (nilearn); window used {low:.4g}..{high:.4g}")
    for line in metrics_lines(encoding.metrics):
        print(line)
    print(f"{time.perf_counter() - started:.1f} s")
    if args.png:
        image = picture(encoding.original[0, 0].numpy(), encoding.reconstruction[0, 0].numpy())
        image.save(args.png, optimize=True)
        print(f"wrote {args.png} ({image.width}x{image.height})")


if __name__ == "__main__":
    main()
