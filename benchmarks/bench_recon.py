"""Benchmark of `dimensionx recon` on the shared 360-degree orbit (run on a CUDA machine).

    python benchmarks/bench_recon.py                       # ../shared/data/videos/orbit360_...mp4
    python benchmarks/bench_recon.py --video FRAMES_DIR    # the same clip as a folder of frames

For each size (the clip's own 480x320, and upscaled to 720x480): 49 of its 145 frames, 7000
iterations, every 8th frame held out; then 480x320 again with ``--short-iterations`` to show
the time / quality trade-off. Reports seconds per stage, held-out PSNR / SSIM, the number of
Gaussians and peak GPU memory; the one-time gsplat CUDA build and a short warm-up run (CUDA
context, kernel caches) are timed apart. Writes benchmarks/results/recon_<device>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dimensionx.config import load_config
from dimensionx.media import read_frames
from dimensionx.recon.config import ReconConfig
from dimensionx.recon.pipeline import reconstruct

REPO = Path(__file__).resolve().parents[1]
SHARED_ORBIT = REPO / ".." / "shared" / "data" / "videos" / "orbit360_landscape_145f_480x320.mp4"
SIZES = ((480, 320), (720, 480))  # (width, height) px


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=SHARED_ORBIT, help="the orbit as a video or a frame folder")
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--iterations", type=int, default=7000)
    parser.add_argument("--short-iterations", type=int, default=3500, help="a last 480x320 run this long (0: none)")
    parser.add_argument("--config", type=Path, help="ReconConfig YAML for every run (e.g. loss_cuda_graph: false)")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--work", type=Path, help="keep the scenes in this folder (default: a temporary one)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_recon.py measures gsplat on CUDA: run it on a machine with an NVIDIA GPU")

    build_seconds = time_gsplat_build()
    frames, _ = read_frames(args.video)  # [145, 320, 480, 3]
    orbit_frames = 120 if has_video_encoder() else 0
    runs = []
    with contextlib.nullcontext(args.work) if args.work else tempfile.TemporaryDirectory(prefix="bench-") as work:
        work = Path(work)
        warmup = run(frames[:16], work / "warmup", settings(args.config, frames=16, iterations=200, orbit_frames=0))
        plan = [(size, args.iterations) for size in SIZES]
        plan += [(SIZES[0], args.short_iterations)] if args.short_iterations else []
        for (width, height), iterations in plan:
            config = settings(args.config, frames=args.frames, iterations=iterations, max_size=max(width, height),
                              orbit_frames=orbit_frames)
            name = f"{width}x{height}_{iterations}"
            runs.append({"size": f"{width}x{height}", "iterations": iterations,
                         **run(resize(frames, width, height), work / name, config)})
            print(json.dumps(runs[-1], indent=2), flush=True)

    device = torch.cuda.get_device_name()
    report = {
        "device": device,
        "input": f"{args.video.name}: {len(frames)} frames, {frames.shape[2]}x{frames.shape[1]}",
        "frames_sampled": args.frames,
        "config_file": str(args.config) if args.config else None,
        "gsplat_build_seconds": build_seconds,
        "warmup_run_seconds": warmup["seconds"]["total"],
        "orbit_video": "rendered (120 frames)" if orbit_frames else "skipped: no mp4 encoder (PyAV) on this machine",
        "runs": runs,
        "software": {"torch": torch.__version__, "cuda": torch.version.cuda, "gsplat": version("gsplat"),
                     "pycolmap": version("pycolmap"), "python": platform.python_version(),
                     "cpu_threads": torch.get_num_threads()},
    }
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"recon_{re.sub(r'[^a-z0-9]+', '-', device.lower()).strip('-')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


def settings(path: Path | None, **overrides) -> ReconConfig:
    return load_config(ReconConfig, path, overrides)


def time_gsplat_build() -> float:
    """Seconds to JIT-compile (or load) gsplat's CUDA extension: paid once per machine."""
    start = time.perf_counter()
    from gsplat.cuda._backend import _C  # noqa: F401

    return round(time.perf_counter() - start, 1)


def has_video_encoder() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def resize(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """[T, H, W, 3] uint8 -> [T, height, width, 3] uint8, bicubic."""
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BICUBIC)) for f in frames])


def run(frames: np.ndarray, work: Path, config: ReconConfig) -> dict:
    """Reconstructs ``frames`` (saved as a frame folder, untimed) and returns metrics.json plus peak memory."""
    source = work / "input"
    source.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(source / f"{i:05d}.png", compress_level=1)
    config.video, config.out, config.progress = str(source), str(work / "scene"), False
    torch.cuda.reset_peak_memory_stats()
    reconstruct(config)
    metrics = json.loads((work / "scene" / "metrics.json").read_text())
    keys = ("frames_total", "frames_used", "frames_registered", "models_found", "reprojection_error_px", "psnr",
            "ssim", "n_gaussians", "seconds")
    return {**{k: metrics[k] for k in keys}, "holdout_frames": len(metrics["holdout_frames"]),
            "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "peak_gpu_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2)}


def version(package: str) -> str:
    from importlib.metadata import version as installed

    return installed(package)


if __name__ == "__main__":
    main()
