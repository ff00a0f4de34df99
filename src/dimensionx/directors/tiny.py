"""Tiny director LoRAs: one random rank-4 LoRA per director, for the tiny model (tests, demos)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..diskerrors import as_os_errors
from ..models.tiny import TINY_LORA_RANK, ensure_tiny_model, tiny_cache_dir
from ..outputs import atomic_dir
from .lora import LORA_TARGETS, save_lora
from .registry import DIRECTORS


def tiny_lora_dir() -> Path:
    """Folder of the tiny directors' files, built beside the tiny model on first use."""
    model_dir = ensure_tiny_model()
    lora_dir = tiny_cache_dir() / "loras"
    if not lora_dir.is_dir():
        with atomic_dir(lora_dir, overwrite=True) as tmp, as_os_errors(lora_dir):
            write_tiny_loras(model_dir, tmp)
    return lora_dir


def write_tiny_loras(model_dir: Path, lora_dir: Path) -> None:
    """One random rank-4 LoRA per director, in the official (SAT-exporter, unprefixed) format."""
    from diffusers import CogVideoXTransformer3DModel

    transformer = CogVideoXTransformer3DModel.from_pretrained(model_dir, subfolder="transformer")
    for index, director in enumerate(DIRECTORS.values()):
        generator = torch.Generator().manual_seed(1000 + index)
        tensors = {}
        for name, module in transformer.named_modules():
            if name.startswith("transformer_blocks.") and name.endswith(LORA_TARGETS):
                out_features, in_features = module.weight.shape
                tensors[f"{name}.lora_A.weight"] = torch.randn(TINY_LORA_RANK, in_features, generator=generator) * 0.5
                tensors[f"{name}.lora_B.weight"] = torch.randn(out_features, TINY_LORA_RANK, generator=generator) * 0.5
        save_lora(tensors, lora_dir / director.filename)
