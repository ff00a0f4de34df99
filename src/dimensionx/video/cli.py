"""``dimensionx video`` and ``dimensionx motions``."""

from __future__ import annotations

import argparse
import dataclasses

from ..config import load_config
from ..models import DEFAULT_MODEL
from .config import VideoConfig
from .inputs import check_inputs


def register(commands) -> None:
    video = commands.add_parser(
        "video",
        help="image -> camera-controlled video with S-/T-Director LoRAs",
        description="Generate a video from one image with CogVideoX-5B-I2V and director LoRAs. "
        "Settings come from VideoConfig defaults, then --config (YAML preset or a JSON sidecar), then flags.",
    )
    video.add_argument("image", nargs="?", help="input photo (png, jpg, webp, ...)")
    video.add_argument("--prompt", help="caption of the photo")
    video.add_argument("--motion", help="director name, or weighted mix `orbit_left:0.7,z_zoom_in:0.3`; `none` = base model")
    video.add_argument("--lora", help="LoRA file: with --motion replaces that director's file; alone, an unnamed director")
    video.add_argument("--lora-dir", help="folder searched for director files by name")
    video.add_argument("--lora-scale", type=float, help="multiplier of B@A (default 1/rank, i.e. 1/256 for official files)")
    video.add_argument("--model", help=f"hub id or local diffusers folder (default {DEFAULT_MODEL}); `tiny` for the tiny random model")
    video.add_argument("--steps", type=int, help="denoising steps (default 50)")
    video.add_argument("--guidance", type=float, help="classifier-free guidance scale (default 6)")
    video.add_argument("--frames", type=int, help="number of frames, 4k+1 (default 49)")
    video.add_argument("--fps", type=int, help="frames per second of the mp4 (default 8)")
    video.add_argument("--seed", type=int, help="noise seed (default 42)")
    video.add_argument("--fit", choices=["crop", "pad"], help="fit the photo to the model's size by centre crop or letterbox")
    video.add_argument("--out", help="output mp4 (a folder with --batch)")
    video.add_argument("--overwrite", action="store_true", default=None, help="replace existing outputs")
    video.add_argument("--batch", help="file of `image@@prompt[@@motion]` lines, one video each")
    video.add_argument("--device", help="auto, cuda, cuda:N or cpu")
    video.add_argument("--dtype", help="auto, bf16, fp16 or fp32")
    video.add_argument("--mode", help="exact (default), fast (FP8 + step cache) or lowmem (offload); CPU runs eager")
    video.add_argument("--gpus", type=int, help="2 = CFG-parallel over two GPUs (torchrun underneath; CPU processes with --device cpu)")
    video.add_argument("--config", help="YAML preset (configs/) or a JSON sidecar to reproduce")
    video.set_defaults(run=run_video)

    motions = commands.add_parser("motions", help="list the directors and whether their files are found locally")
    motions.add_argument("--lora-dir", help="folder searched for director files by name")
    motions.add_argument("--model", help="`tiny` to list the tiny model's director files")
    motions.set_defaults(run=run_motions)


def video_config(args: argparse.Namespace) -> VideoConfig:
    names = [f.name for f in dataclasses.fields(VideoConfig)]
    return load_config(VideoConfig, args.config, {n: getattr(args, n, None) for n in names})


def run_video(args: argparse.Namespace) -> int:
    config = video_config(args)
    if not config.batch:
        check_inputs(config)  # a typo costs no torch import

    from .batch import generate_batch
    from .generator import generate_video
    from .parallel import is_distributed, launch

    if config.gpus > 1 and not is_distributed():
        return launch(args.argv, config.gpus)
    if config.batch:
        results = generate_batch(config)
        return 1 if any(r.error for r in results) else 0
    generate_video(config)
    return 0


def run_motions(args: argparse.Namespace) -> int:
    from ..directors.registry import DIRECTORS
    from ..directors.weights import find_director_file

    tiny = args.model == "tiny"
    rows = []
    for director in DIRECTORS.values():
        found = find_director_file(director, args.lora_dir, tiny=tiny, download=False)
        rows.append((director.name, director.kind, director.description, director.repo, str(found) if found else "not found locally"))
    width = max(len(r[0]) for r in rows)
    for name, kind, description, repo, where in rows:
        print(f"{name:<{width}}  {kind}  {description}\n{'':<{width}}     source: {repo}\n{'':<{width}}     file:   {where}")
    return 0
