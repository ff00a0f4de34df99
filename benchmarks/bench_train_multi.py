"""Director LoRA training on 1 GPU vs 2 GPUs (DeepSpeed ZeRO-2), checkpoint, resume and export, through the real commands.

Full size: CogVideoX-5B-I2V's transformer (random weights from the published config, built on
the GPU, saved once as a diffusers folder with its scheduler), rank 256, 49 x 480 x 720,
gradient checkpointing, bf16, the S-Director recipe (configs/train/s_director.yaml). The data
is pre-encoded (``encoded.json`` + random latents, T5 embeddings and first-frame latents of
the right shapes), so training holds the transformer and the LoRA alone, as ``pre_encode: true``
does, and no video decoder is needed. Three runs, each a fresh ``dimensionx train`` process:

1. one GPU: ``accelerate launch --config_file configs/accelerate/single_gpu.yaml``,
   ``warmup + steps`` optimiser steps;
2. two GPUs: ``bash finetune_multi_gpus.sh`` (DeepSpeed ZeRO-2, NUM_GPUS=2), the same per-GPU
   micro-batch, ``warmup + steps + resume_steps`` steps, a checkpoint after ``warmup + steps``;
3. two GPUs, ``--resume`` from that checkpoint into a new run folder, to the same last step.

If the DeepSpeed run fails, runs 2 and 3 are made again with plain DDP (multi_gpu.yaml), so the
call still yields two-GPU figures; the JSON keeps DeepSpeed's error (``deepspeed_error``).

Seconds per step and samples/s are the mean over the ``steps`` log lines after the warm-up
(``train_log.jsonl``; checkpoint writing falls in the line after it, outside the timed ones),
peak memory per GPU the log's per-process peaks. Checks: the resumed run continues at the
checkpoint's step and ends with the LoRA of the uninterrupted run 2 (same data, noise and RNG
states; GPU kernels may differ in the last bits), and the exported file is read, checked and
fused by the video runtime (``directors.lora``), then a small transformer forward changes.
Writes ``benchmarks/results/train_multi_<device>.json``.

    python benchmarks/bench_train_multi.py            # 2 CUDA GPUs, ~6 minutes on 2 H200 (saves an 11 GB model)
    python benchmarks/bench_train_multi.py --tiny     # CPU: the tiny model, 1 vs 2 gloo processes (plain DDP:
                                                      # accelerate runs DeepSpeed on a CPU in one process only)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "benchmarks")]

GOAL_SPEEDUP = 1.8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="CPU check: tiny model, 2 gloo processes with plain DDP")
    parser.add_argument("--micro-batch", type=int, default=1, help="clips per GPU per step (the recipe: 2)")
    parser.add_argument("--warmup", type=int, default=2, help="steps before the timed ones")
    parser.add_argument("--steps", type=int, default=3, help="timed steps")
    parser.add_argument("--resume-steps", type=int, default=2, help="steps after the checkpoint, run twice (straight on, resumed)")
    parser.add_argument("--clips", type=int, default=4, help="pre-encoded clips in the dataset")
    parser.add_argument("--two-gpu-config", choices=["deepspeed_zero2.yaml", "multi_gpu.yaml"],
                        help="accelerate config of the two-GPU runs (default deepspeed_zero2.yaml; multi_gpu.yaml with --tiny). "
                             "If DeepSpeed fails, they run again with multi_gpu.yaml (plain DDP) and the JSON keeps the error")
    parser.add_argument("--work", type=Path, help="work folder (default: a new temporary one, removed at the end)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    if not args.tiny and torch.cuda.device_count() < 2:
        sys.exit(f"bench_train_multi.py needs 2 CUDA GPUs (this machine has {torch.cuda.device_count()}); --tiny checks it on a CPU")
    work = args.work or Path(tempfile.mkdtemp(prefix="train_multi_"))
    work.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", device_name(args.tiny).lower()).strip("-")
    path = args.out / f"train_multi_{slug}{'_tiny' if args.tiny else ''}.json"
    try:
        report = run(args, work, path)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: report.get(k) for k in ("speedup", "goal", "resume", "export")}, indent=2))
    print(f"wrote {path}")


def write(report: dict, path: Path) -> None:
    """The JSON as far as it got (written after every phase, so a failure late keeps the figures)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def checked(name: str, check, *args) -> dict:
    try:
        return check(*args)
    except (Exception, SystemExit) as exc:
        print(f"{name} check failed: {exc!r}", flush=True)
        return {"error": f"{type(exc).__name__}: {exc}"[:1000], "ok": False}


