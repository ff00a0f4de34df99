"""``dimensionx convert-sat``: a SAT checkpoint -> a diffusers model folder (or a director LoRA file)."""

from __future__ import annotations

import argparse

from ..config import config_from_args, default_help
from .config import ConvertConfig


def register(commands) -> None:
    convert = commands.add_parser(
        "convert-sat", help="SAT/DeepSpeed CogVideoX checkpoint -> diffusers folder (or director LoRA file)",
        description="Convert a SAT checkpoint (folder with `latest`, or mp_rank_00_model_states.pt) into a diffusers "
        "transformer folder that `dimensionx orbit --model` loads; SAT LoRA tensors are merged at alpha/r, or with "
        "--lora-only written as a director file. Every tensor is placed or reported by name.")
    convert.add_argument("source", help="SAT checkpoint folder (holding `latest`) or the .pt file")
    convert.add_argument("--out", required=True, help="output folder (a .safetensors file with --lora-only)")
    convert.add_argument("--base", help=default_help(ConvertConfig, "base", "pipeline lending VAE, T5 and scheduler at load time"))
    convert.add_argument("--with-base", dest="with_base", help="local base pipeline folder: write a full pipeline folder")
    convert.add_argument("--sat-config", dest="sat_config", help="SAT model YAML (frames, latent size, LoRA alpha); default: the orbit model's")
    convert.add_argument("--lora-only", dest="lora_only", action="store_true", default=None, help="export the SAT LoRA as a director file")
    convert.add_argument("--trust-pickle", dest="trust_pickle", action="store_true", default=None,
                         help="allow torch.load to run code stored in the checkpoint (only for files you trust)")
    convert.add_argument("--overwrite", action="store_true", default=None, help="replace an existing --out")
    convert.set_defaults(run=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    import logging

    from .sat import convert_sat, export_sat_lora

    config = config_from_args(ConvertConfig, args)
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
