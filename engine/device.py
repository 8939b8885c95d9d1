"""Device selection: auto picks CUDA, then MPS, then the CPU."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from .errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """Devices this machine can run on, best first."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a user's choice into a torch device, with a clear error when it is not there."""
    if name == "auto":
        return torch.device(available_devices()[0])
    kind = name.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise ConfigError(f"unknown device '{name}'; choose one of {', '.join(DEVICE_CHOICES)}")
    if kind != "cpu" and kind not in available_devices():
        raise ConfigError(f"device '{name}' is not available here; found: {', '.join(available_devices())}")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """A short human-readable name, e.g. 'CUDA: NVIDIA H100' or 'CPU (2 threads)'."""
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "MPS (Apple GPU)"
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads != 1 else ''})"


def describe_hardware(device: torch.device) -> str:
    """For model cards and benchmark reports, e.g. 'AMD EPYC CPU (2 cores), 2 torch threads'."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    if device.type == "mps":
        return f"Apple GPU (MPS), {platform.machine()}"
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        name = models[0] if models else name
    threads = torch.get_num_threads()
    return f"{name} CPU ({os.cpu_count()} cores), {threads} torch thread{'' if threads == 1 else 's'}"


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 natively (AVX512-BF16 or AMX), not emulated by oneDNN.

    Asks oneDNN (a private op); where torch lacks it, reads the Linux CPU flags instead.
    """
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        if check is not None:
            return bool(check())
    except RuntimeError:
        return False
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text().split() if cpuinfo.exists() else []
    return "avx512_bf16" in flags or "amx_bf16" in flags
