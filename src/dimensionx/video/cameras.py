"""Known cameras of a tiny-model video: the camera path its motion asks for, as ``transforms.json``.

The tiny random-weight model makes noise, which structure from motion cannot register, so the
3D and 4D stages could not run on it. What the video was asked to do is known, though: the
director's path (``directors/camera_paths.py``), or the orbit model's ring. ``generate_video``
writes those cameras beside a tiny model's video (``VIDEO.transforms.json``, named in the sidecar
under ``"cameras"``), and ``scene3d`` hands them to ``recon --cameras``. A real model's video gets
no such file: its cameras come from SfM, since a director only approximates its path.
"""

from __future__ import annotations

from pathlib import Path

from ..directors.camera_paths import MOTIONS, STATIC, CameraMotion, mixed_path, ring, transforms_json
from ..directors.registry import get_director
from .config import VideoConfig
from .inputs import parse_motion


def known_motion(config: VideoConfig) -> list[tuple[CameraMotion, float]] | None:
    """The weighted camera motions ``config`` asks for; None when unknown (a file given by --lora alone)."""
    degrees = getattr(config, "orbit_degrees", None)  # OrbitConfig: the ring is in the orbit model's weights
    if degrees is not None:
        return [(ring(degrees), 1.0)]
    if config.motion in (None, "none"):
        return None if config.lora else [(STATIC, 1.0)]
    if config.lora:  # --lora replaces the director's file: its path is the file's, not the director's
        return None
    motions = []
    for name, weight in parse_motion(config.motion):
        motions.append((MOTIONS[name], weight) if get_director(name).kind == "S" else (STATIC, 1.0))
    return motions


def cameras_path(video: Path) -> Path:
    """``VIDEO.transforms.json`` beside ``VIDEO.mp4``."""
    return video.with_suffix(".transforms.json")


def known_cameras(config: VideoConfig, frames: int, width: int, height: int) -> dict | None:
    """``transforms.json`` of the ``frames`` cameras of ``config``'s motion (frames of ``width`` x ``height`` px),
    or None when the motion is unknown."""
    motions = known_motion(config)
    if motions is None:
        return None
    poses = mixed_path(motions, frames)  # [frames, 4, 4] camera-to-world, OpenCV axes
    data = transforms_json(poses, width, height)
    data["motion"] = "+".join(f"{m.name}:{w:g}" for m, w in motions)
    data["unit"] = "distance from the first camera to the scene centre"
    return data

