"""Frames for reconstruction: hard-cut detection, shot choice, uniform sampling, downscaling."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DimensionXError
from ..media import read_frames
from .config import ReconConfig

log = logging.getLogger(__name__)

THUMBNAIL_PX = 32  # side of the square thumbnails compared by the cut detector
DUPLICATE_CHANGE = 0.01  # mean abs change below which a frame repeats the previous one


@dataclass
class Footage:
    """The frames chosen for reconstruction and where they came from."""

    images: np.ndarray  # [T, H, W, 3] uint8, downscaled
    source_ids: np.ndarray  # [T] index of each frame in the input video
    frames_total: int  # frames in the input video
    shots: list[range]  # every shot found in the input, in frame indices
    shot: int  # index into ``shots`` of the reconstructed shot


def load_footage(config: ReconConfig) -> Footage:
    """Reads ``config.video``, keeps one shot, samples ``config.frames`` frames and downscales them."""
    video, _ = read_frames(config.video)  # [T, H, W, 3]
    if len(video) < 3:
        raise DimensionXError(f"{config.video} has {len(video)} frame(s): reconstruction needs at least 3 views")
    shots = split_shots(len(video), find_cuts(video, config))
    shot = choose_shot(shots, config.shot, config.video)
    ids = sample_ids(shots[shot], config.frames)
    return Footage(downscale(video[ids], config.max_size), ids, len(video), shots, shot)


def thumbnails(video: np.ndarray, px: int = THUMBNAIL_PX) -> torch.Tensor:
    """[T, H, W, 3] uint8 -> [T, 3 * px * px] float in [0, 1]."""
    return resize(video, (px, px)).flatten(1) / 255.0


def resize(images: np.ndarray, size: tuple[int, int], chunk: int = 8) -> torch.Tensor:
    """[T, H, W, 3] uint8 -> [T, 3, h, w] float in [0, 255], antialiased, a few frames at a time."""
    out = []
    for start in range(0, len(images), chunk):
        x = torch.from_numpy(images[start : start + chunk]).permute(0, 3, 1, 2).float()  # [t, 3, H, W]
        out.append(F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False))
    return torch.cat(out)


def find_cuts(video: np.ndarray, config: ReconConfig) -> list[int]:
    """Frame indices that start a new shot after a hard cut.

    Repeated frames (frame-interpolated or paused video) are collapsed first. A jump is a change
    between consecutive distinct frames that is ``cut_ratio`` times larger than the mean change
    of the ``cut_window`` distinct frames on each side, and at least ``cut_min_change``. A jump
    is a cut only if it brings a view the shot has not just shown: the new frame must differ from
    each of the ``cut_memory`` distinct frames before it by at least ``cut_novelty`` times the
    jump. A generated video whose background pops back to an earlier state jumps to a view
    close to one it showed a few frames before, and stays one shot.
    """
    thumbs = thumbnails(video)  # [T, D]
    distinct = [0]
    for t in range(1, len(thumbs)):
        if (thumbs[t] - thumbs[distinct[-1]]).abs().mean() > DUPLICATE_CHANGE:
            distinct.append(t)
    kept = thumbs[distinct]  # [K, D]
    change = (kept[1:] - kept[:-1]).abs().mean(dim=1).numpy()  # [K - 1]; change[i]: distinct i -> i + 1
    cuts = []
    for i, c in enumerate(change):
        lo, hi = max(0, i - config.cut_window), min(len(change), i + config.cut_window + 1)
        around = np.delete(change[lo:hi], i - lo)
        if c < config.cut_min_change or (len(around) > 0 and c <= config.cut_ratio * around.mean()):
            continue
        recent = kept[max(0, i + 1 - config.cut_memory) : i + 1]  # [M, D], the frames before the jump
        novelty = float((recent - kept[i + 1]).abs().mean(dim=1).min())
        if novelty >= config.cut_novelty * c:
            cuts.append(distinct[i + 1])
    return cuts


def split_shots(n_frames: int, cuts: list[int]) -> list[range]:
    bounds = [0, *cuts, n_frames]
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def choose_shot(shots: list[range], shot: int | None, video: str) -> int:
    """The requested shot, or the longest one; says which was taken when there are several."""
    if shot is not None and not 0 <= shot < len(shots):
        raise DimensionXError(
            f"--shot {shot} does not exist: {video} has {len(shots)} shot(s) "
            f"({_describe(shots)}); pass --shot between 0 and {len(shots) - 1}"
        )
    chosen = shot if shot is not None else max(range(len(shots)), key=lambda k: len(shots[k]))
    if len(shots) > 1:
        log.info(
            "%s has %d shots separated by hard cuts (%s): reconstructing shot %d (frames %d-%d)%s",
            video, len(shots), _describe(shots), chosen, shots[chosen].start, shots[chosen].stop - 1,
            "" if shot is not None else ", the longest; pass --shot K for another",
        )
    if len(shots[chosen]) < 3:
        raise DimensionXError(
            f"shot {chosen} of {video} has {len(shots[chosen])} frame(s), too few to reconstruct: "
            f"choose a longer shot with --shot ({_describe(shots)})"
        )
    return chosen


def _describe(shots: list[range]) -> str:
    return ", ".join(f"{k}: frames {s.start}-{s.stop - 1}" for k, s in enumerate(shots))


def sample_ids(shot: range, n: int) -> np.ndarray:
    """``n`` frame indices spread uniformly over ``shot`` (every frame if it has fewer)."""
    if n < 3:
        raise DimensionXError(f"--frames {n} is too few: reconstruction needs at least 3 frames")
    if len(shot) <= n:
        return np.arange(shot.start, shot.stop)
    return np.unique(np.linspace(shot.start, shot.stop - 1, n).round().astype(np.int64))


def downscale(images: np.ndarray, max_size: int) -> np.ndarray:
    """[T, H, W, 3] uint8 -> same, with the longest side at most ``max_size`` px."""
    h, w = images.shape[1:3]
    if max_size <= 0 or max(h, w) <= max_size:
        return images
    scale = max_size / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return resize(images, size).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
