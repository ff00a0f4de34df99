"""Seconds end to end on 1 vs 2 GPUs for ``dimensionx video --gpus 2`` (CFG-parallel).

Needs a machine with 2 CUDA GPUs. The full CogVideoX-5B-I2V architecture with random weights
(built by ``bench_video.build_pipeline``, same seed on every process, so both processes hold
the same weights) runs in ``exact`` mode with a random rank-64 director fused: once in one
process on one GPU, once under torchrun on two, where each process runs one guidance branch
and the predictions are all-gathered every step. The first process of each run saves its
frames and latents; the two runs are compared by PSNR and latent error. Results go to
``benchmarks/results/cfg_parallel_<device>.json``.

    python benchmarks/bench_cfg_parallel.py              # both runs, ~4 minutes on 2 H200
    python benchmarks/bench_cfg_parallel.py --steps 4    # wiring check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_video import environment, fidelity, generate, random_director, test_image  # noqa: E402


def run_one(args) -> None:
    """One process of a run: build, fuse, (split CFG), generate; rank 0 writes its row and frames."""
    import torch.distributed as dist

    from bench_video import prepare
    from dimensionx.video.parallel import enable_cfg_parallel, init_process, is_distributed, is_main_process

    device = init_process("cuda") if is_distributed() else torch.device("cuda", 0)
    torch.cuda.set_device(device)
    lora = random_director(64, 1, Path(args.work))
    pipe, notes = prepare("exact", args.seed, lora)
    if is_distributed():
        enable_cfg_parallel(pipe.transformer)
    generate(pipe, test_image(), args, steps=2)  # warm-up: compile and autotune outside the timing
    generate(pipe, test_image(), args, steps=2)
    run = generate(pipe, test_image(), args)
    if is_main_process():
        processes = int(os.environ.get("WORLD_SIZE", "1"))
        torch.save({"frames": run["frames"], "latents": run["latents"].cpu()}, Path(args.work) / f"run_{processes}.pt")
        row = {k: run[k] for k in ("seconds_end_to_end", "seconds_denoise", "seconds_decode", "peak_reserved_gib")}
        (Path(args.work) / f"row_{processes}.json").write_text(json.dumps({"processes": processes, **row, "notes": notes}))
    if dist.is_initialized():
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.work:
        return run_one(args)
    if torch.cuda.device_count() < 2:
        sys.exit(f"bench_cfg_parallel needs 2 CUDA GPUs, this machine has {torch.cuda.device_count()}")
    work = tempfile.mkdtemp(prefix="cfg_parallel_")
    own = [__file__, "--steps", str(args.steps), "--frames", str(args.frames), "--seed", str(args.seed), "--work", work]
    subprocess.run([sys.executable, *own], check=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": "0"})
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *own], check=True)
    rows = {n: json.loads((Path(work) / f"row_{n}.json").read_text()) for n in (1, 2)}
    one, two = (torch.load(Path(work) / f"run_{n}.pt", weights_only=False) for n in (1, 2))
    report = {
        "benchmark": "cfg_parallel", **environment(), "steps": args.steps, "frames": args.frames,
        "one_gpu": rows[1], "two_gpus": rows[2],
        "speedup": rows[1]["seconds_end_to_end"] / rows[2]["seconds_end_to_end"],
        "fidelity_two_vs_one": fidelity(two, one),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = report.get("device", "cuda").lower().replace(" ", "-")
    (args.out / f"cfg_parallel_{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
