"""Chaining across stages: image -> video -> 3D scene (``dimensionx scene3d``).

Each stage runs through its public entry function; the files between them are the same
mp4 + sidecar that ``dimensionx video`` writes and ``dimensionx recon`` reads. ``scene3d``
takes every flag of ``video`` (the same definitions, video/cli.py) and every flag of ``recon``;
where both stages have a flag of the same name, the video's is spelled ``--video-NAME``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import os
import tempfile
from pathlib import Path

from .atomic import move_no_clobber, write_json
from .config import config_to_dict, load_config
from .errors import DimensionXError
from .recon.cli import add_recon_flags, recon_config
from .recon.config import ReconConfig
from .video.cameras import cameras_path
from .video.cli import add_video_flags, video_overrides
from .video.config import VideoConfig
from .videofiles import check_video_encoder

log = logging.getLogger(__name__)

# Video flags whose names recon also uses: scene3d spells them --video-frames, --video-seed, ...
VIDEO_PREFIXED = frozenset({"frames", "seed", "device", "fps"})
VIDEO_DEST = "video_"

SEEDS = """seeds: --video-seed N seeds the video's initial and per-step noise (a CPU generator: the same
video on every device; default 42). --seed N seeds the reconstruction (the random initial splats
with --cameras, the order of training frames; default 0), and also the video when --video-seed
is not given, as before."""


def register(commands) -> None:
    scene3d = commands.add_parser(
        "scene3d", help="image -> camera-controlled video -> 3D Gaussian scene, in one go",
        description="Generate an orbit-like video of IMAGE (dimensionx video, or dimensionx orbit with --orbit), then "
                    "reconstruct it (dimensionx recon). The video and its JSON sidecar are kept in the scene folder. "
                    "Every `dimensionx video` flag is accepted; --frames, --seed, --device, --fps and --config of the "
                    "video are --video-frames, --video-seed, --video-device, --video-fps and --video-config.",
        epilog=SEEDS, formatter_class=argparse.RawDescriptionHelpFormatter)
    scene3d.add_argument("image", help="input image")
    scene3d.add_argument("--orbit", action="store_true", help="a 360-degree orbit video (dimensionx orbit; --model: the converted orbit model)")
    add_video_flags(scene3d, prefixed=VIDEO_PREFIXED, dest_prefix=VIDEO_DEST)
    scene3d.add_argument("--video-config", help="YAML preset (configs/video.yaml, configs/orbit.yaml) or a video JSON sidecar")
    add_recon_flags(scene3d)
    scene3d.set_defaults(run=run_scene3d)


def scene_video_config(args: argparse.Namespace, out: Path) -> VideoConfig:
    """The video's settings: VideoConfig (OrbitConfig with --orbit) defaults, then --video-config, then the video flags."""
    from .orbit.config import OrbitConfig

    overrides = video_overrides(args, VIDEO_DEST)
    if overrides["seed"] is None:
        overrides["seed"] = args.seed
    cls = OrbitConfig if args.orbit else VideoConfig
    return load_config(cls, args.video_config, {**overrides, "image": args.image, "out": str(out), "overwrite": True})


def run_scene3d(args: argparse.Namespace) -> int:
    from .recon.pipeline import check_inputs, reconstruct

    config = recon_config(args, video="")
    check_video_encoder("the generated video")
    check_inputs(config, in_memory=True)  # the reconstruction's settings and --out, before minutes of video generation
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{Path(config.out).name}.video-", dir=Path(config.out).parent) as tmp:
        video = make_video(scene_video_config(args, Path(tmp) / "video.mp4"), "orbit" if args.orbit else "video")
        config = with_known_cameras(config, video)
        try:
            reconstruct(dataclasses.replace(config, video=str(video)), attach=sorted(Path(tmp).iterdir()))
        except DimensionXError as exc:  # keep the video: it cost minutes of GPU time
            kept = keep_video(video, Path(config.out))
            cameras = f" --cameras {cameras_path(kept)}" if cameras_path(kept).is_file() else ""
            raise DimensionXError(f"{str(exc).replace(str(video), str(kept))}. The generated video is kept as {kept}: "
                                  f"once fixed, run `dimensionx recon {kept}{cameras} --out {config.out}`") from None
    return 0


def with_known_cameras(config: ReconConfig, video: Path) -> ReconConfig:
    """``config`` with the video's known cameras (the tiny model's: its noise has nothing SfM can match)
    when its sidecar names them and no --cameras was given (a video without a sidecar, e.g. an upload: as given)."""
    sidecar = Path(video).with_suffix(".json")
    name = json.loads(sidecar.read_text()).get("cameras") if sidecar.is_file() else None
    if config.cameras or name is None:
        return config
    log.info("the tiny model's video is noise that SfM cannot register: reconstructing it from the known cameras "
             "of its motion (%s) instead", name)
    return dataclasses.replace(config, cameras=str(Path(video).with_name(name)))


def make_video(config: VideoConfig, command: str = "video") -> Path:
    """``dimensionx video`` (or ``orbit``) for ``config``: in this process, or with ``gpus`` > 1 under torchrun."""
    from .video.parallel import is_distributed, launch

    if config.gpus <= 1 or is_distributed():
        if command == "orbit":
            from .orbit.generate import generate_orbit

            (video,) = generate_orbit(config)
            return video
        from .video.generator import generate_video

        return generate_video(config)
    out = Path(config.out)
    settings = out.with_name("launch_settings.json")
    write_json({"config": config_to_dict(config)}, settings)
    code = launch([command, "--config", str(settings)], config.gpus)
    settings.unlink()
    if code != 0:
        raise DimensionXError(f"the video on {config.gpus} processes failed (exit code {code}; its error is printed above): "
                              "fix that, or generate on one GPU with --gpus 1")
    return out


def keep_video(video: Path, out: Path) -> Path:
    """Moves ``video``, its sidecar and its known cameras (if any) beside ``out`` as ``<out>.video.mp4`` / ``.json`` /
    ``.transforms.json`` (``<out>.video-2.mp4``, ... where those names are taken: an existing file is never
    replaced); returns the mp4."""
    sidecar_file = video.with_suffix(".json")
    sidecar = json.loads(sidecar_file.read_text())
    cameras = video.with_name(sidecar["cameras"]) if "cameras" in sidecar else None
    for n in itertools.count(1):
        kept = out.with_name(f"{out.name}.video{'' if n == 1 else f'-{n}'}.mp4")
        moves = [(video, kept), (sidecar_file, kept.with_suffix(".json"))] + ([(cameras, cameras_path(kept))] if cameras else [])
        if any(target.exists() for _, target in moves):
            continue
        if cameras:
            write_json({**sidecar, "cameras": cameras_path(kept).name}, sidecar_file)
        done = []
        try:
            for source, target in moves:
                move_no_clobber(source, target)
                done.append((source, target))
        except FileExistsError:
            for source, target in reversed(done):
                os.replace(target, source)
            continue
        return kept
