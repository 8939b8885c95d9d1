"""Training settings: one dataclass, the reference's values as defaults, presets for network sizes.

``family`` picks the model: "ha-gan" (the default) or "split-shuffle" (Split&Shuffle-GAN: stage
"2d" trains the slice model, stage "3d" the volume model, optionally inflated from a 2D one).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..atomic import atomic_write
from ..enums import Family, Precision
from ..errors import ConfigError
from ..models.hagan import HAGANConfig
from ..models.inflate import check_strategy
from ..models.split_shuffle import SplitShuffleConfig, check_block_type
from ..validation import MAX_SEED
from .augment import check_options as check_augment_options

FAMILIES = tuple(family.value for family in Family)
SLICE_AXES = {"axial": 2, "coronal": 3, "sagittal": 4}  # slice planes of (N, 1, D, H, W): the axis cut across

# Network widths by preset; "official" is the released HA-GAN layout.
PRESETS = {
    "official": dict(latent_dim=1024, g_width=32, d_width=16, e_width=32),
    "small": dict(latent_dim=256, g_width=16, d_width=16, e_width=16),
    # the bundled demo models: a model file with encoders under 30 MB in float16, trainable on a CPU
    "demo": dict(latent_dim=256, g_width=16, d_width=8, e_width=16),
    "tiny": dict(latent_dim=32, g_width=16, d_width=8, e_width=8),
}
# Split&Shuffle-GAN widths (our choice; the paper's are not public). "default" is SplitShuffleConfig's.
SPLIT_SHUFFLE_PRESETS = {
    "default": dict(latent_dim=128, g_width=32, d_width=32, max_width=256),
    "small": dict(latent_dim=128, g_width=16, d_width=16, max_width=128),
    "tiny": dict(latent_dim=16, g_width=8, d_width=8, max_width=32),
}
DEFAULT_PRESET = {Family.HA_GAN: "official", Family.SPLIT_SHUFFLE: "default"}
PRESETS_BY_FAMILY = {Family.HA_GAN: PRESETS, Family.SPLIT_SHUFFLE: SPLIT_SHUFFLE_PRESETS}
TRAIN_PRECISIONS = (Precision.FP32, Precision.BF16, Precision.FP16)


@dataclass
class TrainConfig:
    """Every setting of a run. Defaults are the reference's (Sun et al. 2022, official train.py)."""

    data: str = ""  # a folder (preprocessed or NIfTI), or "phantoms:chest-ct" / "phantoms:brain-mri"
    out: str = ""
    family: str = Family.HA_GAN  # or Family.SPLIT_SHUFFLE
    resolution: int = 256
    preset: str = ""  # "": the family's default (HA-GAN "official", split-shuffle "default")
    latent_dim: int = 0  # 0: from the preset
    g_width: int = 0
    d_width: int = 0
    e_width: int = 0
    max_width: int = 0  # split-shuffle
    blocks: str = ""  # "": the family's default (HA-GAN "dense", split-shuffle "mixed")
    block_groups: int = 4
    upsample: str = "nearest"  # HA-GAN G's upsampling: nearest (official) | trilinear | blur
    stage: str = ""  # split-shuffle: "2d" (slices) or "3d" (volumes, the default)
    init_from: str = ""  # split-shuffle 3d: a 2D model to inflate; HA-GAN: the same architecture, to fine-tune
    init_from_2d: str = ""  # HA-GAN: a 2D split-shuffle model file or run folder to inflate where layers correspond
    inflate: str = ""  # center (default with an init source) | average | repeat | random
    fc_init: str = "tile"  # tile | random
    slice_axis: str = ""  # split-shuffle 2d: axial (default) | coronal | sagittal
    slices_per_volume: int = 4  # split-shuffle 2d: slices drawn from every volume of a batch
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
    mode_seeking: float = 0.0  # HA-GAN: weight of MSGAN's mode-seeking term for G (against seed collapse); 0 = off
    mode_seeking_ramp: int = 0  # the weight rises linearly from 0 over this many iterations of the run; 0 = at once
    diffaugment: str = ""  # HA-GAN: D's differentiable augmentation, e.g. "translation,cutout,color"; "" = off
    ada_target: float = 0.0  # HA-GAN: adaptive augmentation probability steered to this E[sign D(real)]; 0 = off
    r1: float = 0.0  # HA-GAN: weight gamma of the R1 penalty on D's real inputs; 0 = off
    r1_every: int = 16  # lazy R1: the penalty every this many iterations
    ema: float = 0.0  # decay of an exponential moving average of G; 0 = off
    precision: str = Precision.FP32  # fp32 | bf16 (CUDA, CPUs with bf16 instructions) | fp16 (CUDA)
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
    phantom_cache: str = ""  # a folder keeping phantoms on disk (memory-mapped) across runs; "" = off
    name: str = ""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"unknown family '{self.family}'; choose one of {', '.join(FAMILIES)}")
        # plain strings: the settings are pickled into run checkpoints, which load with weights_only=True
        self.family, self.precision = str(self.family), str(self.precision)
        presets = PRESETS_BY_FAMILY[self.family]
        self.preset = self.preset or DEFAULT_PRESET[self.family]
        if self.preset not in presets:
            raise ConfigError(f"unknown {self.family} preset '{self.preset}'; choose one of {', '.join(presets)}")
        for key, value in presets[self.preset].items():
            if not getattr(self, key):
                setattr(self, key, value)
        self._check_family_options()
        if self.iterations < 1 or self.batch_size < 1:
            raise ConfigError("iterations and batch size must be at least 1")
        if self.precision not in TRAIN_PRECISIONS:
            raise ConfigError(f"unknown precision '{self.precision}'")
        if self.mode_seeking < 0:
            raise ConfigError(f"--mode-seeking must be 0 (off) or positive, got {self.mode_seeking}")
        if self.mode_seeking_ramp < 0 or (self.mode_seeking_ramp and not self.mode_seeking):
            raise ConfigError("--mode-seeking-ramp takes a number of iterations (0 or more) and needs --mode-seeking")
        check_augment_options(self.diffaugment, self.ada_target, self.r1, self.r1_every, self.family)
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"EMA decay must lie in [0, 1), got {self.ema}")
        if self.checkpoint_every < 1 or self.keep < 1:
            raise ConfigError("checkpoint interval and number kept must be at least 1")
        self._check_numbers()
        self.network()  # validates resolution and widths

    def _check_numbers(self) -> None:
        """Types, ranges and finiteness of the optimiser and logging settings (one-line errors)."""
        # a learning rate of 0 freezes that network (e.g. D warmed up on a model file with G fixed)
        for name in ("lr_g", "lr_d", "lr_e"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a finite number, 0 or more, got {value}")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value < 1.0):
                raise ConfigError(f"--{name} must lie in [0, 1), got {value}")
        for name in ("lambda_class", "mode_seeking", "ema"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a finite number, 0 or more, got {value}")
        for name in ("log_every", "preview_every", "g_iter", "checkpoint_every", "keep", "iterations", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a whole number of at least 1, got {value}")
        for name in ("workers", "phantom_count", "num_class"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (1 if name == "phantom_count" else 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a whole number, got {value}")
        if not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED - 1:
            raise ConfigError(f"--seed must lie in [0, 2**63 - 2], got {self.seed}")
        if self.window is not None:
            low, high = self.window
            if not (math.isfinite(low) and math.isfinite(high) and high > low):
                raise ConfigError(f"--window needs two finite values, LOW < HIGH, got {low} {high}")

    def _check_family_options(self) -> None:
        """Options of the other family, or combinations that cannot work, are one-line errors."""
        check_block_type(self.blocks or "dense")
        check_strategy(self.inflate or "center", self.fc_init)
        if self.family == Family.HA_GAN:
            if self.init_from and self.init_from_2d:
                raise ConfigError("give --init-from (an HA-GAN to fine-tune) or --init-from-2d (a 2D model), not both")
            for name in ("stage", "slice_axis"):
                if getattr(self, name):
                    raise ConfigError(f"--{name.replace('_', '-')} is for --family split-shuffle")
        else:
            if self.init_from_2d:
                raise ConfigError("--init-from-2d is for HA-GAN; a split-shuffle 3d run takes --init-from")
            if self.mode_seeking:
                raise ConfigError("--mode-seeking is for HA-GAN")
            if self.num_class:
                raise ConfigError("split-shuffle models are unconditional (no --num-class)")
            if self.upsample != "nearest":
                raise ConfigError("--upsample is for HA-GAN")
            self.stage = self.stage or "3d"
            if self.stage not in ("2d", "3d"):
                raise ConfigError(f"unknown stage '{self.stage}'; choose 2d (slices) or 3d (volumes)")
            if self.stage == "2d" and self.init_from:
                raise ConfigError("--init-from is for --stage 3d (a 2d run starts from scratch)")
            if self.stage == "3d" and self.slice_axis:
                raise ConfigError("--slice-axis is for --stage 2d")
            self.slice_axis = self.slice_axis or ("axial" if self.stage == "2d" else "")
            if self.slice_axis and self.slice_axis not in SLICE_AXES:
                raise ConfigError(f"unknown slice axis '{self.slice_axis}'; choose one of {', '.join(SLICE_AXES)}")
        if self.slices_per_volume < 1:
            raise ConfigError("--slices-per-volume must be at least 1")
        inflated = self.init_from_2d if self.family == Family.HA_GAN else self.init_from
        if self.inflate not in ("", "random") and not inflated:
            option = "--init-from-2d" if self.family == Family.HA_GAN else "--init-from"
            raise ConfigError(f"--inflate {self.inflate} needs a 2D model to inflate ({option})")

    def network(self) -> HAGANConfig | SplitShuffleConfig:
        if self.family == Family.SPLIT_SHUFFLE:
            return SplitShuffleConfig(
                resolution=self.resolution,
                dims=2 if self.stage == "2d" else 3,
                latent_dim=self.latent_dim,
                g_width=self.g_width,
                d_width=self.d_width,
                max_width=self.max_width,
                blocks=self.blocks or "mixed",
                block_groups=self.block_groups,
            )
        return HAGANConfig(
            resolution=self.resolution,
            latent_dim=self.latent_dim,
            num_class=self.num_class,
            g_width=self.g_width,
            d_width=self.d_width,
            e_width=self.e_width,
            blocks=self.blocks or "dense",
            block_groups=self.block_groups,
            upsample=self.upsample,
        )

    def save(self, path: Path) -> bool:
        """Write atomically, and only when the settings differ from the file's; True when written."""
        text = json.dumps(asdict(self), indent=1)
        try:
            if path.read_text() == text:
                return False
        except (OSError, UnicodeDecodeError):
            pass
        atomic_write(path, lambda tmp: tmp.write_text(text), fsync=True)
        return True

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        try:
            values = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f"{path}: cannot read the run's settings ({error})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: cannot read the run's settings (not a JSON object)")
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = dict(values)
        try:
            if values.get("window") is not None:
                values["window"] = tuple(float(v) for v in values["window"])
            return cls(**{k: v for k, v in values.items() if k in known})
        except (TypeError, ValueError) as error:
            raise ConfigError(f"the run's settings are malformed ({error})") from None


def train_arguments(config: TrainConfig) -> list[str]:
    """``config`` as the arguments of ``python -m engine train`` (after ``train``) that rebuild it.

    The data, the run folder and the network (resolution, preset) are always written, every other
    setting only where it differs from its default. With ``init_from`` the network comes from the
    source, so it is left out, except the resolution of a source that does not record it (official
    HA-GAN files; our model files and run folders do).
    """
    kind = config.data.removeprefix("phantoms:")
    args = ["--phantoms", kind] if kind != config.data else ["--data", config.data]
    args += ["--out", config.out]
    presets = PRESETS_BY_FAMILY[config.family]
    network = {"resolution", "preset", "latent_dim", "g_width", "d_width", "e_width", "max_width"}
    network |= {"blocks", "block_groups", "num_class"}  # what a start model brings
    if config.init_from:  # an HA-GAN to fine-tune or a 2D model to inflate: either brings its network
        source = Path(config.init_from)
        if source.suffix != ".safetensors" and not (source / "config.json").is_file():
            args += ["--resolution", str(config.resolution)]
        handled = network | {"data", "out"}
    else:
        args += ["--resolution", str(config.resolution), "--preset", config.preset]
        handled = {"data", "out", "resolution", "preset"}
    for field in fields(config):
        value = getattr(config, field.name)
        default = presets[config.preset].get(field.name, field.default)
        if field.name in handled or value == default:
            continue
        option = "--" + field.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(option)  # a switch: on where the default is off
        elif isinstance(value, tuple):
            args += [option, *map(repr, value)]
        else:
            args += [option, repr(value) if isinstance(value, float) else str(value)]
    return args
