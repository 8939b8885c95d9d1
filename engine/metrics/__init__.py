"""Metrics: FID/MMD/MS-SSIM, seam score, intensity statistics."""
