"""``--device``: the one place a device name becomes a ``torch.device`` (video and recon alike)."""

from __future__ import annotations

import re

import torch

from .errors import DimensionXError


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA if PyTorch sees a GPU, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not re.fullmatch(r"cuda(:\d+)?", name):
        raise DimensionXError(f"--device {name} is unknown: pass auto, cuda, cuda:N or cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DimensionXError(
            f"--device {name} but this machine has no CUDA GPU visible to PyTorch: pass --device cpu (slow; "
            "--model tiny for a smoke run) or auto")
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DimensionXError(f"--device {name}: only {torch.cuda.device_count()} CUDA GPU(s) are visible: pick cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device
