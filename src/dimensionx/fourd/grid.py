"""The M x K video grid of a 4D scene (paper, 4D: steps 1-5), rows = times, columns = views.

1. the T-Director makes a ``time_frames`` video of the photo (the scene moves, the camera stays);
2. ``times`` frames are taken from it, evenly spaced; the key row is the one with the most motion;
3. the S-Director makes the reference spatial video from the key frame;
4. every other row is a spatial video of its frame by identity-preserving denoising
   (:func:`.denoise.identity_preserving`) toward the reference;
5. ``loops`` rounds of refinement: SDEdit with the T-Director on each view's time sequence, then
   with the S-Director on each time's view sequence.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..video.config import VideoConfig
from .config import FourDConfig
from .denoise import denoise, encode, identity_preserving, initial_noise, sdedit, text_inputs
from .shard import NO_SHARD, Shard


@dataclass
class Grid:
    frames: np.ndarray  # [M, K, H, W, 3] uint8: row m = views at time m
    times: list[int]  # [M] frame index of each row in the T-Director video
    key: int  # row of the key frame, whose spatial video is the reference


@dataclass
class Clock:
    """Seconds per kind of work, summed over a stage: where a 4D scene's minutes go."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def __call__(self, name: str):
        sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)  # CUDA work is asynchronous
        sync()
        start = time.perf_counter()
        yield
        sync()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


def pick_times(n_frames: int, m: int) -> list[int]:
    """``m`` frame indices evenly spaced over ``n_frames``, first and last included."""
    return [int(i) for i in np.round(np.linspace(0, n_frames - 1, m))]


def time_values(times: list[int], time_frames: int) -> list[float]:
    """Frame indices of the T-Director video -> times in [0, 1]."""
    return [t / (time_frames - 1) for t in times]


def motion_scores(frames: np.ndarray) -> np.ndarray:
    """[T, H, W, 3] uint8 -> [T] mean absolute difference (0-1 colour) of each frame from the per-pixel
    temporal median: the area of what moved times how far its colour changed, a flow-free stand-in for
    the paper's dynamic-mask size and flow magnitude."""
    x = frames.astype(np.float32) / 255.0
    return np.abs(x - np.median(x, axis=0, keepdims=True)).mean(axis=(1, 2, 3))


def video_config(config: FourDConfig, frames: int, seed: int) -> VideoConfig:
    return VideoConfig(model=config.model, steps=config.steps, guidance=config.guidance, frames=frames, seed=seed,
                       device=config.device, dtype=config.dtype, mode=config.mode, lora_dir=config.lora_dir)


def use_director(generator, name: str, config: FourDConfig, clock: Clock) -> None:
    """Fuses director ``name`` alone (swapping out the previous one)."""
    from ..video.generator import resolve_directors

    choice = resolve_directors(dataclasses.replace(video_config(config, 1, 0), motion=name), tiny=generator.model.tiny)
    with clock("directors"):
        generator.set_directors(choice, None)


def generate_temporal(generator, photo: Image.Image, config: FourDConfig, clock: Clock | None = None) -> np.ndarray:
    """Step 1: [time_frames, H, W, 3] uint8, the T-Director video of ``photo`` (fitted to the model's size)."""
    clock = clock or Clock()
    use_director(generator, config.time_director, config, clock)
    with clock("video"):
        frames, _ = generator(photo, config.prompt, video_config(config, config.time_frames, config.seed))
    return frames


def batches(items: list[int], config: FourDConfig) -> list[list[int]]:
    """``items`` in groups denoised together: ``config.batch`` at a time, one at a time in lowmem mode."""
    size = 1 if config.mode == "lowmem" else config.batch
    return [items[i:i + size] for i in range(0, len(items), size)]


def generate_rows(generator, temporal: np.ndarray, config: FourDConfig, clock: Clock | None = None,
                  shard: Shard = NO_SHARD) -> Grid:
    """Steps 2-4: the unrefined grid from the T-Director video (this process's ``shard`` of the rows, gathered)."""
    clock = clock or Clock()
    times = pick_times(len(temporal), config.times)
    key = int(np.argmax(motion_scores(temporal[times])))
    use_director(generator, config.space_director, config, clock)
    spatial = video_config(config, config.views, config.seed + 1)
    with clock("text"):
        text = text_inputs(generator, config.prompt)
    with clock("denoise"):
        reference = denoise(generator, Image.fromarray(temporal[times[key]]), text, spatial,
                            initial_noise(generator, config.views, config.seed + 1), 0,
                            torch.Generator("cpu").manual_seed(config.seed + 1))  # [1, F, C, h, w]
    shared_noise = initial_noise(generator, config.views, config.seed + 2)  # the eps of every row
    others = [m for m in range(len(times)) if m != key]
    rows: list[np.ndarray | None] = [None] * len(times)
    with clock("vae_decode"):
        rows[key] = generator.decode(reference)
    made = {}
    for group in tqdm(shard.mine(batches(others, config)), desc="spatial videos", unit="batch"):
        with clock("denoise"):
            latents = identity_preserving(generator, [Image.fromarray(temporal[times[m]]) for m in group], text, spatial,
                                          reference, shared_noise, config.ip_start, config.ip_strength, config.ip_until)
        with clock("vae_decode"):
            for m, video in zip(group, latents):
                made[m] = generator.decode(video[None])
    for m, video in shard.gather(made).items():
        rows[m] = video
    return Grid(np.stack(rows), times, key)


