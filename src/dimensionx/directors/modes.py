"""Speed/memory modes of video generation: ``exact``, ``fast``, ``lowmem``.

``apply_mode`` places a loaded pipeline on its device the way the mode wants. On a CPU
every mode is plain eager execution, with a one-line notice for modes that need CUDA.
"""

from __future__ import annotations

import logging

import torch

from ..errors import DimensionXError

logger = logging.getLogger(__name__)

MODES = ("exact", "fast", "lowmem")


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise DimensionXError(f"--mode {mode!r} is unknown: use one of {', '.join(MODES)}")


def apply_mode(pipe, mode: str, device: torch.device) -> list[str]:
    """Moves ``pipe`` to ``device`` configured for ``mode``; returns notes for the sidecar."""
    check_mode(mode)
    if device.type != "cuda":
        if mode != "exact":
            logger.info("--mode %s needs a CUDA GPU; running plain eager on %s", mode, device)
        pipe.to(device)
        return [f"{mode} -> eager on {device.type}"] if mode != "exact" else []
    pipe.to(device)
    return []
