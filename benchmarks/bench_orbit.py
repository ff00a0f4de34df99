"""Speed and memory of ``dimensionx orbit`` (145 frames at 320x480, 50 steps): stock diffusers vs ``--mode exact|fast|lowmem``.

The orbit model's architecture is CogVideoX-5B-I2V's with ``sample_frames=145`` at 40x60
latents, so its learned positional table has 22426 rows (226 text + 37 x 20 x 30 patches), as
``dimensionx convert-sat`` writes it; weights are random (one seed, same for every mode). Each
video is made as ``dimensionx orbit`` makes it: no director, the prompt encoded once, the
unguided branch on a zero text embedding, dynamic CFG 6. Building, modes, timing, fidelity
and the measured bf16 kernel floor are ``bench_video.py``'s (imported, not copied); this
script sets the orbit's shape, checks the table, and judges the orbit's goals on one GPU:

- ``exact``: end to end within 1.15x of the kernel floor of 50 steps at this shape;
- ``fast``: <= 25 s end to end; ``lowmem``: <= 12 GiB peak reserved (T5 included).

Results go to ``benchmarks/results/orbit_<device>.json``.

    python benchmarks/bench_orbit.py                                    # all modes in one process (over 10 min)
    python benchmarks/bench_orbit.py --modes stock,exact,fast           # or in two calls (~8 min), then
    python benchmarks/bench_orbit.py --modes stock,lowmem --append      # (~6 min), same JSON
    python benchmarks/bench_orbit.py --tiny --out /tmp/orbit-smoke      # CPU wiring check (tiny-orbit, ~1 min)
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_video as bv  # noqa: E402

from dimensionx.video.config import ModeConfig  # noqa: E402

ORBIT_SHAPE = (145, 320, 480)  # frames, height, width of the 360-degree orbit model
TABLE_ROWS = 22426  # 226 + 37 * 20 * 30
GOALS = {"exact": {"kernel_floor_ratio_max": 1.15}, "fast": {"seconds_max": 25.0}, "lowmem": {"peak_gib_max": 12.0}}
GIB = 2**30


def table_rows(transformer) -> int:
    return int(transformer.patch_embed.pos_embedding.shape[1])


def full_size_table_rows() -> int:
    """Rows of the learned table diffusers keeps for the orbit's config (built on the meta device: no memory)."""
    from diffusers import CogVideoXTransformer3DModel

    with torch.device("meta"):
        return table_rows(CogVideoXTransformer3DModel(**bv.TRANSFORMER))


def judge(report: dict) -> None:
    """Ratios to stock and to the kernel floor, and the orbit goals, on every row."""
    floor = report["kernel_floor"]["bf16_step_seconds"] * report["settings"]["steps"]
    bv.finish(report["modes"], {}, report["modes"].get("stock"), ORBIT_SHAPE)  # ratio to stock, first-video times
    for mode, row in report["modes"].items():
        row["ratio_to_kernel_floor"] = row["seconds_end_to_end"] / floor
        goal = GOALS.get(mode.partition("@")[0])
        if goal:
            met = {"kernel_floor_ratio_max": row["ratio_to_kernel_floor"], "seconds_max": row["seconds_end_to_end"],
                   "peak_gib_max": row["peak_reserved_gib"]}
            row["goal"] = {**goal, "met": all(met[k] <= v for k, v in goal.items())}


def result_path(device: str, out: Path, tiny: bool) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    return out / f"orbit_{slug}{'_tiny' if tiny else ''}.json"


