"""``TrainConfig`` and ``DatasetConfig``: every knob of director training and of the dataset
builder, importable without torch (fast ``--help``)."""

from __future__ import annotations

import dataclasses

from ..models.hub import DEFAULT_MODEL


@dataclasses.dataclass
class TrainConfig:
    """Every knob of ``dimensionx train``; defaults are the original S-Director recipe."""

    model: str = DEFAULT_MODEL  # hub id, local diffusers folder, or "tiny"
    data: str | None = None  # a CSV file (video,caption), a folder holding metadata.csv, or videos/ + captions/
    output_dir: str | None = None  # run folder: train_log.jsonl, checkpoints/, pytorch_lora_weights.safetensors
    resume: str | None = None  # checkpoint folder, or "latest" (the newest under output_dir/checkpoints)
    overwrite: bool = False  # start afresh in an existing run folder written by dimensionx
    # LoRA
    rank: int = 256  # LoRA rank on attn1.to_q/to_k/to_v/to_out.0 of every block
    # peft's lora_alpha is fixed at 1, so the LoRA acts at scale alpha / rank = 1 / rank: the
    # scale `dimensionx video` fuses files at, and the SAT default the official directors used.
    # Data
    frames: int = 49  # frames per clip, 4k + 1
    skip_frames: int = 3  # frames skipped at each end of a clip before uniform sampling
    text_max_length: int = 226  # T5 tokens
    # Optimisation
    max_steps: int = 3000  # optimiser steps
    micro_batch: int = 2  # clips per process per micro-step
    grad_accumulation: int = 1  # micro-steps per optimiser step
    learning_rate: float = 1e-3
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    weight_decay: float = 1e-4
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 0.1  # gradient clipping (L2 norm over the LoRA parameters)
    lr_scheduler: str = "constant_with_warmup"  # any name of diffusers.optimization.get_scheduler
    lr_warmup_steps: int = 0
    optimizer: str = "adamw"  # "adamw" (fused on CUDA) or "adamw8bit" (bitsandbytes)
    # Conditioning (the original SAT recipe)
    text_dropout: float = 0.1  # probability of a zeroed caption embedding
    image_dropout: float = 0.05  # probability of zeroed image-condition latents
    image_noise_mean: float = -3.0  # pixel noise sigma = exp(N(mean, std)) on the first frame, pixels in [-1, 1]
    image_noise_std: float = 0.5
    # Memory and speed
    mixed_precision: str = "auto"  # "auto" (bf16 on CUDA, no on CPU), "bf16", "fp16", "no"
    gradient_checkpointing: bool = True
    pre_encode: bool = False  # cache VAE latents and T5 embeddings on disk; training then holds only the transformer
    cache_dir: str | None = None  # latent cache; default <data root>/.dimensionx-cache
    image_noise_draws: int = 4  # pre-encoded noisy first-frame latents per clip (one is picked per step)
    num_workers: int = 2  # data-loader worker processes (videos decoded in the background)
    # Checkpoints, logs, samples
    checkpoint_every: int = 250  # optimiser steps between checkpoints (0: only at the end and on SIGTERM)
    checkpoints_kept: int = 2  # newest checkpoints kept on disk
    log_every: int = 1  # optimiser steps between train_log.jsonl lines
    sample_every: int = 0  # optimiser steps between sample videos (0: none)
    sample_steps: int = 50  # denoising steps of a sample video
    export_dtype: str = "bf16"  # dtype of the exported LoRA tensors: "bf16" (as the official files) or "fp32"
    seed: int = 42  # noise, timesteps, dropout and data order


@dataclasses.dataclass
class DatasetConfig:
    """Every knob of ``dimensionx make-dataset``."""

    scene: str | None = None  # recon output folder: point_cloud.ply + transforms.json
    out: str | None = None  # dataset folder written: <motion>/videos/*.mp4 + <motion>/metadata.csv, metadata.csv
    overwrite: bool = False
    motions: str = "all"  # "all" (the 16 S-Directors) or a comma list, e.g. "orbit_left,pan_right"
    clips: int = 8  # clips per motion, each from another start camera of the scene
    frames: int = 49  # frames per clip
    size: str = "720x480"  # WIDTHxHEIGHT px
    fps: int = 8
    caption: str | None = None  # caption of every clip; default "a 3D scene of <scene folder name>"
    background: str = "0,0,0"  # R,G,B in [0, 1] behind the splats
    jitter: float = 5.0  # degrees: each clip's start camera swings up to this much about the scene centre
    device: str = "auto"  # "auto", "cuda" (gsplat) or "cpu" (pure-torch reference renderer, slow)
    seed: int = 0  # start-camera jitter
