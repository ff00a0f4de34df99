"""Pre-encoded training data: clips as the VAE and T5 gave them, trainable without either.

A manifest ``encoded.json`` (``--data`` names it, or a folder holding it) lists one
safetensors file per clip, paths relative to the manifest's folder::

    {"frames": 49, "height": 480, "width": 720,
     "clips": [{"file": "NAME.safetensors", "caption": "..."}, ...]}

Each file holds ``latents`` [F', C, h, w] (scaled VAE latents of the clip's ``frames`` frames,
F' = (frames - 1) / 4 + 1, h = height / 8), ``image_latents`` [draws, 1, C, h, w] (noisy
first-frame latents) and ``prompt_embeds`` [L, D] (the caption's T5 embedding): what
``--pre-encode`` caches. A run with ``--pre-encode`` writes such a manifest next to its cache
(``<cache>/encoded_<key>.json``), so the clips can be trained on again, here or on another
machine, without loading the VAE and T5 or decoding a video.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_json
from ..errors import DimensionXError
from .data import BadRow, Clip, ClipList

MANIFEST = "encoded.json"
TENSOR_RANKS = {"latents": 4, "image_latents": 5, "prompt_embeds": 2}


def manifest_path(data: str | Path) -> Path | None:
    """The manifest ``--data`` names (a ``.json`` file, or a folder holding ``encoded.json``); None for video data."""
    path = Path(data)
    if path.is_file() and path.suffix.lower() == ".json":
        return path
    if path.is_dir() and (path / MANIFEST).is_file():
        return path / MANIFEST
    return None


def find_encoded(manifest: Path, frames: int) -> ClipList:
    """Reads and checks every entry of ``manifest`` (tensor names and ranks, latent frame count); raises if none is usable."""
    try:
        spec = json.loads(manifest.read_text())
        entries, size = spec["clips"], {k: int(spec[k]) for k in ("frames", "height", "width")}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DimensionXError(f"--data {manifest} is not a pre-encoded manifest ({type(exc).__name__}: {exc}); it needs "
                              '"frames", "height", "width" and "clips": [{"file", "caption"}] (see docs/train.md)') from None
    if size["frames"] != frames:
        raise DimensionXError(f"--data {manifest} was encoded at {size['frames']} frames but frames is {frames}: "
                              f"pass --frames {size['frames']}, or encode the clips again")
    root, clips, bad = manifest.parent, [], []
    for number, entry in enumerate(entries):
        file, caption = root / str(entry.get("file", "")), str(entry.get("caption", ""))
        reason = _check_file(file, (frames - 1) // 4 + 1) if entry.get("file") else "no file"
        if reason:
            bad.append(BadRow(f"clip {number}", str(entry.get("file", "")), reason))
        else:
            clips.append(Clip(file.resolve(), caption, frames))
    if not clips:
        raise DimensionXError(f"--data {manifest}: none of its {len(bad)} clips is usable "
                              f"({bad[0].reason if bad else 'the list is empty'}); encode the clips again")
    return ClipList(root, clips, bad, encoded=size)


def _check_file(file: Path, latent_frames: int) -> str | None:
    from safetensors import safe_open

    if not file.is_file():
        return f"file not found ({file})"
    try:
        with safe_open(str(file), "pt") as f:
            shapes = {name: f.get_slice(name).get_shape() for name in f.keys()}
    except Exception as exc:  # safetensors raises several types for damaged headers
        return f"unreadable safetensors file ({type(exc).__name__})"
    for name, rank in TENSOR_RANKS.items():
        if len(shapes.get(name, ())) != rank:
            return f"{name} missing or not of rank {rank}"
    if shapes["latents"][0] != latent_frames:
        return f"{shapes['latents'][0]} latent frames, expected {latent_frames}"
    return None


def check_size(clips: ClipList, height: int, width: int) -> None:
    """Pre-encoded clips must match the model's frame size (px)."""
    if clips.encoded and (clips.encoded["height"], clips.encoded["width"]) != (height, width):
        raise DimensionXError(f"--data {clips.root}: encoded at {clips.encoded['height']}x{clips.encoded['width']} px but the "
                              f"model makes {height}x{width}; encode the clips with this model")


def write_manifest(path: Path, files: list[Path], captions: list[str], frames: int, height: int, width: int) -> None:
    """``encoded.json`` listing ``files`` (relative to its folder) with their captions."""
    entries = [{"file": str(Path(f).relative_to(path.parent)), "caption": c} for f, c in zip(files, captions)]
    write_json({"frames": frames, "height": height, "width": width, "clips": entries}, path)
