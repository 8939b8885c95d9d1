"""Metrics: FID/MMD over injected feature extractors, MS-SSIM, seam score, intensity statistics.

Every metric takes plain tensors or arrays, so it can be tested on constructed inputs and used on
volumes from any generator. ``engine.metrics.evaluate`` runs them all for ``python -m engine evaluate``.
"""

from .extractors import ExtractorKind, FeatureExtractor, build_extractor
from .fid import FIDMetric, feature_statistics, frechet_distance, frechet_distance_of_features
from .intensity import (
    CT_TISSUE_BINS,
    IntensityHistogram,
    histogram_wasserstein,
    intensity_wasserstein,
    tissue_counts,
    tissue_fractions,
)
from .med3d import Med3DResNet, load_med3d_weights, med3d_resnet50
from .mmd import MMDMetric, median_alpha, mmd2_unbiased
from .reconstruction import nmse, psnr, reconstruction_metrics
from .seams import hagan_seam_period, mean_seam_score, plane_steps, seam_score, slab_boundaries
from .slices import RandomSliceEncoder, SliceExtractor
from .ssim import ms_ssim3d, ms_ssim_levels, pairwise_ms_ssim, ssim3d

__all__ = [
    "CT_TISSUE_BINS",
    "ExtractorKind",
    "FIDMetric",
    "FeatureExtractor",
    "IntensityHistogram",
    "MMDMetric",
    "Med3DResNet",
    "RandomSliceEncoder",
    "SliceExtractor",
    "build_extractor",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_of_features",
    "hagan_seam_period",
    "histogram_wasserstein",
    "intensity_wasserstein",
    "load_med3d_weights",
    "mean_seam_score",
    "med3d_resnet50",
    "median_alpha",
    "mmd2_unbiased",
    "ms_ssim3d",
    "ms_ssim_levels",
    "nmse",
    "pairwise_ms_ssim",
    "plane_steps",
    "psnr",
    "reconstruction_metrics",
    "seam_score",
    "slab_boundaries",
    "ssim3d",
    "tissue_counts",
    "tissue_fractions",
]
