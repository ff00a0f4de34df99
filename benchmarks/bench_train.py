"""Benchmark of director LoRA training: full-size CogVideoX-5B-I2V (random weights), rank 256, 49 x 480 x 720.

    python benchmarks/bench_train.py                 # one CUDA GPU: the four variants below, micro-batch 1
    python benchmarks/bench_train.py --batch 2       # the original's micro-batch
    python benchmarks/bench_train.py --tiny          # the tiny model on a CPU (checks the script runs)

Each variant times ``--steps`` optimiser steps after ``--warmup`` steps (AdamW fused, bf16
autocast with fp32 LoRA weights, gradient clipping: what ``dimensionx train`` does) and reads
the peak GPU memory of the step:

- pre-encoded, with / without gradient checkpointing: the transformer and the LoRA alone, fed
  cached latents and T5 embeddings (``pre_encode: true``);
- on the fly, with / without gradient checkpointing: the VAE and T5-XXL sit on the GPU too and
  encode each clip (49 frames) and caption every step.

The weights are random (built from the published configs on the GPU, nothing downloaded), so
the figures are speed and memory, not quality. A variant that runs out of memory is recorded
as such. Writes benchmarks/results/train_<device>.json (or --out).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import re
import sys
import time
from pathlib import Path

import torch

from dimensionx.train.model import (
    add_lora,
    diffusion_loss,
    encode_first_frame,
    encode_text,
    encode_video,
    image_condition,
    rotary_embedding,
)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_video import T5_XXL, TRANSFORMER, VAE  # noqa: E402  (the published 5B-I2V configs, written once)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the tiny random model, 9 frames, on the CPU")
    parser.add_argument("--rank", type=int, default=256)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--batch", type=int, default=1, help="micro-batch per GPU")
    parser.add_argument("--steps", type=int, default=5, help="timed optimiser steps per variant")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--variants", default="pre_encoded+gc,pre_encoded,on_the_fly+gc,on_the_fly")
    parser.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/train_<device>.json)")
    args = parser.parse_args()
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not args.tiny:
        raise SystemExit("bench_train.py measures a CUDA GPU: run it on one, or pass --tiny for a CPU check")
    if args.tiny:
        args.rank, args.frames = min(args.rank, 4), 9
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    results = {"device": name, "torch": torch.__version__, "model": "tiny" if args.tiny else "CogVideoX-5B-I2V (random weights)",
               "rank": args.rank, "frames": args.frames, "micro_batch": args.batch, "steps": args.steps, "variants": []}
    for variant in args.variants.split(","):
        results["variants"].append(run_variant(variant, args, device))
        print(json.dumps(results["variants"][-1]))
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    out = args.out or REPO / "benchmarks" / "results" / f"train_{'tiny_' if args.tiny else ''}{slug}_b{args.batch}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


def build(args, device: torch.device, encoders: bool):
    """(transformer, vae, tokenizer, text_encoder, alphas_cumprod) with random weights, frozen, on ``device``."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    if args.tiny:
        from dimensionx.models.tiny import build_tiny_pipeline

        pipe = build_tiny_pipeline()
        transformer, vae, tokenizer, text_encoder = pipe.transformer, pipe.vae, pipe.tokenizer, pipe.text_encoder
    else:
        dtype = torch.bfloat16
        with torch.device(device):
            transformer = CogVideoXTransformer3DModel(**TRANSFORMER).to(dtype)
            vae = AutoencoderKLCogVideoX(**VAE).to(dtype) if encoders else None
            text_encoder = T5EncoderModel(T5Config(**T5_XXL)).to(dtype) if encoders else None
        tokenizer = None
    for module in (transformer, vae, text_encoder):
        if module is not None:
            module.requires_grad_(False).to(device)
    scheduler = CogVideoXDPMScheduler(beta_schedule="scaled_linear", prediction_type="v_prediction",
                                      rescale_betas_zero_snr=True, snr_shift_scale=1.0, timestep_spacing="trailing")
    return transformer, (vae if encoders else None), tokenizer, (text_encoder if encoders else None), scheduler.alphas_cumprod


def run_variant(variant: str, args, device: torch.device) -> dict:
    from accelerate import Accelerator

    on_the_fly, checkpointing = variant.startswith("on_the_fly"), variant.endswith("+gc")
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    record = {"variant": variant, "pre_encoded": not on_the_fly, "gradient_checkpointing": checkpointing}
    try:
        transformer, vae, tokenizer, text_encoder, alphas = build(args, device, encoders=on_the_fly)
        if checkpointing:
            transformer.enable_gradient_checkpointing()
        torch.manual_seed(0)
        add_lora(transformer, args.rank)
        params = [p for p in transformer.parameters() if p.requires_grad]
        record["lora_parameters"] = sum(p.numel() for p in params)
        accelerator = Accelerator(mixed_precision="no" if device.type == "cpu" else "bf16", cpu=device.type == "cpu")
        optimizer = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), weight_decay=1e-4, fused=device.type == "cuda")
        transformer, optimizer = accelerator.prepare(transformer, optimizer)
        config = accelerator.unwrap_model(transformer).config
        height, width = config.sample_height * 8, config.sample_width * 8
        latent_frames = (args.frames - 1) // 4 + 1
        rotary = rotary_embedding(accelerator.unwrap_model(transformer), height, width, latent_frames, device)
        generator = torch.Generator().manual_seed(0)
        batch = make_batch(args, device, height, width, latent_frames, config.text_embed_dim, generator)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for step in range(args.warmup + args.steps):
            start = time.perf_counter()
            if on_the_fly:
                latents = encode_video(vae, batch["video"], generator)
                sigma = torch.full((args.batch,), 0.05, device=device)
                first = encode_first_frame(vae, batch["video"][:, 0].to(device), sigma,
                                           torch.randn_like(batch["video"][:, 0]).to(device), generator)
                prompt = (encode_text(tokenizer, text_encoder, ["a barn"] * args.batch, 226) if tokenizer is not None
                          else text_encoder(batch["token_ids"])[0].float())
            else:
                latents, first, prompt = batch["latents"], batch["first"], batch["prompt"]
            timesteps = torch.randint(0, 1000, (args.batch,), generator=generator).to(device)
            noise = torch.randn(latents.shape, generator=generator).to(device)
            loss = diffusion_loss(transformer, alphas, latents, image_condition(first, latent_frames).to(latents.dtype),
                                  prompt, timesteps, noise, rotary).mean()
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(params, 0.1)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if step >= args.warmup:
                times.append(time.perf_counter() - start)
        record.update(seconds_per_step=round(sum(times) / len(times), 4), seconds=[round(t, 4) for t in times],
                      loss=loss.item(), oom=False)
    except torch.OutOfMemoryError as exc:
        record.update(oom=True, error=str(exc).splitlines()[0])
    if device.type == "cuda":
        record["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        record["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved(device) / 2**30, 2)
    return record


def make_batch(args, device, height: int, width: int, latent_frames: int, text_dim: int, generator) -> dict:
    """Random pixels (on the fly) or random cached tensors (pre-encoded) of one micro-batch."""
    b, h, w = args.batch, height // 8, width // 8
    return {
        "video": (torch.rand(b, args.frames, 3, height, width, generator=generator) * 2 - 1).to(device),
        "token_ids": torch.randint(0, 32000, (b, 226), generator=generator).to(device),
        "latents": torch.randn(b, latent_frames, 16, h, w, generator=generator).to(device),
        "first": torch.randn(b, 1, 16, h, w, generator=generator).to(device),
        "prompt": torch.randn(b, 226, text_dim, generator=generator).to(device),
    }


if __name__ == "__main__":
    main()
