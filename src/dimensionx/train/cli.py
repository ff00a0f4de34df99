"""``dimensionx train`` and ``dimensionx make-dataset``."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..config import default_help, load_config
from .config import DatasetConfig, TrainConfig


def register(commands) -> None:
    train = commands.add_parser(
        "train",
        help="teach the model a camera motion: LoRA fine-tuning of CogVideoX-5B-I2V (accelerate + peft)",
        description="Train a director LoRA. Settings come from TrainConfig defaults (the original S-Director recipe), "
        "then --config (YAML in configs/train/), then flags. Multi-GPU: `accelerate launch -m dimensionx.cli train ...` "
        "or finetune_multi_gpus.sh.",
    )
    train.add_argument("--config", help="YAML preset (configs/train/s_director.yaml) or a run's train_config.json")
    train.add_argument("--model", help=default_help(TrainConfig, "model", "hub id or local diffusers folder; `tiny` for the tiny random model"))
    train.add_argument("--data", help="CSV file (video,caption), folder with metadata.csv, or folder of videos/ + captions/")
    train.add_argument("--output-dir", help="run folder: train_log.jsonl, checkpoints/, pytorch_lora_weights.safetensors")
    train.add_argument("--max-steps", type=int, help=default_help(TrainConfig, "max_steps", "optimiser steps"))
    train.add_argument("--resume", nargs="?", const="latest", help="continue from a checkpoint folder, or `latest` (the default value)")
    train.add_argument("--overwrite", action="store_true", default=None, help="start afresh in an existing run folder")
    train.add_argument("--rank", type=int, help=default_help(TrainConfig, "rank", "LoRA rank"))
    train.add_argument("--learning-rate", type=float, help=default_help(TrainConfig, "learning_rate", "AdamW learning rate"))
    train.add_argument("--micro-batch", type=int, help=default_help(TrainConfig, "micro_batch", "clips per process per micro-step"))
    train.add_argument("--grad-accumulation", type=int, help=default_help(TrainConfig, "grad_accumulation", "micro-steps per optimiser step"))
    train.add_argument("--frames", type=int, help=default_help(TrainConfig, "frames", "frames per clip, 4k+1"))
    train.add_argument("--pre-encode", action="store_true", default=None, help="cache VAE latents and T5 embeddings on disk first")
    train.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                       help=default_help(TrainConfig, "gradient_checkpointing", "recompute activations in the backward pass"))
    train.add_argument("--mixed-precision", help=default_help(TrainConfig, "mixed_precision", "auto, bf16, fp16 or no"))
    train.add_argument("--checkpoint-every", type=int, help=default_help(TrainConfig, "checkpoint_every", "steps between checkpoints"))
    train.add_argument("--sample-every", type=int, help=default_help(TrainConfig, "sample_every", "steps between sample videos; 0: none"))
    train.add_argument("--sample-steps", type=int, help=default_help(TrainConfig, "sample_steps", "denoising steps of a sample video"))
    train.add_argument("--num-workers", type=int, help=default_help(TrainConfig, "num_workers", "data-loader worker processes"))
    train.add_argument("--seed", type=int, help=default_help(TrainConfig, "seed", "seed of noise, timesteps, dropout and data order"))
    train.set_defaults(run=run_train, kept_on_interrupt=kept_checkpoints)

    make = commands.add_parser(
        "make-dataset",
        help="render training clips of the 16 camera motions from a reconstructed 3D scene",
        description="Render, from a recon scene folder (point_cloud.ply + transforms.json), clips of each S-Director "
        "camera motion, with captions, in the CSV form `dimensionx train --data` reads, and a contact sheet per motion.",
    )
    make.add_argument("scene", nargs="?", help="scene folder written by `dimensionx recon`")
    make.add_argument("--out", help="dataset folder to write")
    make.add_argument("--motions", help=default_help(DatasetConfig, "motions", "`all` or a comma list, e.g. orbit_left,pan_right"))
    make.add_argument("--clips", type=int, help=default_help(DatasetConfig, "clips", "clips per motion"))
    make.add_argument("--frames", type=int, help=default_help(DatasetConfig, "frames", "frames per clip"))
    make.add_argument("--size", help=default_help(DatasetConfig, "size", "WIDTHxHEIGHT px"))
    make.add_argument("--fps", type=int, help=default_help(DatasetConfig, "fps", "frames per second of the mp4s"))
    make.add_argument("--caption", help="caption of every clip (default: a 3D scene of <scene folder name>)")
    make.add_argument("--device", help=default_help(DatasetConfig, "device", "auto, cuda (gsplat) or cpu (reference renderer)"))
    make.add_argument("--jitter", type=float, help=default_help(DatasetConfig, "jitter", "degrees of random swing of each start camera; 0: the recon cameras"))
    make.add_argument("--seed", type=int, help=default_help(DatasetConfig, "seed", "seed of the start-camera jitter"))
    make.add_argument("--overwrite", action="store_true", default=None, help="replace an existing dataset folder")
    make.add_argument("--config", help="YAML preset")
    make.set_defaults(run=run_make_dataset, kept_on_interrupt=kept_motions)


def _config(cls, args: argparse.Namespace):
    names = [f.name for f in dataclasses.fields(cls)]
    return load_config(cls, args.config, {n: getattr(args, n, None) for n in names})


def run_train(args: argparse.Namespace) -> int:
    from ..outputs import set_aside_of
    from .trainer import remove_unstarted_run, train

    config = _config(TrainConfig, args)
    fresh = bool(config.output_dir) and not Path(config.output_dir).exists()
    try:
        result = train(config)
    except BaseException:  # an error or Ctrl-C before the first checkpoint: no half-made run folder stays
        if fresh:
            remove_unstarted_run(Path(config.output_dir))
        raise
    if result.status == "stopped":
        aside = set_aside_of(result.output_dir)
        print(f"dimensionx train: stopped by SIGTERM at step {result.step}; checkpoint saved, continue with --resume latest"
              + (f"; the run it replaces stays in {aside} until this one has exported its LoRA" if aside else ""))
        return 143
    return 0


def kept_motions(args: argparse.Namespace) -> str | None:
    from .make_dataset import kept_motions

    return kept_motions(args)


def kept_checkpoints(args: argparse.Namespace) -> str | None:
    """The interrupted-run message's ending where the run folder holds checkpoints."""
    from .trainer import CHECKPOINTS

    found = sorted((Path(args.output_dir or "") / CHECKPOINTS).glob("step_*")) if args.output_dir else []
    return f"the checkpoints up to {found[-1]} are kept: continue with --resume latest" if found else None


def run_make_dataset(args: argparse.Namespace) -> int:
    from .make_dataset import make_dataset

    make_dataset(_config(DatasetConfig, args))
    return 0
