"""Benchmark of `dimensionx recon` on the shared 360-degree orbit (run on a CUDA machine).

    python benchmarks/bench_recon.py                       # ../shared/data/videos/orbit360_...mp4
    python benchmarks/bench_recon.py --video FRAMES_DIR    # the same clip as a folder of frames
    python benchmarks/bench_recon.py --tiny                # CPU check of the script: 16 frames, 160 px

64 of the clip's 145 frames (the default of ``dimensionx recon``), the default iterations
(``--iterations`` to change), every 8th frame held out: the clip itself (480x320), read from
the video file as a user would pass it, ``--repeats`` times (run-to-run spread, mostly SfM's);
then upscaled to 720x480 (bicubic, untimed) and passed as an mp4 (a PNG folder where no H.264
encoder exists), so the "frames" stage decodes at that size; then, with
``--short-iterations N``, 480x320 again with N iterations (time / quality trade-off). Each run
also reports the camera path (largest step, repairs) that SfM returned. Reports seconds per stage, held-out PSNR / SSIM, the
number of Gaussians and peak GPU memory; loading gsplat's CUDA extension (or compiling it, the
first time on a machine without a prebuilt wheel) and a short warm-up run (CUDA context,
kernel caches) are timed apart. Writes benchmarks/results/recon_<device>.json.
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
from dimensionx.media import read_frames, video_encoder, write_video
from dimensionx.recon.config import ReconConfig
from dimensionx.recon.pipeline import reconstruct

REPO = Path(__file__).resolve().parents[1]
SHARED_ORBIT = REPO / ".." / "shared" / "data" / "videos" / "orbit360_landscape_145f_480x320.mp4"
SIZES = ((480, 320), (720, 480))  # (width, height) px


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=SHARED_ORBIT, help="the orbit as a video or a frame folder")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--iterations", type=int, help="training iterations (default: the device's default)")
    parser.add_argument("--tiny", action="store_true", help="a CPU check of this script: 16 frames at 160 px, "
                        "30 iterations, one run at each size")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the clip at its own size")
    parser.add_argument("--short-iterations", type=int, default=0, help="a last 480x320 run this long (0: none)")
    parser.add_argument("--config", type=Path, help="ReconConfig YAML for every run (e.g. loss_cuda_graph: false)")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--work", type=Path, help="keep the scenes in this folder (default: a temporary one)")
    args = parser.parse_args()
    if args.tiny:
        args.frames, args.iterations, args.repeats = 16, 30, 1
    elif not torch.cuda.is_available():
        raise SystemExit("bench_recon.py measures gsplat on CUDA: run it on a machine with an NVIDIA GPU "
                         "(or pass --tiny to check the script on CPU)")

    gsplat_load = load_gsplat() if torch.cuda.is_available() else None
    frames, _ = read_frames(args.video)  # [145, 320, 480, 3]
    frames = frames[: 2 * args.frames] if args.tiny else frames
    sizes = ((160, 107), (240, 160)) if args.tiny else SIZES
    orbit_frames = 120 if video_encoder() is not None and not args.tiny else 0
    runs = []
    with contextlib.nullcontext(args.work) if args.work else tempfile.TemporaryDirectory(prefix="bench-") as work:
        work = Path(work)
        warmup = run(frame_folder(frames[:16], work / "warmup"), work / "warmup",
                     settings(args.config, frames=16, iterations=30 if args.tiny else 200, orbit_frames=0))
        plan = [(sizes[0], args.iterations)] * args.repeats + [(sizes[1], args.iterations)]
        plan += [(sizes[0], args.short_iterations)] if args.short_iterations else []
        for k, ((width, height), iterations) in enumerate(plan):
            config = settings(args.config, frames=args.frames, iterations=iterations, max_size=max(width, height),
                              orbit_frames=orbit_frames)
            name = work / f"{k}_{width}x{height}_{iterations}"
            native = frames.shape[1:3] == (height, width) and not args.tiny
            source = args.video if native else scaled_input(resize(frames, width, height), name)
            runs.append({"size": f"{width}x{height}", "input": source_kind(source), **run(source, name, config)})
            print(json.dumps(runs[-1], indent=2), flush=True)

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    report = {
        "device": device,
        "input": f"{args.video.name}: {len(frames)} frames, {frames.shape[2]}x{frames.shape[1]}",
        "frames_sampled": args.frames,
        "config_file": str(args.config) if args.config else None,
        "gsplat_load": gsplat_load,
        "warmup_run_seconds": warmup["seconds"]["total"],
        "tiny": args.tiny,
        "orbit_video": "rendered (120 frames)" if orbit_frames else "skipped: neither imageio-ffmpeg nor PyAV with libx264 on this machine",
        "runs": runs,
        "software": {"torch": torch.__version__, "cuda": torch.version.cuda, "gsplat": version("gsplat"),
                     "pycolmap": version("pycolmap"), "av": version("av"), "imageio-ffmpeg": version("imageio-ffmpeg"),
                     "python": platform.python_version(),
                     "cpu_threads": torch.get_num_threads()},
    }
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"recon_{'tiny_' if args.tiny else ''}{re.sub(r'[^a-z0-9]+', '-', device.lower()).strip('-')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


def settings(path: Path | None, **overrides) -> ReconConfig:
    return load_config(ReconConfig, path, overrides)


def load_gsplat() -> dict:
    """Seconds to load gsplat's CUDA extension, and whether it came prebuilt or was JIT-compiled (once a machine)."""
    start = time.perf_counter()
    from gsplat.cuda._backend import _C

    prebuilt = _C.__name__ == "gsplat.csrc"  # a wheel built with CUDA; else gsplat compiles on first use
    return {"seconds": round(time.perf_counter() - start, 1),
            "extension": "prebuilt (wheel built with CUDA)" if prebuilt else "JIT-compiled at first use"}


def resize(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """[T, H, W, 3] uint8 -> [T, height, width, 3] uint8, bicubic."""
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BICUBIC)) for f in frames])


def scaled_input(frames: np.ndarray, work: Path) -> Path:
    """The resized clip as an mp4 (untimed), as a user would pass it; a PNG folder without an H.264 encoder."""
    if video_encoder() is None:
        return frame_folder(frames, work)
    work.mkdir(parents=True)
    write_video(frames, work / "input.mp4", fps=8)
    return work / "input.mp4"


def source_kind(source: Path) -> str:
    return "video file" if source.is_file() else "PNG frames"


def frame_folder(frames: np.ndarray, work: Path) -> Path:
    """Saves [T, H, W, 3] uint8 frames as PNGs in ``work/input`` (untimed) and returns that folder."""
    source = work / "input"
    source.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(source / f"{i:05d}.png", compress_level=1)
    return source


def run(source: Path, work: Path, config: ReconConfig) -> dict:
    """Reconstructs ``source`` (a video or a frame folder) and returns metrics.json plus peak memory."""
    config.video, config.out, config.progress = str(source), str(work / "scene"), False
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    reconstruct(config)
    metrics = json.loads((work / "scene" / "metrics.json").read_text())
    keys = ("frames_total", "frames_used", "frames_registered", "models_found", "reprojection_error_px",
            "camera_path", "psnr", "ssim", "n_gaussians", "iterations", "seconds")
    return {**{k: metrics[k] for k in keys}, "holdout_frames": len(metrics["holdout_frames"]),
            "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
            "peak_gpu_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2) if cuda else None}


def version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(package)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