def run_gpu(args) -> Path:
    bv.set_shape(*ORBIT_SHAPE)
    args.frames, args.size = ORBIT_SHAPE[0], f"{ORBIT_SHAPE[1]}x{ORBIT_SHAPE[2]}"
    image, modes = bv.test_image(), args.modes.split(",")
    report = {"environment": bv.environment(),
              "settings": {"frames": args.frames, "height": ORBIT_SHAPE[1], "width": ORBIT_SHAPE[2], "steps": args.steps,
                           "guidance": 6.0, "dynamic_cfg": True, "uncond": "zero", "director": None,
                           "pos_embedding_rows": TABLE_ROWS, "full_step_tflop": bv.full_step_tflop(args.frames),
                           "weights": f"random (seed {args.seed})", "goals": GOALS},
              "kernel_floor": bv.kernel_floor(args.frames), "modes": {}}
    path = result_path(report["environment"]["device"], Path(args.out), tiny=False)
    if args.append and path.is_file():
        report["modes"] = json.loads(path.read_text())["modes"]
    reference = None
    for name in modes:
        mode, _, interval = name.partition("@")  # fast@6: fast with a full transformer pass every 6 steps
        pipe, notes = bv.prepare(mode, args.seed, None, mode_config=ModeConfig(cache_interval=int(interval)) if interval else None)
        if table_rows(pipe.transformer) != TABLE_ROWS:
            sys.exit(f"the orbit transformer's table has {table_rows(pipe.transformer)} rows, not {TABLE_ROWS}")
        overhead = bv.start_overhead(pipe, image, args)  # also warms stock's kernels: every mode is timed warm
        run = bv.generate(pipe, image, args, zero_uncond=True)
        del pipe
        bv.free_gpu()
        row = {**bv.summarize(name, run, notes, args), "start_overhead_cold_s": overhead}
        if mode == "stock":
            reference = run
        elif reference is not None:
            row.update(bv.fidelity(run, reference))
        report["modes"][name] = row
        judge(report)
        print(f"{name}: {json.dumps(row)}", flush=True)
        write(report, path)
    bv.print_table(report["modes"])
    return path


def run_tiny(args) -> Path:
    """CPU check of the orbit path: the full-size table on the meta device, then tiny-orbit through the runtime."""
    from dimensionx.models import resolve_model
    from dimensionx.orbit.config import OrbitConfig
    from dimensionx.video.generator import DirectorVideoGenerator

    bv.set_shape(*ORBIT_SHAPE)
    rows = full_size_table_rows()
    if rows != TABLE_ROWS:
        sys.exit(f"the full-size orbit config keeps a {rows}-row table, not {TABLE_ROWS}")
    model = resolve_model("tiny-orbit")
    frames = json.loads((model.path / "transformer" / "config.json").read_text())["sample_frames"]
    image = bv.test_image().resize((96, 64))
    report = {"environment": {"device": platform.processor() or platform.machine(), "torch": torch.__version__},
              "settings": {"model": "tiny-orbit", "frames": frames, "steps": args.steps, "uncond": "zero",
                           "full_size_pos_embedding_rows": rows}, "modes": {}}
    for name in args.modes.split(","):
        mode, _, interval = name.partition("@")
        start = time.perf_counter()
        generator = DirectorVideoGenerator(model, torch.device("cpu"), torch.float32, "exact" if mode == "stock" else mode,
                                           mode_config=ModeConfig(cache_interval=int(interval)) if interval else None)
        config = OrbitConfig(model="tiny-orbit", frames=frames, steps=args.steps, prompt=bv.PROMPT)
        video, seconds = generator(image, config.prompt, config)
        report["modes"][name] = {"seconds_end_to_end": time.perf_counter() - start, "seconds": seconds, "frames": int(video.shape[0]),
                                 "pos_embedding_rows": table_rows(generator.pipe.transformer),
                                 "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB}
        print(f"{name}: {json.dumps(report['modes'][name])}", flush=True)
    path = result_path(report["environment"]["device"], Path(args.out), tiny=True)
    write(report, path)
    return path


def write(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="stock,exact,fast,lowmem",
                        help="comma-separated; stock first gives the reference; fast@N: fast with a full pass every N steps")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--append", action="store_true", help="keep the rows of modes not run here from the JSON already in --out")
    parser.add_argument("--tiny", action="store_true", help="CPU wiring check on the tiny orbit model (2 steps unless --steps)")
    args = parser.parse_args()
    if args.tiny:
        args.steps = args.steps if "--steps" in sys.argv else 2
        path = run_tiny(args)
    elif not torch.cuda.is_available():
        sys.exit("bench_orbit.py needs a CUDA GPU (or --tiny for the CPU wiring check): run it on the GPU machine")
    else:
        path = run_gpu(args)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