def run(args, work: Path, path: Path) -> dict:
    started = time.perf_counter()
    model = tiny_model() if args.tiny else save_full_model(work / "model")
    seconds_model = time.perf_counter() - started
    data = write_encoded(work / "data", model, args.clips)
    config = REPO / "configs" / "train" / ("tiny.yaml" if args.tiny else "s_director.yaml")
    timed_end = args.warmup + args.steps
    last = timed_end + args.resume_steps
    common = ["--config", str(config), "--model", str(model), "--data", str(data), "--micro-batch", str(args.micro_batch),
              "--num-workers", "0" if args.tiny else "2"]

    one = train_run(1, args.tiny, [*common, "--output-dir", str(work / "one"), "--max-steps", str(timed_end),
                                   "--checkpoint-every", "0"])
    two_args = [*common, "--output-dir", str(work / "two"), "--max-steps", str(last), "--checkpoint-every", str(timed_end)]
    accelerate_config = args.two_gpu_config or ("multi_gpu.yaml" if args.tiny else "deepspeed_zero2.yaml")
    two = train_run(2, args.tiny, two_args, accelerate_config, fail_ok=accelerate_config == "deepspeed_zero2.yaml")
    deepspeed_error = two.get("error")
    if deepspeed_error:  # still measure 2 GPUs in this call: plain DDP
        print("DeepSpeed failed; the two-GPU runs use plain DDP (multi_gpu.yaml)", flush=True)
        accelerate_config = "multi_gpu.yaml"
        shutil.rmtree(work / "two")
        two = train_run(2, args.tiny, two_args, accelerate_config)
    checkpoint = work / "two" / "checkpoints" / f"step_{timed_end:06d}"
    resumed = train_run(2, args.tiny, [*common, "--output-dir", str(work / "resumed"), "--max-steps", str(last),
                                       "--resume", str(checkpoint)], accelerate_config, fail_ok=True)
    rows = {"one_gpu": timing(work / "one", args.warmup, args.steps, one),
            "two_gpus": timing(work / "two", args.warmup, args.steps, two)}
    speedup = rows["two_gpus"]["samples_per_s"] / rows["one_gpu"]["samples_per_s"]
    report = {
        "benchmark": "train_multi", "device": device_name(args.tiny), "torch": torch.__version__,
        "model": "tiny" if args.tiny else "CogVideoX-5B-I2V transformer (random weights)", "train_config": config.name,
        "launch": {"one_gpu": "python -m dimensionx.cli train (one CPU process)" if args.tiny else
                   "accelerate launch --config_file configs/accelerate/single_gpu.yaml",
                   "two_gpus": f"finetune_multi_gpus.sh, NUM_GPUS=2, ACCELERATE_CONFIG=configs/accelerate/{accelerate_config}"
                               + (" (gloo processes)" if args.tiny else "")},
        "deepspeed_error": deepspeed_error,
        "micro_batch_per_gpu": args.micro_batch, "warmup_steps": args.warmup, "timed_steps": args.steps,
        "seconds_model_build": round(seconds_model, 1), **rows,
        "speedup": round(speedup, 3), "goal": {"speedup_min": GOAL_SPEEDUP, "met": speedup >= GOAL_SPEEDUP},
    }
    write(report, path)
    report["resume"] = checked("resume", resume_check, work / "two", work / "resumed", timed_end, last, resumed)
    write(report, path)
    exported = work / "resumed" / "pytorch_lora_weights.safetensors"
    if not exported.is_file():  # the resumed run failed: check the uninterrupted run's file
        exported = work / "two" / "pytorch_lora_weights.safetensors"
    report["export"] = checked("export", export_check, model, exported, args.tiny)
    report["seconds_total"] = round(time.perf_counter() - started, 1)
    write(report, path)
    return report


def device_name(tiny: bool) -> str:
    import platform

    return torch.cuda.get_device_name(0) if not tiny and torch.cuda.is_available() else (platform.processor() or platform.machine())


def tiny_model() -> Path:
    from dimensionx.models import resolve_model

    return resolve_model("tiny").path


