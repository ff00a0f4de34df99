"""Synthetic training clips and a fixed-noise loss of the tiny model, shared by the training tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import torch

from dimensionx.videofiles import write_video

CAPTIONS = ("a red disc moving right on a blue gradient", "a red disc moving left on a green gradient")


def write_clips(root: Path, frames: int = 13) -> Path:
    """Two 96x64 clips of a disc crossing a gradient, and metadata.csv (the CSV form)."""
    (root / "videos").mkdir(parents=True, exist_ok=True)
    t = np.arange(frames)[:, None, None]
    y, x = np.mgrid[0:64, 0:96]
    for k, direction in enumerate((1, -1)):
        cx = 48 + direction * (4 * t - 2 * frames)
        disc = (x - cx) ** 2 + (y - 32) ** 2 < 150  # [T, 64, 96]
        gradient = np.broadcast_to(x / 96 * 255 if k == 0 else y / 64 * 255, disc.shape)
        rgb = np.stack([disc * 255, gradient * (k == 1), gradient * (k == 0)], -1).astype(np.uint8)
        write_video(rgb, root / "videos" / f"clip{k}.mp4", 8)
    rows = "".join(f"videos/clip{k}.mp4,{caption}\n" for k, caption in enumerate(CAPTIONS))
    (root / "metadata.csv").write_text("video,caption\n" + rows)
    return root


def write_cut_short(source: Path, path: Path, kept: float = 0.9) -> Path:
    """``source`` with its index moved to the front (``-movflags +faststart``, as clips made for the web are)
    and its file then cut to ``kept`` of its bytes: the header still declares every frame, the last ones are gone."""
    import imageio_ffmpeg

    whole = path.with_name(f"whole_{path.name}")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(source), "-c", "copy",
                    "-movflags", "+faststart", str(whole)], check=True)
    data = whole.read_bytes()
    whole.unlink()
    path.write_bytes(data[: int(len(data) * kept)])
    return path


@torch.no_grad()
def fixed_loss(pipe, data: Path, frames: int = 9, draws: int = 8) -> float:
    """Mean loss over both clips at fixed timesteps and noise (no dropout): a deterministic score."""
    from dimensionx.train.data import find_clips, load_clip
    from dimensionx.train.model import diffusion_loss, encode_text, encode_video, image_condition, rotary_embedding

    generator = torch.Generator().manual_seed(123)
    clips = find_clips(data, skip=0).clips
    height, width = pipe.transformer.config.sample_height * 8, pipe.transformer.config.sample_width * 8
    video = torch.stack([load_clip(c, frames, 0, height, width) for c in clips])  # [2, F, 3, H, W]
    latents = encode_video(pipe.vae, video, generator).repeat(draws, 1, 1, 1, 1)
    first = encode_video(pipe.vae, video[:, :1], generator).repeat(draws, 1, 1, 1, 1)
    prompt = encode_text(pipe.tokenizer, pipe.text_encoder, [c.caption for c in clips], 226).repeat(draws, 1, 1)
    timesteps = torch.linspace(0, 999, len(latents)).long()
    noise = torch.randn(latents.shape, generator=generator)
    rotary = rotary_embedding(pipe.transformer, height, width, latents.shape[1], latents.device)
    losses = diffusion_loss(pipe.transformer, pipe.scheduler.alphas_cumprod, latents,
                            image_condition(first, latents.shape[1]), prompt, timesteps, noise, rotary)
    return float(losses.mean())