def refine(generator, grid: Grid, config: FourDConfig, clock: Clock | None = None, done: int = 0,
           after_pass: Callable[[int, np.ndarray], None] | None = None, shard: Shard = NO_SHARD) -> Grid:
    """Step 5: ``config.loops`` rounds of SDEdit, T-Director over each column, then S-Director over each row.

    A round is two passes; ``done`` passes of ``grid`` are already refined (a resumed run) and
    ``after_pass(n, frames)`` sees the grid after each pass ``n`` (1-based), to save it. Each pass
    draws its own seeded noise, so a grid resumed between passes is the grid of a run that never stopped.
    With ``shard`` this process refines its share of each pass's groups and gathers the others'.
    """
    clock = clock or Clock()
    frames = grid.frames.copy()
    M, K = frames.shape[:2]
    with clock("text"):
        text = text_inputs(generator, config.prompt)
    for n in tqdm(range(done, 2 * config.loops), desc="refinement passes", unit="pass", initial=done, total=2 * config.loops):
        loop, of_views = divmod(n, 2)
        refined = {}  # column k (over time) or row m (over views) -> its refined video
        if not of_views:
            use_director(generator, config.time_director, config, clock)
            over_time = video_config(config, M, config.seed + 10 + 2 * loop)
            for group in shard.mine(batches(list(range(K)), config)):
                refined.update(zip(group, sdedit_videos(generator, frames[:, group].swapaxes(0, 1), text, config, over_time, clock)))
            for k, video in shard.gather(refined).items():
                frames[:, k] = video
        else:
            use_director(generator, config.space_director, config, clock)
            over_views = video_config(config, K, config.seed + 11 + 2 * loop)
            for group in shard.mine(batches(list(range(M)), config)):
                refined.update(zip(group, sdedit_videos(generator, frames[group], text, config, over_views, clock)))
            for m, video in shard.gather(refined).items():
                frames[m] = video
        if after_pass is not None:
            after_pass(n + 1, frames)
    return dataclasses.replace(grid, frames=frames)


def sdedit_videos(generator, videos: np.ndarray, text: dict, config: FourDConfig, video: VideoConfig, clock: Clock) -> np.ndarray:
    """[B, T, H, W, 3] uint8 videos refined together by SDEdit at ``config.refine_strength``, each with its first frame as the image."""
    if config.refine_strength <= 0:
        return videos
    with clock("refine_vae_encode"):
        clean = torch.cat([encode(generator, frames) for frames in videos])  # [B, F, C, h, w]
    with clock("refine_denoise"):
        latents = sdedit(generator, [Image.fromarray(frames[0]) for frames in videos], text, video, clean, config.refine_strength)
    with clock("refine_vae_decode"):
        return np.stack([generator.decode(one[None]) for one in latents])


def consistency(frames: np.ndarray) -> dict[str, float]:
    """Grid consistency, mean absolute differences in 0-1 colour over [M, K, H, W, 3] uint8 frames:
    ``time_step`` between consecutive times of a view, ``time_flicker`` the second difference along time
    (motion that changes direction every frame: flicker), ``view_flicker`` the same along views."""
    x = frames.astype(np.float32) / 255.0

    def second(a: np.ndarray, axis: int) -> float:
        return float(np.abs(np.diff(a, n=2, axis=axis)).mean()) if a.shape[axis] > 2 else 0.0

    return {
        "time_step": float(np.abs(np.diff(x, axis=0)).mean()) if len(x) > 1 else 0.0,
        "time_flicker": second(x, 0),
        "view_flicker": second(x, 1),
    }


def contact_sheet(frames: np.ndarray, width: int = 96) -> np.ndarray:
    """[M, K, H, W, 3] uint8 -> one [M h, K width, 3] uint8 image of thumbnails ``width`` px wide."""
    M, K, H, W = frames.shape[:4]
    height = max(1, round(H * width / W))
    thumbs = [[np.asarray(Image.fromarray(f).resize((width, height), Image.BILINEAR)) for f in row] for row in frames]
    return np.concatenate([np.concatenate(row, axis=1) for row in thumbs], axis=0)