def save_full_model(folder: Path) -> Path:
    """The 5B-I2V transformer (random, seed 0, bf16) and scheduler as a diffusers folder: all `dimensionx train` loads
    for pre-encoded data."""
    import diffusers
    from diffusers import CogVideoXDPMScheduler, CogVideoXTransformer3DModel

    from bench_video import SCHEDULER, TRANSFORMER

    torch.manual_seed(0)
    with torch.device("cuda"):
        transformer = CogVideoXTransformer3DModel(**TRANSFORMER).to(torch.bfloat16)
    transformer.save_pretrained(folder / "transformer", max_shard_size="20GB")
    del transformer
    torch.cuda.empty_cache()
    CogVideoXDPMScheduler(**SCHEDULER).save_pretrained(folder / "scheduler")
    index = {"_class_name": "CogVideoXImageToVideoPipeline", "_diffusers_version": diffusers.__version__,
             "scheduler": ["diffusers", "CogVideoXDPMScheduler"], "transformer": ["diffusers", "CogVideoXTransformer3DModel"]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder


def write_encoded(folder: Path, model: Path, clips: int, frames: int | None = None, draws: int = 4) -> Path:
    """``clips`` random pre-encoded clips of the model's shapes (N(0, 1) latents, T5-sized embeddings) + encoded.json."""
    from safetensors.torch import save_file

    from dimensionx.train.encoded import MANIFEST, write_manifest

    config = json.loads((model / "transformer" / "config.json").read_text())
    frames = frames or (9 if config["sample_height"] < 32 else 49)
    channels, h, w = config["in_channels"] // 2, config["sample_height"], config["sample_width"]
    generator = torch.Generator().manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(clips):
        tensors = {"latents": torch.randn(((frames - 1) // 4 + 1, channels, h, w), generator=generator),
                   "image_latents": torch.randn((draws, 1, channels, h, w), generator=generator),
                   "prompt_embeds": 0.1 * torch.randn((config["max_text_seq_length"], config["text_embed_dim"]), generator=generator)}
        files.append(folder / f"clip_{index:03d}.safetensors")
        save_file(tensors, str(files[-1]))
    write_manifest(folder / MANIFEST, files, [f"random clip {i}" for i in range(clips)], frames, h * 8, w * 8)
    return folder


def train_run(processes: int, tiny: bool, train_args: list[str], accelerate_config: str = "multi_gpu.yaml",
              fail_ok: bool = False) -> dict:
    """One `dimensionx train` process group; returns its wall seconds (or, with ``fail_ok``, the tail of its error)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}  # `accelerate` of this python
    if tiny:  # one thread per process, as torchrun gives each of the two: the CPU comparison is then like for like
        env.setdefault("OMP_NUM_THREADS", "1")
    if processes == 1:
        command = ([sys.executable, "-m", "dimensionx.cli", "train"] if tiny else
                   ["accelerate", "launch", "--config_file", str(REPO / "configs" / "accelerate" / "single_gpu.yaml"),
                    "-m", "dimensionx.cli", "train"])
    else:
        command = ["bash", str(REPO / "finetune_multi_gpus.sh")]
        env.update(NUM_GPUS=str(processes), ACCELERATE_CONFIG=str(REPO / "configs" / "accelerate" / accelerate_config),
                   MAIN_PROCESS_PORT=str(free_port()))
        if tiny and accelerate_config == "multi_gpu.yaml":  # gloo processes (accelerate runs DeepSpeed only on accelerators)
            env["ACCELERATE_USE_CPU"] = "true"
    if command[0] == "bash":  # finetune_multi_gpus.sh takes the train config first, without --config
        assert train_args[0] == "--config"
        command += train_args[1:]
    else:
        command += train_args
    print("+", " ".join(command), flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        print(done.stdout[-4000:], done.stderr[-8000:], sep="\n")
        if fail_ok:
            errors = [line for line in done.stderr.splitlines() if re.search(r"(Error|Exception|error): ", line)
                      and "ChildFailedError" not in line and "Connection closed by peer" not in line]
            return {"error": (errors[0] if errors else done.stderr[-500:]).strip()[:1000], "wall_seconds": round(seconds, 1)}
        raise SystemExit(f"training with {processes} process(es) failed (exit {done.returncode})")
    return {"wall_seconds": round(seconds, 1)}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if line.strip()]


def timing(run: Path, warmup: int, steps: int, launched: dict) -> dict:
    lines = log_lines(run)
    timed = [line for line in lines if warmup < line["step"] <= warmup + steps]
    seconds = sum(line["seconds"] for line in timed) / len(timed)
    samples = timed[0]["samples_per_s"] * timed[0]["seconds"]  # clips per step, all processes
    row = {"seconds_per_step": round(seconds, 4), "samples_per_s": round(samples / seconds, 4),
           "samples_per_step": round(samples), "step_seconds": [line["seconds"] for line in timed],
           "final_loss": lines[-1]["loss"], "wall_seconds_process": launched["wall_seconds"]}
    for key in ("peak_allocated_gib", "peak_reserved_gib"):
        if key in lines[-1]:
            row[key + "_per_gpu"] = [max(values) for values in zip(*(line[key] for line in lines))]
    return row


def resume_check(straight: Path, resumed: Path, checkpoint_step: int, last: int, launched: dict) -> dict:
    """The resumed run starts after the checkpoint's step, ends at ``last`` and matches the uninterrupted run."""
    from safetensors.torch import load_file

    if "error" in launched:
        raise RuntimeError(f"the resumed run failed: {launched['error']}")
    steps = [line["step"] for line in log_lines(resumed)]
    state = json.loads((resumed / "checkpoints" / f"step_{last:06d}" / "trainer_state.json").read_text())
    a, b = (load_file(str(run / "pytorch_lora_weights.safetensors")) for run in (straight, resumed))
    error = max(float((a[k].float() - b[k].float()).norm() / a[k].float().norm().clamp_min(1e-12)) for k in a if k.endswith("lora_B.weight"))
    losses = {line["step"]: line["loss"] for line in log_lines(straight)}
    loss_error = max(abs(line["loss"] - losses[line["step"]]) / abs(losses[line["step"]]) for line in log_lines(resumed))
    continues = steps == list(range(checkpoint_step + 1, last + 1)) and state["step"] == last
    return {"checkpoint_step": checkpoint_step, "resumed_log_steps": steps, "final_state_step": state["step"],
            "continues": continues, "lora_B_max_rel_diff_vs_uninterrupted": error, "loss_max_rel_diff_vs_uninterrupted": loss_error,
            "matches_uninterrupted": error < 0.05 and loss_error < 0.05, "wall_seconds_process": launched["wall_seconds"]}


@torch.no_grad()
def export_check(model: Path, lora_file: Path, tiny: bool) -> dict:
    """The exported LoRA through the video runtime: read and checked (read_lora), fused (fuse_directors), then a
    small forward of the transformer differs from the base model's."""
    from diffusers import CogVideoXDPMScheduler, CogVideoXImageToVideoPipeline, CogVideoXTransformer3DModel

    from dimensionx.directors.lora import LORA_TARGETS, fuse_directors, read_lora

    lora = read_lora(lora_file)
    device, dtype = (torch.device("cpu"), torch.float32) if tiny else (torch.device("cuda"), torch.bfloat16)
    transformer = CogVideoXTransformer3DModel.from_pretrained(model, subfolder="transformer", torch_dtype=dtype).to(device)
    blocks = transformer.config.num_layers
    pipe = CogVideoXImageToVideoPipeline(tokenizer=None, text_encoder=None, vae=None, transformer=transformer,
                                         scheduler=CogVideoXDPMScheduler.from_pretrained(model, subfolder="scheduler"))
    before = small_forward(transformer, device, dtype)
    fuse_directors(pipe, [(lora, 1.0)])
    after = small_forward(transformer, device, dtype)
    change = float((after - before).norm() / before.norm())
    layout = lora.modules == sorted(f"transformer_blocks.{b}.{t}" for b in range(blocks) for t in LORA_TARGETS)
    return {"file": str(lora_file.relative_to(lora_file.parents[1])), "rank": lora.rank, "tensors": len(lora.tensors), "official_layout": layout,
            "fused_by_video_runtime": True, "forward_finite": bool(torch.isfinite(after).all()),
            "forward_rel_change": change, "ok": layout and bool(torch.isfinite(after).all()) and change > 0}


def small_forward(transformer, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[1, F', C, h, w]: the model's latent shape through the transformer at a fixed input."""
    from dimensionx.train.model import rotary_embedding

    config = transformer.config
    g = torch.Generator().manual_seed(0)
    frames, h, w = (config.sample_frames - 1) // 4 + 1, config.sample_height, config.sample_width
    x = torch.randn((1, frames, config.in_channels, h, w), generator=g).to(device, dtype)
    text = torch.randn((1, config.max_text_seq_length, config.text_embed_dim), generator=g).to(device, dtype)
    rotary = rotary_embedding(transformer, h * 8, w * 8, frames, device)
    return transformer(hidden_states=x, encoder_hidden_states=text, timestep=torch.tensor([500], device=device),
                       image_rotary_emb=rotary, return_dict=False)[0].float()


if __name__ == "__main__":
    main()
