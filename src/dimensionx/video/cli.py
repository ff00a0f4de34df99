"""``dimensionx video`` and ``dimensionx motions``."""

from __future__ import annotations

import argparse
import dataclasses

from ..config import default_help, load_config
from .config import VideoConfig
from .inputs import check_gpus, check_inputs


def register(commands) -> None:
    video = commands.add_parser(
        "video",
        help="image -> camera-controlled video with S-/T-Director LoRAs",
        description="Generate a video from one image with CogVideoX-5B-I2V and director LoRAs. "
        "Settings come from VideoConfig defaults, then --config (YAML preset or a JSON sidecar), then flags.",
    )
    video.add_argument("image", nargs="?", help="input photo (png, jpg, webp, ...)")
    add_video_flags(video)
    video.add_argument("--out", help="output mp4 (a folder with --batch)")
    video.add_argument("--overwrite", action="store_true", default=None, help="replace existing outputs")
    video.add_argument("--batch", help="file of `image@@prompt[@@motion]` lines, one video each; run again, it keeps "
                       "the videos already made")
    video.add_argument("--config", help="YAML preset (configs/) or a JSON sidecar to reproduce")
    video.set_defaults(run=run_video)

    motions = commands.add_parser("motions", help="list the directors and whether their files are found locally")
    motions.add_argument("--lora-dir", help="folder searched for director files by name")
    motions.add_argument("--model", help="`tiny` to list the tiny model's director files")
    motions.set_defaults(run=run_motions)


# VideoConfig field -> (flag, argparse keywords): the flags of `video`, shared with `scene3d`.
VIDEO_FLAGS = {
    "prompt": ("--prompt", dict(help="caption of the photo")),
    "motion": ("--motion", dict(help="director name, or weighted mix `orbit_left:0.7,z_zoom_in:0.3`; `none` = base model")),
    "then": ("--then", dict(help="directors from --switch-step on (name or mix): e.g. --motion orbit_left --then time")),
    "switch_step": ("--switch-step", dict(type=int, help="first denoising step (0-based) directed by --then")),
    "lora_mode": ("--lora-mode", dict(choices=["auto", "fused", "adapters"],
                                      help=default_help(VideoConfig, "lora_mode", "fused: LoRAs baked into the weights; "
                                                        "adapters: peft adapters, switchable per step; auto: fused for one "
                                                        "set, adapters with --then"))),
    "lora": ("--lora", dict(help="LoRA file: with --motion replaces that director's file; alone, an unnamed director")),
    "lora_dir": ("--lora-dir", dict(help="folder searched for director files by name")),
    "lora_scale": ("--lora-scale", dict(type=float, help="multiplier of B@A (default 1/rank, i.e. 1/256 for official files)")),
    "model": ("--model", dict(help=default_help(VideoConfig, "model", "hub id or local diffusers folder; `tiny` for the tiny random model"))),
    "steps": ("--steps", dict(type=int, help=default_help(VideoConfig, "steps", "denoising steps"))),
    "guidance": ("--guidance", dict(type=float, help=default_help(VideoConfig, "guidance", "classifier-free guidance scale"))),
    "frames": ("--frames", dict(type=int, help=default_help(VideoConfig, "frames", "number of frames, 4k+1"))),
    "fps": ("--fps", dict(type=int, help=default_help(VideoConfig, "fps", "frames per second of the mp4"))),
    "seed": ("--seed", dict(type=int, help=default_help(VideoConfig, "seed", "noise seed"))),
    "fit": ("--fit", dict(choices=["crop", "pad"], help=default_help(VideoConfig, "fit", "fit the photo to the model's size by centre crop or letterbox"))),
    "device": ("--device", dict(help=default_help(VideoConfig, "device", "auto, cuda, cuda:N or cpu"))),
    "dtype": ("--dtype", dict(help=default_help(VideoConfig, "dtype", "auto (bf16 on CUDA, fp32 on CPU), bf16, fp16 or fp32"))),
    "mode": ("--mode", dict(help=default_help(VideoConfig, "mode", "exact, fast (FP8 + step cache) or lowmem (offload); CPU runs eager"))),
    "gpus": ("--gpus", dict(type=int, help=default_help(VideoConfig, "gpus", "2 = CFG-parallel over two GPUs; with --batch, N GPUs "
                                                       "share the lines, one whole video each (torchrun underneath; CPU "
                                                       "processes with --device cpu)"))),
}


def add_video_flags(parser: argparse.ArgumentParser, prefixed: frozenset[str] = frozenset(), dest_prefix: str = "") -> None:
    """Adds the VIDEO_FLAGS; fields in ``prefixed`` get a ``--video-`` flag (``--frames`` -> ``--video-frames``)."""
    for field, (flag, keywords) in VIDEO_FLAGS.items():
        name = "--video-" + flag[2:] if field in prefixed else flag
        metavar = None if "choices" in keywords else field.upper()
        parser.add_argument(name, dest=dest_prefix + field, metavar=metavar, **keywords)


def video_overrides(args: argparse.Namespace, dest_prefix: str = "") -> dict:
    """The VideoConfig values given as flags (None where a flag was not given)."""
    return {f.name: getattr(args, dest_prefix + f.name, None) for f in dataclasses.fields(VideoConfig)}


def video_config(args: argparse.Namespace) -> VideoConfig:
    return load_config(VideoConfig, args.config, video_overrides(args))


def run_video(args: argparse.Namespace) -> int:
    config = video_config(args)
    if config.batch:  # each line is checked as it comes; the lines are shared over --gpus
        check_gpus(config.gpus, batch=True)
    else:
        check_inputs(config)  # a typo costs no torch import

    from .batch import generate_batch, read_batch
    from .generator import generate_video
    from .parallel import check_visible_gpus, is_distributed, is_main_process, launch

    if config.gpus > 1 and not is_distributed():
        if config.batch:
            read_batch(config)  # a typo costs no processes
        check_visible_gpus(config.gpus, config.device)
        return launch(args.argv, config.gpus, batch=bool(config.batch))
    if config.batch:  # with --gpus N: this rank's share of the lines; rank 0 reports the run
        results = generate_batch(config)
        return 1 if is_main_process() and any(r.error for r in results) else 0
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
