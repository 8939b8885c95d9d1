"""Numeric precision of generation: which choices a device allows, and the math mode of each.

- ``fp32``: exact float32. On CUDA this is *strict*: TF32 is switched off for matmuls and cuDNN
  convolutions during the call (and restored after), so the result matches the CPU to float32
  rounding.
- ``tf32``: float32 tensors with TF32 tensor-core matmuls and convolutions (CUDA only); faster,
  about 1e-3 off. The default on CUDA, as in torch itself.
- ``bf16``: bfloat16 arithmetic; on CUDA, and on CPUs with bf16 instructions (AVX512-BF16 or AMX;
  elsewhere oneDNN would emulate it, slower than fp32).
- ``fp16``: float16 arithmetic, on CUDA and MPS.

``auto`` means the device's default: ``tf32`` on CUDA, ``fp32`` elsewhere (exact).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .device import cpu_has_bf16
from .enums import Precision
from .errors import ConfigError

PRECISIONS = {
    Precision.FP32: torch.float32,
    Precision.TF32: torch.float32,
    Precision.BF16: torch.bfloat16,
    Precision.FP16: torch.float16,
}
PRECISION_CHOICES = tuple(precision.value for precision in Precision)  # plain strings: argparse shows their repr
EXACT = Precision.FP32


def allowed_precisions(device: torch.device | str) -> tuple[str, ...]:
    """The precisions generation runs in on this device, exact first."""
    kind = torch.device(device).type
    if kind == "cuda":
        return (Precision.FP32, Precision.TF32, Precision.BF16, Precision.FP16)
    if kind == "mps":
        return (Precision.FP32, Precision.FP16)
    return (Precision.FP32, Precision.BF16) if cpu_has_bf16() else (Precision.FP32,)


def default_precision(device: torch.device | str) -> str:
    """What ``auto`` means: TF32 on CUDA (torch's own default there), exact fp32 elsewhere."""
    return Precision.TF32 if torch.device(device).type == "cuda" else EXACT


def fast_precision(device: torch.device | str) -> str:
    """The fastest precision worth using for previews here: bf16 where it runs natively, else exact fp32."""
    return Precision.BF16 if Precision.BF16 in allowed_precisions(device) else EXACT


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto`` -> the device's default; any other choice is checked (a one-line ConfigError if refused)."""
    if precision == Precision.AUTO:
        return default_precision(device)
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISION_CHOICES)}")
    device = torch.device(device)
    if precision not in allowed_precisions(device):
        raise ConfigError(refusal(precision, device))
    return precision


def refusal(precision: str, device: torch.device) -> str:
    """Why this device does not run ``precision`` (one line)."""
    if precision == Precision.BF16 and device.type == "cpu":
        return "bf16 on this CPU would be emulated (no AVX512-BF16/AMX instructions), slower than fp32; use fp32"
    if precision == Precision.FP16 and device.type == "cpu":
        return f"fp16 generation needs a GPU (CUDA or MPS); choose one of {', '.join(allowed_precisions(device))} here"
    if precision == Precision.TF32:
        return "tf32 is a mode of CUDA GPUs; use fp32 here (already exact)"
    return (
        f"{precision} generation does not run on {device.type}; choose one of {', '.join(allowed_precisions(device))}"
    )


@contextmanager
def math_mode(precision: str, device: torch.device | str) -> Iterator[None]:
    """On CUDA: TF32 off for ``fp32`` (strict), on for ``tf32``, during the block; flags restored after.

    Other devices and precisions leave everything as it is (CPUs have no TF32).
    """
    if torch.device(device).type != "cuda" or precision not in (Precision.FP32, Precision.TF32):
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = precision == Precision.TF32
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def cuda_math_description() -> str:
    """The CUDA math mode in effect now, for model cards: 'tf32' (TF32 convolutions) or 'fp32'."""
    return Precision.TF32 if torch.backends.cudnn.allow_tf32 else Precision.FP32
