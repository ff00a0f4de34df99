"""Where does a CFG-parallel step lose time? Per-step timings and a kernel profile on each rank.

Runs the full 5B-I2V architecture (random weights, exact mode, 49 frames 480x720) once in one
process and once under torchrun on two GPUs. Each process times every denoising step on the
host (callback_on_step_end) and on the GPU (CUDA events around the transformer and around the
all-gather), then profiles 3 steps with torch.profiler. Writes ``profile_<n>proc_rank<r>.json``
and ``.txt`` tables into ``--out``.

    python benchmarks/profile_cfg_parallel.py --out /tmp/prof      # needs 2 CUDA GPUs, ~4 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_video import PROMPT, prepare, random_director, test_image  # noqa: E402


class StepTimer:
    """CUDA events around the transformer forward and host time between scheduler steps."""

    def __init__(self, transformer):
        self.forward_ms, self.host_s, self._events = [], [], []
        self._last = None
        transformer.register_forward_pre_hook(self._pre)
        transformer.register_forward_hook(self._post)

    def _pre(self, module, args):
        start = torch.cuda.Event(enable_timing=True)
        start.record()
        self._events.append([start, None])

    def _post(self, module, args, output):
        end = torch.cuda.Event(enable_timing=True)
        end.record()
        self._events[-1][1] = end

    def callback(self, pipe, step, timestep, kwargs):
        now = time.perf_counter()
        if self._last is not None:
            self.host_s.append(now - self._last)
        self._last = now
        return {}

    def finish(self):
        torch.cuda.synchronize()
        self.forward_ms = [s.elapsed_time(e) for s, e in self._events if e is not None]


def run_one(args) -> None:
    import torch.distributed as dist

    from dimensionx.video.parallel import enable_cfg_parallel, init_process, is_distributed

    device = init_process("cuda") if is_distributed() else torch.device("cuda", 0)
    torch.cuda.set_device(device)
    rank = dist.get_rank() if dist.is_initialized() else 0
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    lora = random_director(64, 1, Path(args.out))
    pipe, _ = prepare("exact", 0, lora)
    if is_distributed():
        enable_cfg_parallel(pipe.transformer)
    image = test_image()

    def video(steps, callback=None):
        return pipe(image=image, prompt=PROMPT, height=480, width=720, num_frames=49, num_inference_steps=steps,
                    guidance_scale=6.0, use_dynamic_cfg=True, generator=torch.Generator("cpu").manual_seed(0),
                    output_type="latent", callback_on_step_end=callback)

    video(2)  # compile + warm-up
    video(2)
    timer = StepTimer(pipe.transformer)
    torch.cuda.synchronize()
    start = time.perf_counter()
    video(args.steps, timer.callback)
    torch.cuda.synchronize()
    total = time.perf_counter() - start
    timer.finish()
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        video(3)
        torch.cuda.synchronize()
    tag = f"profile_{processes}proc_rank{rank}"
    table_cuda = prof.key_averages().table(sort_by="cuda_time_total", row_limit=30)
    table_cpu = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30)
    Path(args.out, f"{tag}.txt").write_text(table_cuda + "\n\n" + table_cpu)
    Path(args.out, f"{tag}.json").write_text(json.dumps({
        "processes": processes, "rank": rank, "steps": args.steps, "seconds_total": total,
        "seconds_per_step_host": timer.host_s, "transformer_forward_ms": timer.forward_ms,
        "device": torch.cuda.get_device_name(device),
    }, indent=1))
    print(tag, f"total {total:.2f}s", "forward ms median", sorted(timer.forward_ms)[len(timer.forward_ms) // 2],
          "host step median", sorted(timer.host_s)[len(timer.host_s) // 2], flush=True)
    if dist.is_initialized():
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--out", required=True)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=["1", "2"], help="run only the 1- or 2-process case")
    args = parser.parse_args()
    if args.worker:
        return run_one(args)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    own = [__file__, "--worker", "--steps", str(args.steps), "--out", args.out]
    if args.only != "2":
        subprocess.run([sys.executable, *own], check=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": "0"})
    if args.only != "1":
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *own], check=True)


if __name__ == "__main__":
    main()
