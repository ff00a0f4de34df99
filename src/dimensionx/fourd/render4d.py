"""Renders of a 4D scene: an orbit at a fixed time, a time-lapse at a fixed view, a spiral in space-time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation, Slerp

from ..errors import DimensionXError
from ..videofiles import write_video
from .fit import render_at
from .store import cameras_of, load_scene


def camera_path(viewmats: np.ndarray, n: int) -> np.ndarray:
    """[n, 4, 4] world-to-camera matrices through ``viewmats`` [K, 4, 4] in order: centres interpolated
    linearly, rotations by slerp."""
    c2w = np.linalg.inv(viewmats)  # [K, 4, 4]
    knots = np.arange(len(viewmats), dtype=np.float64)
    s = np.linspace(0.0, knots[-1], n)
    centers = np.stack([np.interp(s, knots, c2w[:, i, 3]) for i in range(3)], axis=1)  # [n, 3]
    rotations = Slerp(knots, Rotation.from_matrix(c2w[:, :3, :3]))(s).as_matrix() if len(knots) > 1 else np.repeat(c2w[:1, :3, :3], n, 0)
    path = np.tile(np.eye(4), (n, 1, 1))
    path[:, :3, :3], path[:, :3, 3] = rotations, centers
    return np.linalg.inv(path)


class SceneRenderer:
    """A loaded ``scene4d/`` folder that renders frames at any time from any camera."""

    def __init__(self, folder: Path, device: torch.device, background: tuple[float, float, float] = (0.0, 0.0, 0.0)):
        splats, self.field, self.info, transforms = load_scene(folder)
        self.device = device
        self.splats = {k: v.to(device) for k, v in splats.items()}
        self.field = self.field.to(device)
        self.viewmats, self.Ks, self.width, self.height = cameras_of(transforms)
        self.background = torch.tensor(background, dtype=torch.float32, device=device)

    @torch.no_grad()
    def frames(self, times: np.ndarray, viewmats: np.ndarray) -> np.ndarray:
        """[T, H, W, 3] uint8: frame i at time ``times[i]`` (in [0, 1]) from ``viewmats[i]`` [T, 4, 4]."""
        K = torch.as_tensor(self.Ks[0], dtype=torch.float32, device=self.device)[None]
        out = []
        for t, viewmat in zip(times, viewmats):
            image = render_at(self.splats, self.field, float(t), torch.as_tensor(viewmat, dtype=torch.float32, device=self.device)[None],
                              K, self.width, self.height, self.background)[0][0]
            out.append((image.clamp(0, 1) * 255 + 0.5).byte().cpu().numpy())
        return np.stack(out)

    def orbit(self, t: float, n: int) -> np.ndarray:
        if not 0 <= t <= 1:
            raise DimensionXError(f"time {t}: times run from 0 (the grid's first row) to 1 (its last), a fraction 0-1")
        return self.frames(np.full(n, t), camera_path(self.viewmats, n))

    def timelapse(self, view: int, n: int) -> np.ndarray:
        if not 0 <= view < len(self.viewmats):
            raise DimensionXError(f"--view {view}: the scene has views 0..{len(self.viewmats) - 1}")
        return self.frames(np.linspace(0, 1, n), np.repeat(self.viewmats[view:view + 1], n, 0))

    def spiral(self, n: int) -> np.ndarray:
        """Time runs 0 -> 1 while the camera goes along the views and back."""
        path = camera_path(self.viewmats, n // 2 + 1)
        return self.frames(np.linspace(0, 1, n), np.concatenate([path, path[::-1][1:]])[:n])


def write_renders(renderer: SceneRenderer, folder: Path, frames: int, fps: int, time: float = 0.5, view: int = 0) -> list[str]:
    """The three standard renders into ``folder``; returns their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    videos = {f"orbit_t{time:.2f}.mp4": renderer.orbit(time, frames), f"timelapse_view{view:02d}.mp4": renderer.timelapse(view, frames),
              "spiral.mp4": renderer.spiral(frames)}
    for name, video in videos.items():
        write_video(video, folder / name, fps)
    return list(videos)
