"""Seamless loops (``dimensionx orbit --loop``): the end of the video cross-fades into its first frame.

A 360-degree orbit ends close to where it started, but not exactly: played in a loop, the
last frame jumps to the first. With ``loop_frames = N`` the last N frames are blended
linearly towards frame 0, frame ``T - N + i`` (i = 0 .. N-1) getting weight ``(i + 1) / (N + 1)``
on frame 0. The jump from the last frame back to the first shrinks to ``1 / (N + 1)`` of what
it was, and is spread as equal steps over the fade; frames before the fade are untouched.
A pixel cross-fade shows both views faintly during the fade; it cannot make a wrong end
view right, so the closer the model's orbit comes back, the less it is seen.
"""

from __future__ import annotations

import numpy as np

from ..errors import DimensionXError


def check_loop(loop_frames: int, frames: int) -> None:
    if loop_frames < 0 or (loop_frames and loop_frames >= frames // 2):
        raise DimensionXError(
            f"--loop {loop_frames}: the fade needs 0 (off) to {max(frames // 2 - 1, 0)} frames of the {frames}-frame video (8 = 1 s at 8 fps)"
        )


def close_loop(frames: np.ndarray, loop_frames: int) -> np.ndarray:
    """``frames`` ([T, H, W, 3] uint8) with the last ``loop_frames`` faded into frame 0 (same shape and dtype)."""
    if loop_frames == 0:
        return frames
    weights = np.arange(1, loop_frames + 1, dtype=np.float64) / (loop_frames + 1)  # [N] weight of frame 0
    tail = frames[-loop_frames:].astype(np.float64)  # [N, H, W, 3]
    blended = (1 - weights[:, None, None, None]) * tail + weights[:, None, None, None] * frames[0].astype(np.float64)
    out = frames.copy()
    out[-loop_frames:] = np.clip(np.rint(blended), 0, 255).astype(frames.dtype)
    return out
