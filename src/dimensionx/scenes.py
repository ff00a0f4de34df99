"""Chaining across stages: image -> video -> 3D scene (``dimensionx scene3d``).

Each stage runs through its public entry function; the files between them are the same
mp4 + sidecar that ``dimensionx video`` writes and ``dimensionx recon`` reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from pathlib import Path

from .config import load_config
from .errors import DimensionXError
from .media import check_output_dir
from .recon.cli import add_recon_flags, recon_config
from .video.config import VideoConfig


def register(commands) -> None:
    scene3d = commands.add_parser(
        "scene3d", help="image -> camera-controlled video -> 3D Gaussian scene, in one go",
        description="Generate an orbit-like video of IMAGE (dimensionx video), then reconstruct it (dimensionx recon). "
                    "The video and its JSON sidecar are kept in the scene folder.")
    scene3d.add_argument("image", help="input image")
    scene3d.add_argument("--motion", help="camera motion of the video, e.g. orbit_left (or --orbit)")
    scene3d.add_argument("--orbit", action="store_true", help="a 360-degree orbit video (dimensionx orbit; --model: the converted orbit model)")
    scene3d.add_argument("--prompt", help="text prompt of the video")
    scene3d.add_argument("--model", help='video model: a folder or hub id, or "tiny" (random weights, for tests)')
    scene3d.add_argument("--steps", type=int, help="video denoising steps")
    scene3d.add_argument("--video-frames", type=int, help="frames of the generated video")
    add_recon_flags(scene3d)
    scene3d.set_defaults(run=run_scene3d)


def run_scene3d(args: argparse.Namespace) -> int:
    from .recon.pipeline import reconstruct
    from .video.generator import generate_video

    config = recon_config(args, video="")
    check_output_dir(config.out, config.overwrite)  # before minutes of video generation
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{Path(config.out).name}.video-", dir=Path(config.out).parent) as tmp:
        video = _orbit_video(args, Path(tmp)) if args.orbit else generate_video(load_config(VideoConfig, None, {
            "image": args.image, "motion": args.motion, "prompt": args.prompt, "model": args.model,
            "steps": args.steps, "frames": args.video_frames, "seed": args.seed,
            "out": str(Path(tmp) / "video.mp4"), "overwrite": True,
        }))
        try:
            reconstruct(dataclasses.replace(config, video=str(video)), attach=sorted(Path(tmp).iterdir()))
        except DimensionXError as exc:  # keep the video: it cost minutes of GPU time
            kept = keep_video(video, Path(config.out))
            raise DimensionXError(f"{str(exc).replace(str(video), str(kept))}. The generated video is kept as {kept}: "
                                  f"once fixed, run `dimensionx recon {kept} --out {config.out}`") from None
    return 0


def _orbit_video(args: argparse.Namespace, folder: Path) -> Path:
    from .orbit.config import OrbitConfig
    from .orbit.generate import generate_orbit

    (video,) = generate_orbit(load_config(OrbitConfig, None, {
        "image": args.image, "prompt": args.prompt, "model": args.model, "steps": args.steps, "frames": args.video_frames,
        "seed": args.seed, "out": str(folder / "video.mp4"), "overwrite": True,
    }))
    return video


def keep_video(video: Path, out: Path) -> Path:
    """Moves ``video`` and its sidecar beside ``out`` as ``<out>.video.mp4`` / ``.json``; returns the mp4."""
    kept = out.with_name(f"{out.name}.video.mp4")
    os.replace(video.with_suffix(".json"), kept.with_suffix(".json"))
    os.replace(video, kept)
    return kept
