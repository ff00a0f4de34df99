"""Switchable directors (peft adapters + a step callback) against fused ones: seconds per step and drift.

One pipeline, image, prompt and noise; three runs after a 2-step warm-up each (compiles, autotuning):

1. ``fused``: director A fused into the weights (the default path);
2. ``adapter``: the same director kept as a peft adapter (``--lora-mode adapters``);
3. ``switch``: Switch-Once, director A for the first ``--switch-step`` steps, then director B (``--then``).

Reported: seconds per denoising step of each, the relative error of the adapter run's final latents
against the fused run's (the same function in another summation order: bf16 rounding only), and
the switch run's latents against the fused-A run (how much B changed the video). Results go to
``benchmarks/results/switch_<device>.json`` (or ``--out``).

    python benchmarks/bench_switch.py                    # random CogVideoX-5B-I2V weights on CUDA, exact mode, 50 steps
    python benchmarks/bench_switch.py --mode lowmem      # the offloading mode
    python benchmarks/bench_switch.py --tiny --steps 4 --frames 9 --out /tmp/switch   # wiring check on a CPU
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))


def build(args):
    """(generator, director A, director B) on the tiny model (CPU) or the random 5B (CUDA)."""
    from dimensionx.directors.lora import read_lora
    from dimensionx.directors.registry import DIRECTORS
    from dimensionx.video.config import VideoConfig
    from dimensionx.video.generator import DirectorChoice, DirectorVideoGenerator, load_generator

    if args.tiny:
        from dimensionx.directors.tiny import tiny_lora_dir

        generator = load_generator(VideoConfig(model="tiny", device="cpu", mode=args.mode), reusable=True)
        loras = [read_lora(tiny_lora_dir() / DIRECTORS[name].filename) for name in ("orbit_left", "time")]
    else:
        from bench_video import build_pipeline, random_director

        from dimensionx.models import ResolvedModel

        generator = DirectorVideoGenerator(ResolvedModel(f"random CogVideoX-5B-I2V (seed {args.seed})", Path()),
                                           torch.device("cuda"), torch.bfloat16, args.mode, reusable=True,
                                           pipe=build_pipeline(args.seed))
        loras = [random_director(args.lora_rank, seed, Path(tempfile.mkdtemp())) for seed in (1, 2)]
    return generator, *(DirectorChoice(name, 1.0, lora) for name, lora in zip("AB", loras))


def photo(size: tuple[int, int]) -> Image.Image:
    """Gradients and a disc at the model's (height, width) px."""
    height, width = size
    y, x = np.mgrid[0:height, 0:width]
    disc = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (0.3 * height) ** 2
    return Image.fromarray(np.stack([x / width * 255, y / height * 255, disc * 200 + 30], -1).astype(np.uint8))


def timed(generator, image, config) -> tuple[torch.Tensor, float]:
    """Final latents and seconds per denoising step (after a 2-step warm-up of the same setting)."""
    generator.denoise(image, "a red barn in a field", dataclasses.replace(config, steps=2))
    sync = torch.cuda.synchronize if generator.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    latents = generator.denoise(image, "a red barn in a field", config)
    sync()
    return latents.float().cpu(), (time.perf_counter() - start) / config.steps


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def main() -> None:
    from dimensionx.video.config import VideoConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny random model on a CPU (wiring check)")
    parser.add_argument("--mode", default="exact", help="exact or lowmem (fast refuses switching)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--switch-step", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--lora-rank", type=int, default=256, help="rank of the random directors (official: 256)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    if not args.tiny and not torch.cuda.is_available():
        sys.exit("bench_switch.py needs a CUDA GPU (or --tiny for a CPU wiring check)")
    generator, a, b = build(args)
    image = photo(generator.size)
    config = VideoConfig(steps=args.steps, frames=args.frames)
    generator.set_directors([a], None)
    fused, fused_step = timed(generator, image, config)
    generator.set_directors([a], None, adapters=True)
    adapter, adapter_step = timed(generator, image, config)
    seconds = time.perf_counter()
    generator.set_directors([a], None, then=[b], switch_step=args.switch_step)
    load_seconds = time.perf_counter() - seconds
    switched, switch_step = timed(generator, image, config)
    device = torch.cuda.get_device_name() if generator.device.type == "cuda" else "cpu"
    report = {
        "benchmark": "switch", "device": device, "model": generator.model.id, "mode": args.mode, "dtype": str(generator.dtype),
        "steps": args.steps, "frames": args.frames, "size": list(generator.size), "switch_step": args.switch_step,
        "lora_rank": a.lora.rank, "versions": {"torch": torch.__version__},
        "seconds_per_step": {"fused": fused_step, "adapter": adapter_step, "switch": switch_step},
        "adapter_overhead": adapter_step / fused_step - 1.0,
        "seconds_to_load_two_adapters": load_seconds,
        "latent_rel_error_adapter_vs_fused": relative_error(adapter, fused),
        "latent_rel_change_switch_vs_fused_a": relative_error(switched, fused),
        "notes": "random weights: the drift is rounding; the switch's change shows B took over, not visual quality",
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"switch_{device.lower().replace(' ', '-')}_{args.mode}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
