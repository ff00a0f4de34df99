"""``dimensionx orbit`` and ``dimensionx convert-sat``."""

from __future__ import annotations

import argparse
import dataclasses

from ..config import load_config
from .config import ConvertConfig, OrbitConfig

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
    orbit.add_argument("--steps", type=int, help="denoising steps (default 50)")
    orbit.add_argument("--guidance", type=float, help="classifier-free guidance scale (default 6, dynamic)")
    orbit.add_argument("--frames", type=int, help="frames: the model's own (145 for the orbit model) is the only count it makes")
    orbit.add_argument("--fps", type=int, help="frames per second of the mp4 (default 8)")
    orbit.add_argument("--seed", type=int, help="noise seed (default 42)")
    orbit.add_argument("--fit", choices=["crop", "pad"], help="fit the photo to 320x480 by centre crop or letterbox")
    orbit.add_argument("--uncond", choices=["zero", "empty"], help="unguided text: zero embedding (default, as SAT) or the empty prompt's")
    orbit.add_argument("--loop", dest="loop_frames", type=int, nargs="?", const=LOOP_FRAMES,
                       help=f"cross-fade the last N frames (default {LOOP_FRAMES}) into the first: the video loops without a jump")
    orbit.add_argument("--out", help="output mp4 (a folder with --batch); default outputs/<image>_orbit360.mp4")
    orbit.add_argument("--overwrite", action="store_true", default=None, help="replace existing outputs")
    orbit.add_argument("--batch", help="file of `image@@prompt` lines, one orbit each")
    orbit.add_argument("--device", help="auto, cuda, cuda:N or cpu")
    orbit.add_argument("--dtype", help="auto, bf16, fp16 or fp32")
    orbit.add_argument("--mode", help="exact (default), fast (FP8 + step cache) or lowmem (offload)")
    orbit.add_argument("--gpus", type=int, help="2 = CFG-parallel over two GPUs")
    orbit.add_argument("--config", help="YAML preset (configs/orbit.yaml) or a JSON sidecar to reproduce")
    orbit.set_defaults(run=run_orbit)

    convert = commands.add_parser(
        "convert-sat", help="SAT/DeepSpeed CogVideoX checkpoint -> diffusers folder (or director LoRA file)",
        description="Convert a SAT checkpoint (folder with `latest`, or mp_rank_00_model_states.pt) into a diffusers "
        "transformer folder that `dimensionx orbit --model` loads; SAT LoRA tensors are merged at alpha/r, or with "
        "--lora-only written as a director file. Every tensor is placed or reported by name.")
    convert.add_argument("source", help="SAT checkpoint folder (holding `latest`) or the .pt file")
    convert.add_argument("--out", required=True, help="output folder (a .safetensors file with --lora-only)")
    convert.add_argument("--base", help="pipeline lending VAE, T5 and scheduler at load time (default THUDM/CogVideoX-5b-I2V)")
    convert.add_argument("--with-base", dest="with_base", help="local base pipeline folder: write a full pipeline folder")
    convert.add_argument("--sat-config", dest="sat_config", help="SAT model YAML (frames, latent size, LoRA alpha); default: the orbit model's")
    convert.add_argument("--lora-only", dest="lora_only", action="store_true", default=None, help="export the SAT LoRA as a director file")
    convert.add_argument("--trust-pickle", dest="trust_pickle", action="store_true", default=None,
                         help="allow torch.load to run code stored in the checkpoint (only for files you trust)")
    convert.add_argument("--overwrite", action="store_true", default=None, help="replace an existing --out")
    convert.set_defaults(run=run_convert)


def from_flags(cls, args: argparse.Namespace, path: str | None = None):
    """``cls`` from its defaults, the ``path`` file, then the flags the user gave (unset flags are None)."""
    return load_config(cls, path, {f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls)})


def run_orbit(args: argparse.Namespace) -> int:
    from ..video.parallel import is_distributed, launch
    from .generate import generate_orbit

    config = from_flags(OrbitConfig, args, args.config)
    if config.gpus > 1 and not is_distributed():
        return launch(args.argv, config.gpus)
    return 1 if None in generate_orbit(config) else 0


def run_convert(args: argparse.Namespace) -> int:
    import logging

    from ..models.sat import convert_sat, export_sat_lora

    config = from_flags(ConvertConfig, args)
    log = logging.getLogger(__name__)
    if config.lora_only:
        report = export_sat_lora(config.source, config.out, config.sat_config, config.trust_pickle, config.overwrite)
        log.info("wrote %s: %d LoRA tensors of rank %d from %s", config.out, report["tensors"], report["rank"], report["source"])
        return 0
    report = convert_sat(config.source, config.out, base=config.base, with_base=config.with_base, sat_config=config.sat_config,
                         trust_pickle=config.trust_pickle, overwrite=config.overwrite)
    arch = report["architecture"]
    log.info("wrote %s: %d layers, %d frames at %dx%d latents, %d tensors%s; %d skipped (see conversion.json)",
             config.out, arch["num_layers"], arch["sample_frames"], arch["sample_height"], arch["sample_width"],
             report["tensors_converted"], ", SAT LoRA merged" if report["lora"]["merged"] else "", len(report["skipped"]))
    return 0
