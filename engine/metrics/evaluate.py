"""``python -m engine evaluate``: compare a model's samples with a real set, write a JSON report.

Reported, real versus generated: FID and MMD^2 over extractor features (Med3D with user weights,
or the 2.5-D random-feature extractor), MS-SSIM diversity, the seam score of ``full`` against
``stitched`` generation of the same latents, the Wasserstein-1 distance of intensity histograms
in physical units, CT tissue fractions, and (for models with encoders) reconstruction PSNR, SSIM
and NMSE. Real-set results are cached in a ``.npz`` keyed by the file list, the model's
resolution and intensity mapping, and the extractor with its weights.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nibabel
import numpy as np
import scipy
import torch
from tqdm import tqdm

from .. import __version__
from ..atomic import atomic_write
from ..checkpoints import load_model
from ..device import DEVICE_CHOICES, describe_device, resolve_device
from ..enums import Part
from ..errors import ConfigError
from ..generate import FastGenerator, GenerationOptions, auto_batch_size, check_part, generate_part
from ..latent import seeds_to_z
from ..model import AnyModel, HAGANModel
from ..model_input import card_preprocessing, foreground_mask
from ..validation import MAX_SEED, MAX_SEEDS
from ..volume import IntensityMapping
from .extractors import ExtractorInfo, ExtractorKind, build_extractor
from .fid import FIDMetric
from .intensity import CT_TISSUE_BINS, IntensityHistogram, histogram_wasserstein, tissue_counts
from .mmd import MMDMetric
from .realset import RealSet, find_real_set
from .reconstruction import round_trip_metrics
from .seams import (
    ADJACENT_JUMP_COMPARES,
    SEAM_SCORE_COMPARES,
    adjacent_jump,
    hagan_seam_period,
    seam_score,
    slab_boundaries,
)
from .ssim import ms_ssim3d, ms_ssim_scales

CACHE_VERSION = 2  # 2: SSIM on [0, 1], finite seam scores with adjacent jumps, card preprocessing
HISTOGRAM_BINS = 512
MAX_WARNINGS = 20
TISSUE_KEYS = (*CT_TISSUE_BINS, "other", "total")
ProgressCallback = Callable[[int, int, str], None]  # (done, total, what); may raise to stop the evaluation


@dataclass
class EvaluationSettings:
    """Everything an evaluation depends on (the CLI options, one source of truth)."""

    checkpoint: str
    real: str
    resolution: int | None = None
    samples: int = 64
    seed_start: int = 0
    extractor: str | None = None  # None: med3d when weights are given, else slices
    extractor_weights: str | None = None
    device: str = "auto"
    batch_size: int | None = None
    seam_samples: int = 8
    msssim_pairs: int = 32
    reconstructions: int = 8
    cache_dir: str | None = None  # None: no real-set cache
    progress: bool = True

    def check(self) -> None:
        """Refuse impossible settings before any work."""
        if self.samples < 2:
            raise ConfigError(f"--samples must be at least 2 (covariances and MS-SSIM pairs), got {self.samples}")
        for name in ("seed_start", "seam_samples", "msssim_pairs", "reconstructions"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.samples > MAX_SEEDS or self.seed_start + self.samples - 1 > MAX_SEED:
            raise ConfigError(f"--samples at most {MAX_SEEDS}, with every seed up to 2**63 - 1")

    @property
    def extractor_kind(self) -> ExtractorKind:
        if self.extractor is None:
            return ExtractorKind.MED3D if self.extractor_weights else ExtractorKind.SLICES
        try:
            return ExtractorKind(self.extractor)
        except ValueError:
            raise ConfigError(f"unknown extractor '{self.extractor}'; choose one of med3d, slices, none") from None


@dataclass
class SetStatistics:
    """Running statistics of one set of volumes (real or generated), in network range [-1, 1]."""

    intensity: IntensityMapping
    boundaries: list[int]
    period: int
    max_pairs: int
    ct: bool
    histogram: IntensityHistogram = field(init=False)
    tissue: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TISSUE_KEYS, 0.0))
    features: list[np.ndarray] = field(default_factory=list)
    ms_ssim: list[float] = field(default_factory=list)
    seams: list[np.ndarray] = field(default_factory=list)
    adjacent: list[np.ndarray] = field(default_factory=list)  # jumps relative to the adjacent planes
    count: int = 0
    _previous: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.histogram = IntensityHistogram(self.intensity.low, self.intensity.high, HISTOGRAM_BINS)

    def add(self, volume: torch.Tensor, extractor: ExtractorInfo | None) -> None:
        """One (1, 1, S, S, S) volume: histogram, tissue counts, seam scores, features, MS-SSIM pairs."""
        physical = self.intensity.to_physical(volume[0, 0].float().cpu().numpy())
        self.histogram.add(physical)
        if self.ct:
            for key, value in tissue_counts(physical).items():
                self.tissue[key] += value
        self.seams.append(seam_score(volume[0, 0], self.boundaries, period=self.period))
        self.adjacent.append(adjacent_jump(volume[0, 0], self.boundaries))
        if extractor is not None and extractor.module is not None:
            self.features.append(extractor(volume).numpy())
        # disjoint pairs (0, 1), (2, 3), ...: one volume in memory, each volume in at most one pair
        if self.count % 2 == 1 and len(self.ms_ssim) < self.max_pairs:
            self.ms_ssim.append(float(ms_ssim3d(self._previous, volume.to(self._previous.device))[0]))
        self._previous = volume if self.count % 2 == 0 else None
        self.count += 1

    def next_step(self, name: str, total: int) -> str:
        """What adding the next volume does, for progress: 'generated 4/64, MS-SSIM pair 2/32'."""
        step = f"{name} {self.count + 1}/{total}"
        pairs = min(self.max_pairs, total // 2)
        if self.count % 2 == 1 and len(self.ms_ssim) < pairs:
            step += f", MS-SSIM pair {len(self.ms_ssim) + 1}/{pairs}"
        return step

    def feature_matrix(self) -> np.ndarray | None:
        return np.concatenate(self.features) if self.features else None

    def tissue_fractions(self) -> dict[str, float] | None:
        if not self.ct or not self.tissue["total"]:
            return None
        return {key: self.tissue[key] / self.tissue["total"] for key in TISSUE_KEYS if key != "total"}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """What the real-set cache stores."""
        features = self.feature_matrix()
        return {
            "features": features if features is not None else np.zeros((self.count, 0), np.float32),
            "histogram": self.histogram.counts,
            "tissue": np.array([self.tissue[key] for key in TISSUE_KEYS]),
            "ms_ssim": np.array(self.ms_ssim, dtype=np.float64),
            "seams": np.array(self.seams, dtype=np.float64).reshape(self.count, len(self.boundaries)),
            "adjacent": np.array(self.adjacent, dtype=np.float64).reshape(self.count, len(self.boundaries)),
            "count": np.array(self.count),
        }

    def load_arrays(self, arrays) -> None:
        self.histogram.counts = np.asarray(arrays["histogram"], dtype=np.float64)
        self.tissue = dict(zip(TISSUE_KEYS, np.asarray(arrays["tissue"], dtype=np.float64).tolist()))
        self.ms_ssim = np.asarray(arrays["ms_ssim"]).tolist()
        self.seams = list(np.asarray(arrays["seams"]))
        self.adjacent = list(np.asarray(arrays["adjacent"]))
        self.count = int(arrays["count"])
        features = np.asarray(arrays["features"])
        self.features = [features] if features.shape[1] else []


def evaluate(settings: EvaluationSettings, progress: ProgressCallback | None = None) -> dict:
    """Run an evaluation and return the report (a JSON-ready dict).

    ``progress(done, total, what)`` is called before each loading step, before each volume of every
    stage (real set, generation with its MS-SSIM pairs, reconstruction) and before each final metric;
    an exception it raises (a cancel, say) ends the evaluation.
    """
    settings.check()
    tick = progress or (lambda done, total, what: None)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    tick(0, 0, "finding the real set")
    real_set = find_real_set(settings.real)
    kind = settings.extractor_kind
    if kind is not ExtractorKind.NONE and len(real_set) < 2:
        raise ConfigError(f"{settings.real}: FID and MMD need at least 2 real volumes, found {len(real_set)}")
    device = resolve_device(settings.device)
    tick(0, 0, "building the feature extractor")
    extractor = build_extractor(kind, settings.extractor_weights, device)
    tick(0, 0, "loading the model")
    model = load_model(settings.checkpoint, settings.resolution, device, parts=("G", "E", "Sub_E"))
    check_part(model, Part.FULL)  # a 2D slice model makes no volumes to compare
    card, resolution = model.card, model.config.resolution
    boundaries, period = slab_boundaries(resolution), hagan_seam_period(resolution)
    ct = card.modality == "ct" or card.intensity.unit.upper() == "HU"
    new_stats = lambda: SetStatistics(card.intensity, boundaries, period, settings.msssim_pairs, ct)  # noqa: E731
    timings["load"] = time.perf_counter() - started

    mark = time.perf_counter()
    real, cache = new_stats(), _cache_path(settings, real_set, model, extractor)
    cache_hit, real_warnings = _real_statistics(real, real_set, extractor, cache, settings, model, device, tick)
    timings["real_set"] = time.perf_counter() - mark

    mark = time.perf_counter()
    fake, paired = _generate(model, settings, extractor, new_stats, tick)
    timings["generation"] = time.perf_counter() - mark

    mark = time.perf_counter()
    reconstruction = _reconstruction(model, real_set, settings, device, tick)
    timings["reconstruction"] = time.perf_counter() - mark

    mark = time.perf_counter()
    metrics = _metrics(real, fake, extractor, paired, card.intensity, reconstruction, resolution, tick)
    timings["metrics"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    return {
        "report": "engine evaluate",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {
            "checkpoint": str(settings.checkpoint),
            "name": card.name or "HA-GAN",
            "content_hash": card.content_hash,
            "resolution": resolution,
            "modality": card.modality,
            "intensity": card.intensity.to_dict(),
            "has_encoders": model.has_encoders,
        },
        "settings": {**asdict(settings), "device": describe_device(device), "seeds": _seed_range(settings)},
        "real_set": {
            "folder": str(real_set.folder),
            "format": real_set.kind,
            "count": real.count,
            "fingerprint": real_set.fingerprint(),
            "cache": {"file": str(cache) if cache else None, "hit": cache_hit},
        },
        "preprocessing": {
            "real_set": _real_preprocessing(real_set, card),
            "warnings": real_warnings[:MAX_WARNINGS],
        },
        "extractor": extractor.to_dict(),
        "metrics": metrics,
        "notes": _notes(real, fake, extractor, settings, model),
        "timings_s": {key: round(value, 3) for key, value in timings.items()},
        "versions": versions(),
    }


def _real_statistics(stats, real_set, extractor, cache, settings, model, device, tick) -> tuple[bool, list[str]]:
    """Fill ``stats`` from the cache (True) or from the real files (then writes the cache); and the
    warnings preprocessing gave about real volumes."""
    warnings: list[str] = []
    if cache is not None and _read_cache(cache, stats):
        return True, warnings
    progress = tqdm(range(len(real_set)), desc="real set", unit="vol", file=sys.stderr, disable=not settings.progress)
    for index in progress:
        tick(index, len(real_set), stats.next_step("real set", len(real_set)))
        volume, found = real_set.prepare(index, model.card)
        warnings += found
        stats.add(volume.to(device), extractor)
    if cache is not None:
        _write_cache(cache, stats)
    return False, warnings


def _generate(model: AnyModel, settings: EvaluationSettings, extractor: ExtractorInfo, new_stats, tick):
    """Generated samples (full volumes) into statistics; full and stitched seam scores of the first latents.

    Models without a hierarchy (split-shuffle) have no stitched volumes: no paired seam scores.
    """
    stats = new_stats()
    config = model.config
    count = settings.samples
    batch = settings.batch_size or auto_batch_size(model, Part.FULL, count, GenerationOptions())
    runner = FastGenerator(model.generator) if model.hierarchical else _WholeVolume(model)
    seam_count = min(settings.seam_samples, count) if model.hierarchical else 0
    paired: dict[str, list[np.ndarray]] = {"full": [], "stitched": [], "full_adjacent": [], "stitched_adjacent": []}
    seeds = list(range(settings.seed_start, settings.seed_start + count))
    progress = tqdm(total=count, desc="generating", unit="vol", file=sys.stderr, disable=not settings.progress)
    for first in range(0, count, batch):
        tick(first, count, f"generating {first + 1}/{count}")
        chunk = seeds[first : first + batch]
        z = seeds_to_z(chunk, config.latent_dim, model.device)
        labels = torch.tensor(chunk, device=model.device) % config.num_class if config.num_class else None
        features = runner.features(z, labels)
        volumes = runner.full(features)
        wanted = max(0, min(len(chunk), seam_count - first))
        stitched = runner.stitched(features[:wanted]) if wanted else None
        for index, volume in enumerate(volumes):
            tick(first + index, count, stats.next_step("generated", count))
            stats.add(volume[None], extractor)
            if index < wanted:
                paired["full"].append(stats.seams[-1])
                paired["full_adjacent"].append(stats.adjacent[-1])
                paired["stitched"].append(seam_score(stitched[index, 0], stats.boundaries, period=stats.period))
                paired["stitched_adjacent"].append(adjacent_jump(stitched[index, 0], stats.boundaries))
            progress.update()
    progress.close()
    return stats, paired


class _WholeVolume:
    """A one-piece generator seen through FastGenerator's ``features`` / ``full``: the latents pass through."""

    def __init__(self, model: AnyModel):
        self.model = model

    def features(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return z

    def full(self, z: torch.Tensor) -> torch.Tensor:
        return generate_part(self.model, z)


def _reconstruction(model: HAGANModel, real_set: RealSet, settings: EvaluationSettings, device, tick) -> dict | None:
    """PSNR, SSIM and NMSE of encode -> generate for the first real volumes (models with encoders)."""
    count = min(settings.reconstructions, len(real_set))
    if not model.has_encoders or count == 0 or model.config.num_class:
        return None
    runner = FastGenerator(model.generator)
    values: dict[str, list[float]] = {}
    for index in tqdm(range(count), desc="reconstruction", unit="vol", file=sys.stderr, disable=not settings.progress):
        tick(index, count, f"reconstruction {index + 1}/{count}")
        volume = real_set.load(index, model.card)
        with torch.inference_mode():
            rebuilt = runner.full(runner.features(model.encode(volume.to(device)))).float().cpu()
        mask = foreground_mask(volume[0, 0])[None, None]
        for key, value in round_trip_metrics(volume, rebuilt, mask).items():
            values.setdefault(key, []).append(value)
    summary = {key: _mean_std(value) for key, value in values.items()}
    return {
        "psnr_db": summary.pop("psnr"),
        "ssim": summary.pop("ssim"),
        "nmse": summary.pop("nmse"),
        "volumes": count,
        "data": "network [-1, 1] mapped to [0, 1], data range 1",
        "baselines": "blank: a constant background (0 on [0, 1]); mean: the original's mean over the region",
        "foreground": "voxels above " + card_preprocessing(model.card).foreground_rule() + ", on the original",
        **summary,
    }


def _metrics(real, fake, extractor, paired, intensity, reconstruction, resolution: int, tick) -> dict:
    """The report's metrics; ``tick`` before each one that takes time (FID, MMD, the summaries)."""
    real_features, fake_features = real.feature_matrix(), fake.feature_matrix()
    with_features = real_features is not None and fake_features is not None
    tick(0, 3, "metrics: FID")
    fid = FIDMetric()(real_features, fake_features) if with_features else None
    tick(1, 3, "metrics: MMD")
    mmd2 = MMDMetric()(real_features, fake_features) if with_features else None
    tick(2, 3, "metrics: MS-SSIM, seams, intensities")
    tissue_real, tissue_fake = real.tissue_fractions(), fake.tissue_fractions()
    return {
        "fid": fid,
        "mmd2": mmd2,
        "ms_ssim": {
            "generated": _mean_std(fake.ms_ssim),
            "real": _mean_std(real.ms_ssim),
            "pairs_generated": len(fake.ms_ssim),
            "pairs_real": len(real.ms_ssim),
            **ms_ssim_scales((resolution,) * 3),
        },
        "seam_score": {
            "boundaries": fake.boundaries,
            "period": fake.period,
            "compares": SEAM_SCORE_COMPARES,
            "samples": len(paired["full"]),
            "full": _mean_std([float(np.mean(s)) for s in paired["full"]]),
            "stitched": _mean_std([float(np.mean(s)) for s in paired["stitched"]]),
            "per_boundary_full": _column_means(paired["full"]),
            "per_boundary_stitched": _column_means(paired["stitched"]),
            "full_all_samples": _mean_std([float(np.mean(s)) for s in fake.seams]),
            "real": _mean_std([float(np.mean(s)) for s in real.seams]),
        },
        "adjacent_jump": {
            "compares": ADJACENT_JUMP_COMPARES,
            "full": _mean_std([float(np.mean(s)) for s in paired["full_adjacent"]]),
            "stitched": _mean_std([float(np.mean(s)) for s in paired["stitched_adjacent"]]),
            "full_all_samples": _mean_std([float(np.mean(s)) for s in fake.adjacent]),
            "real": _mean_std([float(np.mean(s)) for s in real.adjacent]),
        },
        "intensity": {
            "unit": intensity.unit,
            "wasserstein1": histogram_wasserstein(real.histogram, fake.histogram),
            "mean_real": real.histogram.mean(),
            "mean_generated": fake.histogram.mean(),
            "histogram_bins": HISTOGRAM_BINS,
        },
        "tissue_fractions": None
        if tissue_real is None
        else {
            "bins_hu": {name: [_json_bound(low), _json_bound(high)] for name, (low, high) in CT_TISSUE_BINS.items()},
            "real": tissue_real,
            "generated": tissue_fake,
            "abs_difference": {key: abs(tissue_real[key] - tissue_fake[key]) for key in tissue_real},
        },
        "reconstruction": reconstruction,
    }


def _real_preprocessing(real_set: RealSet, card) -> dict:
    """How the real volumes were made ready: the card's record (NIfTI) or the arrays as stored (.npy)."""
    record = card_preprocessing(card).to_dict()
    if real_set.kind != "npy":
        return {"source": "the model card's preprocessing record, applied to each NIfTI file or DICOM series", **record}
    stored = real_set.stored.to_dict() if real_set.stored is not None else "network range as stored"
    return {
        "source": "preprocessed .npy arrays, remapped to the model's window where the manifest records another",
        "stored_window": stored,
        "model_record": record,
    }


def _notes(real: SetStatistics, fake: SetStatistics, extractor: ExtractorInfo, settings, model) -> list[str]:
    notes = []
    if extractor.module is None:
        notes.append("no feature extractor: FID and MMD are not computed")
    elif min(real.count, fake.count) <= extractor.features:
        notes.append(
            f"FID from {real.count} real and {fake.count} generated samples of {extractor.features}-d features: "
            "covariances are rank-deficient and FID is biased upward; compare FIDs only at equal sample counts"
        )
    if extractor.kind is ExtractorKind.SLICES:
        notes.append("2.5-D random-feature extractor: numbers are not comparable with published Med3D FIDs")
    if not model.has_encoders and settings.reconstructions:
        notes.append("the model file has no encoders: no reconstruction metrics")
    elif model.config.num_class and settings.reconstructions:
        notes.append("conditional model: reconstruction metrics are not computed")
    if model.config.num_class:
        notes.append(f"conditional model: sample i uses class (seed % {model.config.num_class})")
    return notes


# -- cache --------------------------------------------------------------------------------------


def _cache_path(settings: EvaluationSettings, real_set: RealSet, model: HAGANModel, extractor) -> Path | None:
    if settings.cache_dir is None:
        return None
    key = json.dumps(
        {
            "version": CACHE_VERSION,
            "files": real_set.fingerprint(),
            "resolution": model.config.resolution,
            "intensity": model.card.intensity.to_dict(),
            "preprocessing": card_preprocessing(model.card).to_dict(),
            "ct": model.card.modality == "ct" or model.card.intensity.unit.upper() == "HU",
            "extractor": extractor.kind.value,
            "weights": extractor.weights_hash,
            "pairs": settings.msssim_pairs,
            "bins": HISTOGRAM_BINS,
        },
        sort_keys=True,
    )
    return Path(settings.cache_dir) / f"real-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"


def _read_cache(path: Path, stats: SetStatistics) -> bool:
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as arrays:
            stats.load_arrays(arrays)
        return True
    except (OSError, ValueError, KeyError):
        return False  # a damaged cache is recomputed (and rewritten)


def _write_cache(path: Path, stats: SetStatistics) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, **stats.to_arrays())

        atomic_write(path, write)
    except OSError as error:  # an unwritable cache folder: evaluate anyway, without a cache
        print(f"warning: cannot write the feature cache {path} ({error})", file=sys.stderr)


