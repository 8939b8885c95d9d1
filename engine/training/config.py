"""Training settings: one dataclass, the reference's values as defaults, presets for network sizes."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import ConfigError
from ..models.hagan import HAGANConfig

# Network widths by preset; "official" is the released HA-GAN layout.
PRESETS = {
    "official": dict(latent_dim=1024, g_width=32, d_width=16, e_width=32),
    "small": dict(latent_dim=256, g_width=16, d_width=16, e_width=16),
    # the bundled demo models: a model file with encoders under 30 MB in float16, trainable on a CPU
    "demo": dict(latent_dim=256, g_width=16, d_width=8, e_width=16),
    "tiny": dict(latent_dim=32, g_width=16, d_width=8, e_width=8),
}


@dataclass
class TrainConfig:
    """Every setting of a run. Defaults are the reference's (Sun et al. 2022, official train.py)."""

    data: str = ""  # a folder (preprocessed or NIfTI), or "phantoms:chest-ct" / "phantoms:brain-mri"
    out: str = ""
    resolution: int = 256
    preset: str = "official"
    latent_dim: int = 0  # 0: from the preset
    g_width: int = 0
    d_width: int = 0
    e_width: int = 0
    num_class: int = 0
    iterations: int = 80000
    batch_size: int = 4  # global, across all processes
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    lr_e: float = 1e-4  # E^H and E^G
    beta1: float = 0.0
    beta2: float = 0.999
    g_iter: int = 1
    lambda_class: float = 0.1
    ema: float = 0.0  # decay of an exponential moving average of G; 0 = off
    precision: str = "fp32"  # fp32 | bf16 | fp16 (GPU only)
    grad_checkpoint: bool = False
    augment: bool = False
    seed: int = 0
    checkpoint_every: int = 500
    keep: int = 3
    log_every: int = 20
    preview_every: int = 200
    workers: int = 0
    modality: str = ""  # for NIfTI folders read directly: ct | mri
    window: tuple[float, float] | None = None
    phantom_count: int = 2000  # distinct phantoms when training on built-in phantoms (cached in memory)
    name: str = ""

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset '{self.preset}'; choose one of {', '.join(PRESETS)}")
        for key, value in PRESETS[self.preset].items():
            if not getattr(self, key):
                setattr(self, key, value)
        if self.iterations < 1 or self.batch_size < 1:
            raise ConfigError("iterations and batch size must be at least 1")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"unknown precision '{self.precision}'")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"EMA decay must lie in [0, 1), got {self.ema}")
        if self.checkpoint_every < 1 or self.keep < 1:
            raise ConfigError("checkpoint interval and number kept must be at least 1")
        self.network()  # validates resolution and widths

    def network(self) -> HAGANConfig:
        return HAGANConfig(
            resolution=self.resolution,
            latent_dim=self.latent_dim,
            num_class=self.num_class,
            g_width=self.g_width,
            d_width=self.d_width,
            e_width=self.e_width,
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        try:
            values = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f"{path}: cannot read the run's settings ({error})") from None
        known = {f.name for f in fields(cls)}
        if values.get("window") is not None:
            values["window"] = tuple(values["window"])
        return cls(**{k: v for k, v in values.items() if k in known})
