"""Benchmark of `dimensionx recon` on the shared 360-degree orbit (run on a CUDA machine).

    python benchmarks/bench_recon.py                       # ../shared/data/videos/orbit360_...mp4
    python benchmarks/bench_recon.py --video FRAMES_DIR    # the same clip as a folder of frames
    python benchmarks/bench_recon.py --tiny                # CPU check of the script: 16 frames, 160 px
    python benchmarks/bench_recon.py --video FRAMES_DIR --sweep all --out DIR    # training variants, one process
    python benchmarks/bench_recon.py --video FRAMES_DIR --scene3d --out DIR      # image -> video -> 3D, per stage

Default part: 64 of the clip's 145 frames (the default of ``dimensionx recon``), the default iterations
(``--iterations`` to change), every 8th frame held out: the clip itself (480x320), read from
the video file as a user would pass it, ``--repeats`` times (run-to-run spread, mostly SfM's);
then upscaled to 720x480 (bicubic, untimed) and passed as an mp4 (a JPEG folder where no H.264
encoder exists), so the "frames" stage decodes at that size; then, with
``--short-iterations N``, 480x320 again with N iterations (time / quality trade-off). Each run
also reports the camera path (largest step, repairs) that SfM returned. Reports seconds per stage, held-out PSNR / SSIM, the
number of Gaussians and peak GPU memory; loading gsplat's CUDA extension (or compiling it, the
first time on a machine without a prebuilt wheel) and a short warm-up run (CUDA context,
kernel caches) are timed apart. Writes benchmarks/results/recon_<device>.json.

``--sweep``: at each ``--sizes`` size, the frames are read once; SfM runs once per SfM variant
(``SFM_VARIANTS``: the frames' own size, 480 px, 480 px with 2048 SIFT features; seconds,
frames registered, camera path); then every training variant (``VARIANTS``: presets and single
changes to them) trains and is evaluated on the cameras of ``--sweep-sfm``, seconds of training
and evaluation, PSNR / SSIM, Gaussians each; last, ``--full-presets`` run the whole command
(``reconstruct``: frames read from an upscaled JPEG folder, SfM, training, files) so the totals
are what a user gets. Writes recon_sweep_<device>.json.

``--scene3d``: image -> video -> 3D in one process, per stage: the full-size CogVideoX-5B-I2V with
random weights (built as bench_video.py builds it), ``--video-mode`` (fast), 49 frames, 50 steps,
one random director fused, a 2-step warm-up video first (compilation), then the timed video; the
frames stay in memory (no H.264 encoder needed) and ``reconstruct(..., frames=...)`` builds the
scene from them. A random model's video is noise that SfM cannot register, so the recon of the
generated frames is expected to stop with the SfM error (recorded); the recon stage is then timed
on the shared orbit's frames resized to the generated video's shape and count, which is what a
real model's orbit would cost. ``--tiny``: the tiny random model on CPU (9 frames, 2 steps).
Writes recon_scene3d_<device>.json.

``--hard``: the cases that broke the stage on footage it had not seen (issue 29), on CPU or CUDA.
Cuts: the synthetic montages of tests/recon_synthetic.py (12 motions of one scene, every clip
opening on the same view: full speed, slow, 16-frame clips) and the shared plate montage, the
cuts found against the true ones. Registration: the plate montage's default shot (the longest,
frames 28-52, 25 frames) through the whole command at the device's defaults: frames registered,
models, SfM seconds, repairs, held-out PSNR. Long steps: the synthetic arc whose sampling skips a
stretch (tests/test_recon_jumps.py), SfM with and without the long-step repair: largest centre step
over the median, centre error against the truth. Writes recon_hard_<device>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dimensionx.config import load_config
from dimensionx.errors import DimensionXError
from dimensionx.recon.config import ReconConfig, for_device
from dimensionx.recon.pipeline import fit_splats, reconstruct
from dimensionx.videofiles import read_frames, video_encoder, write_video

REPO = Path(__file__).resolve().parents[1]
SHARED_ORBIT = REPO / ".." / "shared" / "data" / "videos" / "orbit360_landscape_145f_480x320.mp4"
SHARED_MONTAGE = REPO / ".." / "shared" / "data" / "videos" / "camera_montage_plate_1280x854.mp4"
SIZES = ((480, 320), (720, 480))  # (width, height) px
# Training variants of the sweep: a preset, plus changes to it (ReconConfig fields).
VARIANTS = {
    "quality": {"preset": "quality"},  # 7000 iterations, DefaultStrategy (the CUDA default until 2026-12-01)
    "fast": {"preset": "fast"},  # = default: 3000 iterations, densification from 300 to 2400
    "fast_2k": {"preset": "fast", "iterations": 2000, "refine_start_iter": 200, "refine_stop_iter": 1600,
                "sh_degree_interval": 400},
    "fast_l1": {"preset": "fast", "ssim_lambda": 0.0},  # what the SSIM term costs and buys
    "fast_sh1": {"preset": "fast", "sh_degree": 1},  # fewer SH coefficients to render and step
    "fast_init": {"preset": "fast", "init_opacity": 0.5, "init_scale": 0.5},  # opaque, smaller starting splats
    "fast_no_graph": {"preset": "fast", "loss_cuda_graph": False},  # what the loss's CUDA graph buys
    "fast_appearance": {"preset": "fast", "appearance": True},  # a colour change per training frame (issue 29)
    "fast_cameras": {"preset": "fast", "refine_cameras": True},  # pose refinement on
    "fast_appearance_cameras": {"preset": "fast", "appearance": True, "refine_cameras": True},
    "fast_antialiased": {"preset": "fast", "rasterize_mode": "antialiased"},  # gsplat's 2D filter (issue 29)
    "fast_5k": {"preset": "fast", "iterations": 5000, "refine_start_iter": 400, "refine_stop_iter": 4000,
                "sh_degree_interval": 800},  # between the default and quality schedules
    "mcmc": {"preset": "mcmc"},  # MCMCStrategy, at most 300k Gaussians, 3000 iterations
    "mcmc_150k": {"preset": "mcmc", "mcmc_cap": 150_000},
    "mcmc_2k": {"preset": "mcmc", "iterations": 2000, "refine_start_iter": 200, "refine_stop_iter": 1600,
                "sh_degree_interval": 400},
}
SFM_VARIANTS = {  # SfM settings compared in the sweep (frames registered, seconds, camera path)
    "sfm_full": {"sfm_max_size": 0},
    "sfm_480": {"sfm_max_size": 480},
    "sfm_480_2k": {"sfm_max_size": 480, "sift_max_features": 2048},
    "sfm_480_global": {"sfm_max_size": 480, "mapper": "global"},  # GLOMAP instead of the incremental mapper
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=SHARED_ORBIT, help="the orbit as a video or a frame folder")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--iterations", type=int, help="training iterations (default: the device's default)")
    parser.add_argument("--preset", help="ReconConfig preset for every run of the default part (default, fast, mcmc)")
    parser.add_argument("--tiny", action="store_true", help="a CPU check of this script: 16 frames at 160 px, "
                        "30 iterations, one run at each size")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the clip at its own size")
    parser.add_argument("--short-iterations", type=int, default=0, help="a last 480x320 run this long (0: none)")
    parser.add_argument("--sweep", help="comma-separated training variants (VARIANTS), or 'all'")
    parser.add_argument("--sweep-sfm", default="sfm_480", help="the SfM variant whose cameras the variants train on")
    parser.add_argument("--sizes", default="720x480", help="sweep sizes, WxH comma-separated")
    parser.add_argument("--full-presets", default="quality,default,default+sfm_480_global",
                        help="sweep: presets run as the whole command, each optionally +SFM_VARIANT")
    parser.add_argument("--scene3d", action="store_true", help="image -> video -> 3D, per stage (see above)")
    parser.add_argument("--video-mode", default="fast", help="--scene3d: the video mode (exact, fast, lowmem)")
    parser.add_argument("--recon-preset", default="fast", help="--scene3d: the recon preset")
    parser.add_argument("--cpu", action="store_true", help="`dimensionx recon` with default flags on CPU, against "
                        "the untrained scene (1 iteration): wall and CPU seconds, PSNR margin, load average")
    parser.add_argument("--hard", action="store_true", help="the hard cases of issue 29: cuts of montages whose "
                        "clips open on one view, registration of the plate montage's shot (see above)")
    parser.add_argument("--hard-sfm-only", action="store_true", help="--hard without the whole command on the plate "
                        "shot (its training takes long on a CPU): cuts, long steps and the shot's SfM at the CUDA preset")
    parser.add_argument("--montage", type=Path, default=SHARED_MONTAGE, help="--hard: the plate montage")
    parser.add_argument("--config", type=Path, help="ReconConfig YAML for every run (e.g. loss_cuda_graph: false)")
    parser.add_argument("--out", "--results", dest="results", type=Path, default=REPO / "benchmarks" / "results",
                        help="folder of the JSON results")
    parser.add_argument("--work", type=Path, help="keep the scenes in this folder (default: a temporary one)")
    args = parser.parse_args()
    if not args.tiny and not args.cpu and not args.hard and not torch.cuda.is_available():
        raise SystemExit("bench_recon.py measures gsplat on CUDA: run it on a machine with an NVIDIA GPU "
                         "(or pass --tiny to check the script on CPU)")
    gsplat_load = load_gsplat() if torch.cuda.is_available() else None
    with contextlib.nullcontext(args.work) if args.work else tempfile.TemporaryDirectory(prefix="bench-") as work:
        work = Path(work)
        if args.cpu:
            name, report = "cpu_defaults", cpu_part(args, work)
        elif args.hard:
            name, report = "hard", hard_part(args, work)
        elif args.scene3d:
            name, report = "scene3d", scene3d_part(args, work)
        elif args.sweep:
            name, report = "sweep", sweep_part(args, work)
        else:
            name, report = "", default_part(args, work)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    report = {"device": device, "gsplat_load": gsplat_load, "tiny": args.tiny, **report,
              "software": {"torch": torch.__version__, "cuda": torch.version.cuda, "gsplat": version("gsplat"),
                           "pycolmap": version("pycolmap"), "av": version("av"),
                           "imageio-ffmpeg": version("imageio-ffmpeg"), "diffusers": version("diffusers"),
                           "python": platform.python_version(), "cpu_threads": torch.get_num_threads()}}
    args.results.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    path = args.results / f"recon_{name + '_' if name else ''}{'tiny_' if args.tiny else ''}{slug}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


def default_part(args, work: Path) -> dict:
    """The shared orbit at 480x320 (``--repeats`` times) and 720x480, whole command each."""
    if args.tiny:
        args.frames, args.iterations, args.repeats = 16, 30, 1
    frames, _ = read_frames(args.video)  # [145, 320, 480, 3]
    frames = frames[: 2 * args.frames] if args.tiny else frames
    sizes = ((160, 107), (240, 160)) if args.tiny else SIZES
    orbit_frames = 120 if video_encoder() is not None and not args.tiny else 0
    runs = []
    warmup = run(frame_folder(frames[:16], work / "warmup"), work / "warmup",
                 settings(args.config, frames=16, iterations=30 if args.tiny else 200, orbit_frames=0))
    plan = [(sizes[0], args.iterations)] * args.repeats + [(sizes[1], args.iterations)]
    plan += [(sizes[0], args.short_iterations)] if args.short_iterations else []
    for k, ((width, height), iterations) in enumerate(plan):
        config = settings(args.config, frames=args.frames, iterations=iterations, max_size=max(width, height),
                          orbit_frames=orbit_frames, preset=args.preset)
        name = work / f"{k}_{width}x{height}_{iterations}"
        native = frames.shape[1:3] == (height, width) and not args.tiny
        source = args.video if native else scaled_input(resize(frames, width, height), name)
        runs.append({"size": f"{width}x{height}", "input": source_kind(source), **run(source, name, config)})
        print(json.dumps(runs[-1], indent=2), flush=True)
    return {
        "input": f"{args.video.name}: {len(frames)} frames, {frames.shape[2]}x{frames.shape[1]}",
        "frames_sampled": args.frames,
        "preset": args.preset or "default",
        "config_file": str(args.config) if args.config else None,
        "warmup_run_seconds": warmup["seconds"]["total"],
        "orbit_video": "rendered (120 frames)" if orbit_frames else "skipped: neither imageio-ffmpeg nor PyAV with libx264 on this machine",
        "runs": runs,
    }


def sweep_part(args, work: Path) -> dict:
    """SfM variants, then training variants on one SfM result, then whole-command runs of presets."""
    from dimensionx.recon.frames import load_footage
    from dimensionx.recon.sfm import camera_prior, recover_cameras

    names = list(VARIANTS) if args.sweep == "all" else args.sweep.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}: choose from {', '.join(VARIANTS)}")
    if not torch.cuda.is_available():  # gsplat's MCMC kernels are CUDA-only
        names = [n for n in names if VARIANTS[n]["preset"] != "mcmc" and VARIANTS[n].get("strategy") != "mcmc"]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    frames, _ = read_frames(args.video)
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    if args.tiny:
        frames, sizes, args.frames = frames[:32], [(160, 107)], 16
    tiny = {"iterations": 30, "refine_start_iter": 10, "refine_stop_iter": 25, "refine_every": 10} if args.tiny else {}
    warmup = run(frame_folder(frames[:16], work / "warmup"), work / "warmup",
                 settings(args.config, frames=16, iterations=30 if args.tiny else 200, orbit_frames=0))
    report = {"input": f"{args.video.name}: {len(frames)} frames, {frames.shape[2]}x{frames.shape[1]}",
              "frames_sampled": args.frames, "warmup_run_seconds": warmup["seconds"]["total"],
              "variants": {n: VARIANTS[n] for n in names}, "sfm_variants": SFM_VARIANTS,
              "sizes": {}}
    for width, height in sizes:
        scaled = resize(frames, width, height)  # untimed: the input as the video would hold it
        size = report["sizes"][f"{width}x{height}"] = {"sfm": {}, "train": {}, "full": {}}
        base = settings(args.config, frames=args.frames, max_size=max(width, height), orbit_frames=0,
                        progress=False, video=f"{args.video.name} at {width}x{height}")
        start = time.perf_counter()
        footage = load_footage(for_device(base, device.type), scaled)
        size["frames_seconds_from_memory"] = round(time.perf_counter() - start, 3)
        sfm_results = {}
        for name, change in SFM_VARIANTS.items():
            config = for_device(dataclasses.replace(base, **change), device.type)
            part = dataclasses.replace(footage, images=footage.images.copy(), source_ids=footage.source_ids.copy())
            start = time.perf_counter()
            with recorded(size["sfm"], name):
                sfm = recover_cameras(part, work / f"sfm_{width}_{name}", config, camera_prior(config))
                sfm_results[name] = sfm, part
                size["sfm"][name] = {"seconds": round(time.perf_counter() - start, 3),
                                     "frames_registered": len(sfm.cameras), "frames_used": len(part.source_ids),
                                     "points": len(sfm.points), "reprojection_error_px": sfm.reprojection_error_px,
                                     "camera_path": sfm.path}
        if not sfm_results:
            continue
        size["trained_on"] = args.sweep_sfm if args.sweep_sfm in sfm_results else next(iter(sfm_results))
        sfm, part = sfm_results[size["trained_on"]]
        for name in names:
            config = for_device(dataclasses.replace(base, **{**VARIANTS[name], **tiny}), device.type)
            with recorded(size["train"], name):
                size["train"][name] = train_variant(config, part.images, sfm, device)
        for preset in args.full_presets.split(","):
            name, _, sfm_variant = preset.partition("+")
            config = settings(args.config, frames=args.frames, max_size=max(width, height), orbit_frames=0,
                              preset=name, **{**SFM_VARIANTS.get(sfm_variant, {}), **tiny})
            source = frame_folder(scaled, work / f"full_{width}_{preset}", suffix=".jpg")
            with recorded(size["full"], preset):
                size["full"][preset] = {"input": "JPEG frames (quality 95)",
                                        **run(source, work / f"full_{width}_{preset}", config)}
    return report


@contextlib.contextmanager
def recorded(results: dict, name: str):
    """Prints ``results[name]`` once set; a failure is recorded there instead, and the sweep goes on."""
    try:
        yield
    except Exception as exc:  # one failed variant must not cost the whole GPU run
        import traceback

        traceback.print_exc()
        results[name] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    print(name, json.dumps(results.get(name)), flush=True)


def train_variant(config: ReconConfig, images: np.ndarray, sfm, device: torch.device) -> dict:
    """Trains one variant on ``sfm``'s cameras and points and evaluates it: seconds, quality, Gaussians."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    runner = fit_splats(config, images, sfm.cameras, sfm.points, sfm.colors, device)
    if cuda:
        torch.cuda.synchronize()
    trained = time.perf_counter()
    quality, _ = runner.eval()
    result = {"train_seconds": round(trained - start, 3), "eval_seconds": round(time.perf_counter() - trained, 3),
              "ms_per_iteration": round(1000 * (trained - start) / config.iterations, 3),
              "iterations": config.iterations, "psnr": quality["psnr"], "ssim": quality["ssim"],
              "n_gaussians": runner.n_gaussians(),
              "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}
    del runner
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return result


def scene3d_part(args, work: Path) -> dict:
    """Image -> video (random CogVideoX, frames in memory) -> 3D scene, seconds per stage."""
    from dimensionx.models.hub import ResolvedModel
    from dimensionx.video.config import VideoConfig
    from dimensionx.video.generator import DirectorChoice, DirectorVideoGenerator, load_generator

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_video as bv

    if args.tiny:
        video_config = VideoConfig(model="tiny", frames=9, steps=2, device="cpu", mode="exact")
        generator = load_generator(video_config)
        model = "tiny random CogVideoX (CPU)"
    else:
        video_config = VideoConfig(frames=49, steps=50, mode=args.video_mode)
        start = time.perf_counter()
        generator = DirectorVideoGenerator(ResolvedModel("random CogVideoX-5B-I2V", Path()), torch.device("cuda"),
                                           torch.bfloat16, args.video_mode, pipe=bv.build_pipeline(seed=0))
        generator.set_directors([DirectorChoice("random", 1.0, bv.random_director(64, 0, work))], None)
        model = f"random CogVideoX-5B-I2V (bench_video.py configs), built in {time.perf_counter() - start:.1f} s"
    height, width = generator.size
    image = bv.test_image().resize((width, height))
    start = time.perf_counter()
    generator(image, bv.PROMPT, dataclasses.replace(video_config, steps=2))  # compilation, cuDNN, allocator
    warmup = time.perf_counter() - start
    sync()
    start = time.perf_counter()
    video, phases = generator(image, bv.PROMPT, video_config)  # [T, H, W, 3] uint8
    sync()
    video_seconds = time.perf_counter() - start
    del generator
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    tiny = {"iterations": 30, "max_size": 160} if args.tiny else {}
    recon = settings(args.config, frames=len(video), orbit_frames=0, preset=args.recon_preset, progress=False, **tiny)
    try:
        reconstruct(dataclasses.replace(recon, video="generated video (in memory)", out=str(work / "generated")),
                    frames=video)
        generated = "reconstructed"
    except DimensionXError as exc:
        generated = f"stopped as expected for a random model's noise: {str(exc)[:160]}"
    orbit, _ = read_frames(args.video)
    if args.tiny:  # 16 frames of the orbit's first 32 at 240x160: what SfM registers at a tiny size
        orbit, count, (width, height) = orbit[:32], 16, (240, 160)
    else:
        count = len(video)
    orbit = resize(orbit[np.linspace(0, len(orbit) - 1, count).round().astype(int)], width, height)
    scene = work / "orbit_scene"
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    reconstruct(dataclasses.replace(recon, video=f"{args.video.name} resized to {width}x{height}", out=str(scene),
                                    frames=count), frames=orbit)
    metrics = json.loads((scene / "metrics.json").read_text())
    total = video_seconds + metrics["seconds"]["total"]
    return {
        "video_model": model,
        "video": {"mode": video_config.mode, "frames": len(video), "size": f"{width}x{height}",
                  "steps": video_config.steps, "seconds": round(video_seconds, 2),
                  "phases": {k: round(v, 2) for k, v in phases.items()}, "warmup_seconds_2_steps": round(warmup, 1)},
        "recon_of_generated_frames": generated,
        "recon": {"preset": args.recon_preset, "input": f"{len(orbit)} frames of the shared orbit at {width}x{height}, "
                  "in memory (no H.264 encoder on the GPU machine: frames go from the video stage to recon in memory)",
                  **{k: metrics[k] for k in ("frames_registered", "psnr", "ssim", "n_gaussians", "iterations", "seconds")},
                  "camera_path": metrics["camera_path"],
                  "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None},
        "seconds_image_to_scene": round(total, 2),
        "note": "scene3d writes the video as mp4 and reads it back; here frames stay in memory, so encode/decode "
                "(~1 s for 49 frames at 720x480 with PyAV) is not included",
    }


def cpu_part(args, work: Path) -> dict:
    """``dimensionx recon VIDEO`` with default flags on CPU (as a user runs it: the CLI, a fresh process), and
    the same with 1 iteration (the untrained scene: the splats as initialised from the SfM points)."""
    import os
    import resource
    import subprocess

    runs = {}
    for name, extra in (("defaults", []), ("untrained", ["--iterations", "1", "--orbit-frames", "0"])):
        out = work / name
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load = os.getloadavg()
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dimensionx.cli", "recon", str(args.video), "--out", str(out),
                        "--device", "cpu", "--no-progress", *extra], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        metrics = json.loads((out / "metrics.json").read_text())
        runs[name] = {"wall_seconds": round(time.perf_counter() - start, 1),
                      "cpu_seconds": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
                      "load_average_1_5_15_before": [round(v, 2) for v in load],
                      "load_average_1_5_15_after": [round(v, 2) for v in os.getloadavg()],
                      **{k: metrics[k] for k in ("frames_registered", "psnr", "ssim", "n_gaussians", "iterations",
                                                 "seconds")}}
        print(name, json.dumps(runs[name]), flush=True)
    return {"input": str(args.video), "cpu_cores": os.cpu_count(), "runs": runs,
            "psnr_margin_db": round(runs["defaults"]["psnr"] - runs["untrained"]["psnr"], 2),
            "goal": "defaults: wall_seconds <= 300 on 2 cores; PSNR above the untrained scene's"}


def hard_part(args, work: Path) -> dict:
    """Cuts of montages whose clips all open on one view (synthetic, and the shared plate montage), and the
    plate montage's default shot through the whole command at the device's defaults."""
    sys.path.insert(0, str(REPO / "tests"))
    from recon_synthetic import MONTAGE_SHOT_STARTS, same_start_montage

    from dimensionx.recon.frames import find_cuts

    cuts = {}
    for name, clip_frames, scale in (("same_start_24f", 24, 1.0), ("same_start_slow_24f", 24, 0.2),
                                     ("same_start_16f", 16, 0.3)):
        video, truth = same_start_montage(clip_frames, scale, width=48, height=36)
        cuts[name] = cut_report(find_cuts(video, ReconConfig()), truth)
    montage, _ = read_frames(args.montage)
    cuts["plate_montage"] = cut_report(find_cuts(montage, ReconConfig()), MONTAGE_SHOT_STARTS)
    print(json.dumps(cuts, indent=2), flush=True)
    steps = long_step_report(work)
    print(json.dumps(steps, indent=2), flush=True)
    shot_sfm = shot_sfm_report(montage, work / "plate_sfm", settings(args.config, video=args.montage.name, orbit_frames=0))
    print(json.dumps(shot_sfm, indent=2), flush=True)
    if args.hard_sfm_only:
        shot = {"not_run": "--hard-sfm-only"}
    else:
        try:
            shot = run(args.montage, work / "plate", settings(args.config, orbit_frames=0))
        except DimensionXError as exc:  # the registration rule refused the shot: that is the result
            shot = {"refused": str(exc)}
        print(json.dumps(shot, indent=2), flush=True)
    return {"cuts": cuts, "long_steps": steps, "plate_montage_default_shot_sfm_cuda_preset": shot_sfm,
            "plate_montage_default_shot": {"input": args.montage.name, **shot},
            "goals": "every cut found; no centre step over 2.5x the median after the long-step repair; the shot: "
                     ">= 24 of 25 frames registered (>= 90% to be written), SfM <= 10 s on the CUDA defaults"}


def shot_sfm_report(frames: np.ndarray, work: Path, config: ReconConfig) -> dict:
    """SfM alone of the default shot of ``frames`` at the CUDA preset's settings, on whatever machine runs this:
    pycolmap's SfM runs on the CPU on either machine (its wheels have no CUDA), so the frames it registers are
    the CUDA defaults'; the seconds are this machine's CPU's."""
    from dimensionx.recon.frames import load_footage
    from dimensionx.recon.sfm import camera_prior, recover_cameras

    config = for_device(config, "cuda")
    footage = load_footage(config, frames)
    start = time.perf_counter()
    sfm = recover_cameras(footage, work / "images", config, camera_prior(config))
    return {"frames": [int(footage.source_ids.min()), int(footage.source_ids.max())], "frames_used": len(footage.source_ids),
            "frames_registered": len(sfm.cameras), "sfm_seconds": round(time.perf_counter() - start, 1),
            "cpu_threads": os.cpu_count(), "camera_path": sfm.path}


def long_step_report(work: Path) -> dict:
    """SfM of the synthetic arc sampled with a skipped stretch (tests/test_recon_jumps.py), before and after
    the long-step repair (the smooth-path adjustment off): steps, cameras, error against the known path."""
    from recon_synthetic import RenderReader, arc_cameras, intrinsics, splat_scene, umeyama

    from dimensionx.recon.frames import Footage
    from dimensionx.recon.sfm import CameraPrior, recover_cameras
    from dimensionx.splats.render import camera_centers

    viewmats, K = arc_cameras(39, 47.5), intrinsics(160, 120)
    reader = RenderReader(splat_scene(), viewmats, K, 160, 120)
    ids = np.array([i for i in range(0, 39, 2) if not 20 < i < 28])  # [17] frames 21-27 skipped
    first = reader.read(ids)
    report = {}
    for name, densify in (("before", False), ("after", True)):
        footage = Footage(first.copy(), ids.copy(), 39, [range(39)], 0, reader=reader)
        config = ReconConfig(video="arc", smooth_jumps=False, densify_long_steps=densify)
        start = time.perf_counter()
        sfm = recover_cameras(footage, work / f"long_step_{name}" / "images", config, CameraPrior())
        seconds = time.perf_counter() - start
        centres = sfm.cameras.centers()
        truth = camera_centers(viewmats[footage.source_ids[sfm.cameras.frame_ids]])
        s, R, t = umeyama(centres, truth)
        steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
        report[name] = {"cameras": len(centres), "largest_step_over_median": round(float(steps.max() / np.median(steps)), 2),
                        "largest_centre_error": round(float(np.linalg.norm(s * centres @ R.T + t - truth, axis=1).max()), 4),
                        "sfm_seconds": round(seconds, 1), "long_steps": sfm.path["long_steps"],
                        "repairs": sfm.path["repairs"]}
    return report


def cut_report(found: list[int], truth: list[int]) -> dict:
    return {"cuts": len(truth), "found": len(set(found) & set(truth)), "missed": sorted(set(truth) - set(found)),
            "extra": sorted(set(found) - set(truth))}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


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
    """The resized clip as an mp4 (untimed), as a user would pass it; a JPEG folder without an H.264 encoder."""
    if video_encoder() is None:
        return frame_folder(frames, work, suffix=".jpg")
    work.mkdir(parents=True)
    write_video(frames, work / "input.mp4", fps=8)
    return work / "input.mp4"


def source_kind(source: Path) -> str:
    if source.is_file():
        return "video file"
    return f"{next(source.iterdir()).suffix.lstrip('.').upper()} frames"


def frame_folder(frames: np.ndarray, work: Path, suffix: str = ".png") -> Path:
    """Saves [T, H, W, 3] uint8 frames as PNG (or JPEG, quality 95) files in ``work/input`` (untimed)."""
    source = work / "input"
    source.mkdir(parents=True)
    for i, frame in enumerate(frames):
        options = {"quality": 95} if suffix == ".jpg" else {"compress_level": 1}
        Image.fromarray(frame).save(source / f"{i:05d}{suffix}", **options)
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
