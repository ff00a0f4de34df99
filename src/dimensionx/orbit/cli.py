"""``dimensionx orbit``."""

from __future__ import annotations

import argparse

from ..config import config_from_args, default_help
from .config import OrbitConfig

LOOP_FRAMES = 8  # --loop without a number: a 1 s fade at 8 fps


def register(commands) -> None:
    orbit = commands.add_parser(
        "orbit", help="image -> 145-frame 360-degree orbit video (the DimensionX orbit model)",
        description="Generate a 360-degree orbit around the scene of one photo with the DimensionX orbit model "
        "(converted once with `dimensionx convert-sat`): 145 frames at 320x480, the original sampler settings. "
        "Settings: OrbitConfig defaults, then --config (configs/orbit.yaml or a sidecar), then flags.")
    orbit.add_argument("image", nargs="?", help="input photo (png, jpg, webp, ...)")
    orbit.add_argument("--prompt", help="caption of the photo")
    orbit.add_argument("--model", help="folder from `dimensionx convert-sat`; `tiny-orbit` for the tiny random model")
    orbit.add_argument("--lora", help="a director LoRA file fused on top of the orbit model")
    orbit.add_argument("--lora-scale", type=float, help="multiplier of the LoRA's B@A (default 1/rank)")
    orbit.add_argument("--steps", type=int, help=default_help(OrbitConfig, "steps", "denoising steps"))
    orbit.add_argument("--guidance", type=float, help=default_help(OrbitConfig, "guidance", "classifier-free guidance scale, dynamic"))
    orbit.add_argument("--frames", type=int, help="frames: the model's own (145 for the orbit model) is the only count it makes")
    orbit.add_argument("--fps", type=int, help=default_help(OrbitConfig, "fps", "frames per second of the mp4"))
    orbit.add_argument("--seed", type=int, help=default_help(OrbitConfig, "seed", "noise seed"))
    orbit.add_argument("--fit", choices=["crop", "pad"], help=default_help(OrbitConfig, "fit", "fit the photo to 320x480 by centre crop or letterbox"))
    orbit.add_argument("--uncond", choices=["zero", "empty"], help=default_help(OrbitConfig, "uncond", "unguided text: zero embedding (as SAT) or the empty prompt's"))
    orbit.add_argument("--loop", dest="loop_frames", type=int, nargs="?", const=LOOP_FRAMES,
                       help=f"cross-fade the last N frames (default {LOOP_FRAMES}) into the first: the video loops without a jump")
    orbit.add_argument("--out", help="output mp4 (a folder with --batch); default outputs/<image>_orbit360.mp4")
    orbit.add_argument("--overwrite", action="store_true", default=None, help="replace existing outputs")
    orbit.add_argument("--batch", help="file of `image@@prompt` lines, one orbit each")
    orbit.add_argument("--device", help=default_help(OrbitConfig, "device", "auto, cuda, cuda:N or cpu"))
    orbit.add_argument("--dtype", help=default_help(OrbitConfig, "dtype", "auto (bf16 on CUDA, fp32 on CPU), bf16, fp16 or fp32"))
    orbit.add_argument("--mode", help=default_help(OrbitConfig, "mode", "exact, fast (FP8 + step cache) or lowmem (offload)"))
    orbit.add_argument("--gpus", type=int, help=default_help(OrbitConfig, "gpus", "2 = CFG-parallel over two GPUs; with --batch, N GPUs share the lines"))
    orbit.add_argument("--config", help="YAML preset (configs/orbit.yaml) or a JSON sidecar to reproduce")
    orbit.set_defaults(run=run_orbit)


def run_orbit(args: argparse.Namespace) -> int:
    from ..video.parallel import is_distributed, launch
    from .generate import generate_orbit

    config = config_from_args(OrbitConfig, args)
    if config.gpus > 1 and not is_distributed():
        return launch(args.argv, config.gpus, batch=bool(config.batch))
    return 1 if None in generate_orbit(config) else 0
