"""What the data loader yields: decoded clips, or their pre-encoded latents; and the data order.

The order is a fresh permutation each epoch drawn from ``seed + epoch``, so it is a function of
the step alone: a resumed run skips the batches already seen and meets the same clips next.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..atomic import atomic_file
from .data import Clip, load_clip

log = logging.getLogger(__name__)


class EpochShuffle(torch.utils.data.Sampler):
    """Indices of ``n`` items in a permutation seeded by ``seed + epoch``.

    The epoch is set by the trainer from its step count (``use_epoch``), not through
    ``set_epoch``, which accelerate's loaders call with their own count of iterations (0 again
    after a resume).
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist())

    def __len__(self) -> int:
        return self.n


class VideoClips(torch.utils.data.Dataset):
    """Decoded clips: {"video": [F, 3, H, W] in [-1, 1], "caption": str}."""

    def __init__(self, clips: list[Clip], frames: int, skip: int, height: int, width: int):
        self.clips, self.frames, self.skip, self.height, self.width = clips, frames, skip, height, width

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        return {"video": load_clip(clip, self.frames, self.skip, self.height, self.width), "caption": clip.caption}


class CachedClips(torch.utils.data.Dataset):
    """Pre-encoded clips: {"latents": [F', C, h, w], "image_latents": [draws, 1, C, h, w], "prompt_embeds": [L, D]}."""

    def __init__(self, files: list[Path]):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        return load_file(self.files[index])


def cache_key(clip: Clip, settings: dict) -> str:
    """Hash of the video file's bytes, its caption and the encoding settings."""
    digest = hashlib.sha256()
    with open(clip.video, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    digest.update(json.dumps({"caption": clip.caption, **settings}, sort_keys=True).encode())
    return digest.hexdigest()[:32]


def pre_encode(clips: list[Clip], cache_dir: Path, settings: dict, encode) -> list[Path]:
    """Cache files of ``clips`` (``encode(clip) -> dict of tensors`` runs for the missing ones)."""
    files = [cache_dir / f"{cache_key(clip, settings)}.safetensors" for clip in clips]
    missing = [(clip, file) for clip, file in zip(clips, files) if not file.is_file()]
    if missing:
        log.info("pre-encoding %d of %d clips into %s", len(missing), len(clips), cache_dir)
    for clip, file in tqdm(missing, desc="pre-encoding", unit="clip", disable=not missing):
        with atomic_file(file) as tmp:
            save_file({k: v.contiguous() for k, v in encode(clip).items()}, str(tmp))
    return files
