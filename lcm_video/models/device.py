"""Which device and dtype a render runs on."""

from __future__ import annotations

import torch

from ..errors import UserError


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA, else MPS, else CPU. A device that is asked for but absent is a UserError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is visible to torch; use --device cpu or install CUDA torch")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    return dev


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` → float16 on CUDA/MPS, float32 on CPU."""
    if name == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]
    if device.type == "cpu" and dtype == torch.float16:
        raise UserError("--dtype float16 is not supported on the CPU; use float32 or bfloat16")
    return dtype
