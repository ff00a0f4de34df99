"""Seconds end to end on 1 vs 2 GPUs for ``dimensionx video --gpus 2`` (CFG-parallel).

Needs a machine with 2 CUDA GPUs. The full CogVideoX-5B-I2V architecture with random weights
(built by ``bench_video.build_pipeline``, same seed on every process, so both processes hold
the same weights) runs in ``exact`` mode with a random rank-64 director fused: once in one
process on one GPU, once under torchrun on two, where each process runs one guidance branch
and the predictions are all-gathered every step. The first process of each run saves its
frames and latents; the two runs are compared by PSNR and latent error. Results go to
``benchmarks/results/cfg_parallel_<device>.json``.

``--size orbit`` measures the orbit shape instead, as ``dimensionx orbit --gpus 2`` runs it:
145 frames at 320x480, the learned positional table of 22426 rows (``bench_orbit.py``'s
config), no director, the prompt encoded once and a zero embedding for the unguided branch;
results in ``cfg_parallel_<device>_orbit.json``.

``--tiny`` checks the wiring on a CPU: ``dimensionx video`` (``orbit`` with ``--size orbit``)
on the tiny random model, one process vs two gloo processes (``--gpus 2 --device cpu``),
frames compared; for the orbit, the full-size table is built on the meta device and counted.

    python benchmarks/bench_cfg_parallel.py                  # both runs, ~4 minutes on 2 H200
    python benchmarks/bench_cfg_parallel.py --size orbit     # the orbit shape, ~5 minutes on 2 H200
    python benchmarks/bench_cfg_parallel.py --steps 4        # wiring check
    python benchmarks/bench_cfg_parallel.py --tiny [--size orbit] --out /tmp/cfg   # CPU wiring check (~1 minute)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_video  # noqa: E402
from bench_orbit import ORBIT_SHAPE, TABLE_ROWS, full_size_table_rows, table_rows  # noqa: E402
from bench_video import environment, fidelity, generate, random_director, test_image  # noqa: E402

SIZES = {"video": bench_video.DEFAULT_SHAPE, "orbit": ORBIT_SHAPE}  # frames, height, width


def run_one(args) -> None:
    """One process of a run: build, fuse, (split CFG), generate; rank 0 writes its row and frames."""
    import torch.distributed as dist

    from bench_video import prepare
    from dimensionx.video.parallel import init_process, is_distributed, is_main_process

    device = init_process("cuda") if is_distributed() else torch.device("cuda", 0)
    torch.cuda.set_device(device)
    orbit = args.size == "orbit"  # no director, zero unguided embedding, as `dimensionx orbit`
    lora = None if orbit else random_director(64, 1, Path(args.work))
    pipe, notes = prepare("exact", args.seed, lora)  # the generator adds the CFG-parallel hook under torchrun
    if orbit and table_rows(pipe.transformer) != TABLE_ROWS:
        sys.exit(f"the orbit transformer's table has {table_rows(pipe.transformer)} rows, not {TABLE_ROWS}")
    generate(pipe, test_image(), args, steps=2, zero_uncond=orbit)  # warm-up: compile and autotune outside the timing
    generate(pipe, test_image(), args, steps=2, zero_uncond=orbit)
    run = generate(pipe, test_image(), args, zero_uncond=orbit)
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
    parser.add_argument("--size", choices=sorted(SIZES), default="video",
                        help="video: 49 frames 480x720 (a director fused); orbit: 145 frames 320x480, the orbit model's table")
    parser.add_argument("--frames", type=int, help="frames (default: the size's, 49 or 145)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="CPU wiring check: the tiny model, 1 vs 2 gloo processes")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.frames = args.frames or SIZES[args.size][0]
    bench_video.set_shape(args.frames, *SIZES[args.size][1:])
    if args.tiny:
        return run_tiny(args)
    if args.work:
        return run_one(args)
    if torch.cuda.device_count() < 2:
        sys.exit(f"bench_cfg_parallel needs 2 CUDA GPUs, this machine has {torch.cuda.device_count()}")
    work = tempfile.mkdtemp(prefix="cfg_parallel_")
    own = [__file__, "--steps", str(args.steps), "--size", args.size, "--frames", str(args.frames), "--seed", str(args.seed), "--work", work]
    subprocess.run([sys.executable, *own], check=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": "0"})
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *own], check=True)
    rows = {n: json.loads((Path(work) / f"row_{n}.json").read_text()) for n in (1, 2)}
    one, two = (torch.load(Path(work) / f"run_{n}.pt", weights_only=False) for n in (1, 2))
    report = {
        "benchmark": "cfg_parallel", **environment(), "steps": args.steps, "frames": args.frames,
        "height": SIZES[args.size][1], "width": SIZES[args.size][2], "size": args.size,
        **({"pos_embedding_rows": TABLE_ROWS, "director": None, "uncond": "zero"} if args.size == "orbit" else {}),
        "one_gpu": rows[1], "two_gpus": rows[2],
        "speedup": rows[1]["seconds_end_to_end"] / rows[2]["seconds_end_to_end"],
        "fidelity_two_vs_one": fidelity(two, one),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = report.get("device", "cuda").lower().replace(" ", "-")
    suffix = "_orbit" if args.size == "orbit" else ""
    (args.out / f"cfg_parallel_{name}{suffix}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def run_tiny(args) -> None:
    """The CLI on the tiny model (``tiny-orbit`` for the orbit), one process then two gloo processes; frames compared."""
    import platform

    from dimensionx.videofiles import read_frames

    work = Path(tempfile.mkdtemp(prefix="cfg_parallel_tiny_"))  # left for a look at the videos
    image = work / "photo.png"
    test_image().resize((96, 64)).save(image)
    orbit = args.size == "orbit"
    steps = args.steps if "--steps" in sys.argv else 2
    command = ["orbit", str(image), "--model", "tiny-orbit"] if orbit else \
        ["video", str(image), "--model", "tiny", "--frames", "9", "--motion", "orbit_left"]
    command += ["--steps", str(steps), "--prompt", bench_video.PROMPT, "--device", "cpu"]
    rows, frames = {}, {}
    for processes in (1, 2):
        out = work / f"run_{processes}.mp4"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dimensionx.cli", *command, "--gpus", str(processes), "--out", str(out)], check=True)
        rows[processes] = {"processes": processes, "seconds_end_to_end": time.perf_counter() - start}
        frames[processes] = read_frames(out)[0]
    mse = np.mean((frames[2].astype(np.float64) - frames[1].astype(np.float64)) ** 2)
    report = {"benchmark": "cfg_parallel", "device": platform.processor() or platform.machine(), "torch": torch.__version__,
              "model": "tiny-orbit" if orbit else "tiny", "size": args.size, "steps": steps, "frames": int(frames[1].shape[0]),
              "one_process": rows[1], "two_processes": rows[2],
              "psnr_two_vs_one_db": None if mse == 0 else float(10 * np.log10(255.0**2 / mse)),
              **({"full_size_pos_embedding_rows": full_size_table_rows()} if orbit else {})}
    if orbit and report["full_size_pos_embedding_rows"] != TABLE_ROWS:
        sys.exit(f"the full-size orbit config keeps a {report['full_size_pos_embedding_rows']}-row table, not {TABLE_ROWS}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"cfg_parallel_tiny_{args.size}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