# -- helpers ------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Versions of what the numbers depend on."""
    return {
        "engine": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "nibabel": nibabel.__version__,
    }


def _mean_std(values) -> dict | None:
    values = [float(v) for v in values]
    if not values:
        return None
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


def _column_means(rows: list[np.ndarray]) -> list[float] | None:
    return np.mean(np.stack(rows), axis=0).tolist() if rows else None


def _json_bound(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)  # an open bin: "-inf" / "inf"


def _seed_range(settings: EvaluationSettings) -> str:
    return f"{settings.seed_start}-{settings.seed_start + settings.samples - 1}"


def json_ready(value):
    """Strict JSON without nulls, recursively: keys whose value is None (not applicable, the notes say
    why) are left out; a non-finite float (none is expected) becomes the string "inf", "-inf" or "nan"."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value


def write_report(report: dict, path: str | os.PathLike) -> Path:
    """The report as indented strict JSON, written atomically."""
    path = Path(path)
    text = json.dumps(json_ready(report), indent=2, allow_nan=False)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def format_table(report: dict) -> str:
    """A readable summary of a report, one metric a line."""
    m, ex = report["metrics"], report["extractor"]
    number = lambda v, f="{:.4g}": "-" if v is None else f.format(v)  # noqa: E731
    stat = lambda s: "-" if s is None else f"{s['mean']:.4g} ± {s['std']:.2g}"  # noqa: E731
    seams, adjacent, ms, inten = m["seam_score"], m["adjacent_jump"], m["ms_ssim"], m["intensity"]
    scales = f"{ms['scales']} scales{'' if ms['standard'] else ', weights renormalised'}"
    unit = f" {inten['unit']}" if inten["unit"] else ""
    label = ex["name"] if not ex["features"] else f"{ex['name']}, {ex['features']}-d"
    rows = [
        (f"FID ({label})", number(m["fid"])),
        (f"MMD² ({label})", number(m["mmd2"], "{:.4g}")),
        ("MS-SSIM generated (diversity)", f"{stat(ms['generated'])}  ({ms['pairs_generated']} pairs, {scales})"),
        ("MS-SSIM real", f"{stat(ms['real'])}  ({ms['pairs_real']} pairs)"),
        (f"seam score full ({seams['samples']} latents)", stat(seams["full"])),
        (f"seam score stitched ({seams['samples']} latents)", stat(seams["stitched"])),
        ("seam score real", stat(seams["real"])),
        ("jump / adjacent planes full / stitched", f"{stat(adjacent['full'])} / {stat(adjacent['stitched'])}"),
        ("jump / adjacent planes real", stat(adjacent["real"])),
        (f"intensity W1{unit}", number(inten["wasserstein1"])),
        (f"mean intensity real / generated{unit}", f"{number(inten['mean_real'])} / {number(inten['mean_generated'])}"),
    ]
    tissue = m["tissue_fractions"]
    if tissue:
        for key in tissue["real"]:
            rows.append(
                (f"fraction {key} real / generated", f"{tissue['real'][key]:.3f} / {tissue['generated'][key]:.3f}")
            )
    rec = m["reconstruction"]
    if rec:
        rows += [
            (f"reconstruction PSNR dB ({rec['volumes']} vols)", stat(rec["psnr_db"])),
            ("reconstruction SSIM", stat(rec["ssim"])),
            ("reconstruction NMSE", stat(rec["nmse"])),
            ("  foreground PSNR dB / SSIM", f"{stat(rec['foreground_psnr'])} / {stat(rec['foreground_ssim'])}"),
            (
                "  blank baseline foreground PSNR / SSIM",
                f"{stat(rec['foreground_blank_psnr'])} / {stat(rec['foreground_blank_ssim'])}",
            ),
            (
                "  mean baseline foreground PSNR / SSIM",
                f"{stat(rec['foreground_mean_psnr'])} / {stat(rec['foreground_mean_ssim'])}",
            ),
        ]
    width = max(len(name) for name, _ in rows)
    model, real_set = report["model"], report["real_set"]
    head = [
        f"model      {model['name']} {model['resolution']}^3  {model['content_hash'][:19] or '-'}",
        f"real set   {real_set['count']} volumes ({real_set['format']}) in {real_set['folder']}",
        f"generated  {report['settings']['samples']} samples, seeds {report['settings']['seeds']}",
        f"extractor  {ex['description']}",
        "",
    ]
    lines = head + [f"{name:<{width}}  {value}" for name, value in rows]
    lines += [f"note: {note}" for note in report["notes"]]
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------------------


def register(commands) -> argparse.ArgumentParser:
    """Add ``evaluate`` to an argparse subparsers object; its ``run`` returns an exit code."""
    parser = commands.add_parser("evaluate", help="compare a model's samples with a real set: FID, MMD, seams, ...")
    parser.add_argument(
        "--model",
        "--checkpoint",
        dest="checkpoint",
        required=True,
        help="our .safetensors model, or official HA-GAN files (G_iterN.pth or folder)",
    )
    parser.add_argument("--resolution", type=int, choices=(128, 256), help="resolution of official HA-GAN files")
    parser.add_argument(
        "--real", required=True, help="folder of real NIfTI files, or preprocessed .npy (+manifest.json)"
    )
    parser.add_argument(
        "--samples", type=int, default=64, help="generated volumes (default 64; the reference used 2048)"
    )
    parser.add_argument("--seed-start", type=int, default=0, help="samples use seeds seed-start, seed-start+1, ...")
    parser.add_argument(
        "--extractor",
        choices=[kind.value for kind in ExtractorKind],
        help="features for FID/MMD: med3d (needs --extractor-weights), slices (2.5-D random features), none "
        "(default: med3d with weights, else slices)",
    )
    parser.add_argument("--extractor-weights", metavar="FILE", help="MedicalNet ResNet-50 weights (resnet_50*.pth)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    parser.add_argument("--batch-size", type=int, help="latents per forward pass (default: 1 on CPU, what fits on GPU)")
    parser.add_argument("--seam-samples", type=int, default=8, help="latents generated full and stitched (default 8)")
    parser.add_argument("--msssim-pairs", type=int, default=32, help="disjoint sample pairs for MS-SSIM (default 32)")
    parser.add_argument(
        "--reconstructions", type=int, default=8, help="real volumes encoded and regenerated (default 8; 0: off)"
    )
    parser.add_argument(
        "--cache-dir", help="where real-set features and statistics are cached (default: evaluate_cache/ beside --out)"
    )
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the real-set cache")
    parser.add_argument("--out", required=True, help="the JSON report to write")
    parser.set_defaults(run=run_evaluate)
    return parser


def run_evaluate(args: argparse.Namespace) -> int:
    """The ``evaluate`` command: run, print the table, write the JSON report."""
    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"{out}: is a folder; give a file name for the JSON report")
    if not out.parent.exists():
        raise ConfigError(f"{out}: folder {out.parent} does not exist")
    settings = EvaluationSettings(
        checkpoint=args.checkpoint,
        real=args.real,
        resolution=args.resolution,
        samples=args.samples,
        seed_start=args.seed_start,
        extractor=args.extractor,
        extractor_weights=args.extractor_weights,
        device=args.device,
        batch_size=args.batch_size,
        seam_samples=args.seam_samples,
        msssim_pairs=args.msssim_pairs,
        reconstructions=args.reconstructions,
        cache_dir=None if args.no_cache else (args.cache_dir or str(out.parent / "evaluate_cache")),
    )
    report = evaluate(settings)
    print(format_table(report))
    write_report(report, out)
    print(f"wrote {out}", file=sys.stderr)
    return 0
