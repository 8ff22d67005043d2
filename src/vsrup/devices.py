"""Device and dtype choice: `auto` means the first CUDA GPU in fp16, else the CPU in fp32."""

from __future__ import annotations

import torch

from vsrup.errors import DeviceError, UsageError

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"{spec} was requested but no CUDA GPU is available (try --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"{spec} was requested but only {torch.cuda.device_count()} GPU(s) exist")
    elif device.type != "cpu":
        raise UsageError(f"unsupported device {spec!r}; use auto, cpu, cuda or cuda:N")
    return device


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    if spec == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if spec not in DTYPES:
        raise UsageError(f"unknown dtype {spec!r}; use auto, {', '.join(DTYPES)}")
    if spec == "fp16" and device.type == "cpu":
        raise UsageError("fp16 is not supported on the CPU; use fp32 (default) or bf16")
    return DTYPES[spec]


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()
