"""Seconds per stage and peak memory of ``dimensionx scene4d`` at its defaults, and the 4D fit of a static scene.

Part 1, the whole pipeline: the full CogVideoX-5B-I2V architecture with random weights (built as
``bench_video.py`` builds it, saved once as a diffusers folder under ``--work``), two random
rank-64 director LoRAs standing in for ``time`` and ``orbit_left``, then ``make_scene4d`` with
the defaults of configs/fourd.yaml in each ``--modes`` (exact, fast). Random frames defeat SfM,
so the cameras are a known arc (``--cameras``); SfM is timed in part 2. Reports the seconds of
the T video, the reference + identity-preserving rows, the refinement loops, the 4D fit, the
renders, and peak GPU memory. Goal: a whole scene in <= 300 s in fast mode.

Part 2, the fit alone: the shared 360-degree orbit (``--orbit``: a video, or a folder of its
frames, which needs no imageio/PyAV), every 3rd frame of its first ``3 views``, is a static 4D
scene (the same frames at every time); SfM through recon's ``run_sfm`` (timed), then the 4D fit
with the iteration budget of each of ``--modes``. Reports seconds, iterations, held-out
PSNR/SSIM, the mean position offset per time (must stay near zero) and the Gaussian count.

Part 3, motion you can measure (``--part motion``): the synthetic moving scene of
tests/fourd_synthetic.py (an object shifting 0.8 units and turning 60 degrees before a still wall,
``--motion-gaussians`` Gaussians) rendered into a 9 x 25 grid at 160x120 px, fitted from a jittered half
of its true Gaussians at t = 0.5 (as SfM points of the key row would be) with densification, the
fast budget. Reported per fit: held-out PSNR at held-out views x grid times, PSNR of every view at
the 8 times between the grid's rows, the recovered motion's error (world units and relative to the
true motion), Gaussians. The same scene held still is fitted alike; goal: the moving fit within
2 dB of the still one. Each of ``--seeds`` with ``prune_large`` off and on.

    python benchmarks/bench_fourd.py --part pipeline --modes fast --work /tmp/fourd   # -> results/fourd_<device>_pipeline_fast.json
    python benchmarks/bench_fourd.py --part pipeline --modes exact --work /tmp/fourd  # reuses the saved random model
    python benchmarks/bench_fourd.py --part pipeline --modes exact --work /tmp/fourd --resume  # finishes a stopped run
    python benchmarks/bench_fourd.py --part fit --orbit FRAMES_DIR   # part 2 only (no diffusers needed)
    python benchmarks/bench_fourd.py --part motion --seeds 1,2,3   # -> results/fourd_<device>_motion.json
    python benchmarks/bench_fourd.py --tiny --out /tmp/b    # CPU wiring check: tiny model, tiny grid
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "benchmarks"), str(REPO / "tests")]
SHARED_ORBIT = REPO / ".." / "shared" / "data" / "videos" / "orbit360_landscape_145f_480x320.mp4"
TINY = {"model": "tiny", "device": "cpu", "fit_device": "cpu", "steps": 4, "time_frames": 9, "times": 9, "views": 9,
        "iterations": 10, "init_points": 300, "max_size": 120, "render_frames": 3}

MOTION_TINY = {"iterations": 40, "plane_resolution": 8, "plane_scales": (1,), "plane_features": 8, "mlp_width": 32,
               "densify_every": 20}  # part 3's CPU wiring check: the test's small field; the reference rasterizer is slow

from dimensionx.config import load_config  # noqa: E402
from dimensionx.fourd.config import FourDConfig  # noqa: E402


def device_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or platform.machine()


def arc_transforms(views: int, width: int, height: int) -> dict:
    from recon_synthetic import arc_cameras, intrinsics, transforms_json

    return transforms_json(arc_cameras(views, 60.0), intrinsics(width, height), width, height)


def full_model(work: Path) -> tuple[str, str]:
    """(model folder, LoRA folder) of the random full-size model and directors, built once under ``work``."""
    from bench_video import build_pipeline, random_director

    from dimensionx.directors.registry import get_director

    model, loras = work / "cogvideox-5b-i2v-random", work / "loras"
    if not (model / "model_index.json").is_file():
        pipe = build_pipeline(seed=0)
        pipe.save_pretrained(model)
        del pipe
        torch.cuda.empty_cache()
    if not loras.is_dir():
        loras.mkdir(parents=True)
        for seed, name in enumerate(("time", "orbit_left")):
            lora = random_director(64, seed, work)
            shutil.move(lora.path, loras / get_director(name).filename)
    return str(model), str(loras)


def photo(path: Path, width: int, height: int) -> Path:
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width]
    disc = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (0.3 * height) ** 2
    Image.fromarray(np.stack([x / width * 255, y / height * 255, disc * 200 + 30], -1).astype(np.uint8)).save(path)
    return path


def run_pipeline(args, work: Path) -> list[dict]:
    from dimensionx.fourd.pipeline import make_scene4d

    base = load_config(FourDConfig, REPO / "configs" / ("fourd_tiny.yaml" if args.tiny else "fourd.yaml"), TINY if args.tiny else None)
    if args.tiny:
        width, height = 96, 64
    else:
        base = dataclasses.replace(base, **dict(zip(("model", "lora_dir"), full_model(work))))
        width, height = 720, 480
    cameras = work / "arc.json"
    cameras.write_text(json.dumps(arc_transforms(base.views, width, height)))
    rows = []
    for mode in args.modes.split(","):
        if args.warmup:  # what a second scene on this machine costs: Inductor's on-disk cache already holds every shape
            start = time.perf_counter()
            make_scene4d(dataclasses.replace(base, mode=mode, steps=2, iterations=10, image=str(photo(work / "photo.png", width, height)),
                                             cameras=str(cameras), out=str(work / f"warmup_{mode}"), overwrite=True))
            print(f"warm-up scene ({mode}, 2 steps, 10 fit iterations): {time.perf_counter() - start:.1f} s")
        config = dataclasses.replace(base, mode=mode, image=str(photo(work / "photo.png", width, height)),
                                     cameras=str(cameras), out=str(work / f"scene_{mode}"), overwrite=not args.resume)
        start = time.perf_counter()
        out = make_scene4d(config)
        metrics = json.loads((out / "metrics.json").read_text())
        stages = {name: json.loads((out / name / "stage.json").read_text()) for name in metrics["seconds"]}
        rows.append({"mode": mode, "compile_cache": "warm (a 2-step scene of the same shapes ran first)" if args.warmup else "cold",
                     "seconds_total": round(sum(metrics["seconds"].values()), 1), "seconds": metrics["seconds"],
                     "seconds_this_process": round(time.perf_counter() - start, 1),
                     "seconds_before_resume": {k: v["seconds_before_resume"] for k, v in stages.items() if "seconds_before_resume" in v},
                     "seconds_detail": metrics["seconds_detail"], "grid": metrics["grid"],
                     "fit_psnr": metrics["fit"]["psnr"], "fit_iterations": metrics["fit"]["iterations"],
                     "fit_ms_per_iteration": metrics["fit"]["ms_per_iteration"], "fit_n_gaussians": metrics["fit"]["n_gaussians"],
                     "videos": videos_made(config), "batch": config.batch,
                     "peak_gpu_gib": max((v for v in metrics["peak_gpu_gib"].values() if v is not None), default=None),
                     "peak_gpu_gib_per_stage": metrics["peak_gpu_gib"]})
        print(json.dumps(rows[-1], indent=1))
    return rows


def videos_made(config: FourDConfig) -> dict:
    """What the grid costs in videos: counts and frames of each kind."""
    return {"temporal": [1, config.time_frames], "reference": [1, config.views], "rows": [config.times - 1, config.views],
            "refine_over_time": [config.loops * config.views, config.times], "refine_over_views": [config.loops * config.times, config.views]}


def static_grid(frames: np.ndarray, config: FourDConfig):
    """The orbit as a static 4D grid: its first ``config.views`` views at every one of ``config.times`` times."""
    from dimensionx.fourd.grid import Grid

    views = frames[: 3 * config.views : 3]  # every 3rd frame (7.5 degrees apart, as recon's 49 of 145): SfM matches them
    rows_at = list(range(0, config.time_frames, (config.time_frames - 1) // (config.times - 1)))
    return Grid(np.repeat(views[None], config.times, axis=0), rows_at, 0)


def run_static_fit(args, work: Path) -> list[dict]:
    """Part 2: the shared orbit as a static 4D scene, fitted with the budget of each of ``--modes``."""
    from dimensionx.fourd.scene import fit_scene
    from dimensionx.videofiles import read_frames

    frames, _ = read_frames(args.orbit)
    rows = []
    for mode, reference in ((m, r) for m in args.modes.split(",") for r in args.offset_references.split(",")):
        config = load_config(FourDConfig, REPO / "configs" / "fourd.yaml",
                             {**(TINY if args.tiny else {}), "mode": mode, "offset_reference": reference,
                              "prune_large": args.prune_large})
        grid = static_grid(frames, config)
        folder = work / f"static_fit_{mode}_{reference}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        fit_scene(grid, folder, folder, config)
        fit = json.loads((folder / "fit.json").read_text())
        rows.append({"mode": mode, "offset_reference": reference, "seconds_fit": round(fit["seconds"]["fit"], 1), "seconds_sfm": round(fit["seconds"]["cameras"], 1),
                     "iterations": fit["iterations"], "ms_per_iteration": round(fit["ms_per_iteration"], 2),
                     "psnr": fit["psnr"], "ssim": fit["ssim"], "mean_offset_per_time": fit["deformation_per_time"],
                     "mean_offset_over_extent": max(fit["deformation_per_time"]) / fit["scene_extent"],
                     "n_gaussians": fit["n_gaussians"], "n_gaussians_start": fit["n_gaussians_start"],
                     "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
                     "fit": fit})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "fit"}, indent=1))
    return rows


def start_splats(scene, config: FourDConfig, seed: int) -> torch.nn.ParameterDict:
    """A jittered half of the scene's true Gaussians at t = 0.5 (0.03 units, colours kept), as SfM points of the key row."""
    from dimensionx.splats.gaussians import init_splats, sh_to_rgb

    truth = scene.at(0.5)
    rng = np.random.default_rng(seed)
    keep = rng.permutation(scene.n)[: scene.n // 2]
    points = truth["means"][keep].numpy() + rng.normal(0, 0.03, (len(keep), 3))
    colors = (sh_to_rgb(truth["sh"][keep, 0]).clamp(0, 1) * 255).round().byte().numpy()
    return init_splats(points, colors, config.sh_degree, config.init_opacity, 1.0)


PRUNE_CHOICES = {"off": (False,), "on": (True,), "both": (False, True)}  # --motion-prune -> prune_large values


def run_motion(args) -> list[dict]:
    """Part 3: the synthetic moving scene and the same scene held still, fitted as scene4d fits a grid."""
    from fourd_synthetic import MovingScene, grid_views, held_out_time_psnr, motion_error

    from dimensionx.fourd.fit import Fitter
    from dimensionx.splats.render import scene_scale

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = (48, 36, 5, 9) if args.tiny else (160, 120, 9, 25)  # width, height, times, views
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for motion in (1.0, 0.0):
            scene = MovingScene(motion=motion, n=200 if args.tiny else args.motion_gaussians, seed=seed)
            views = grid_views(scene, size[2], size[3], size[0], size[1], holdout=4 if args.tiny else 8, device=device)
            for prune_large in PRUNE_CHOICES[args.motion_prune]:
                config = load_config(FourDConfig, REPO / "configs" / "fourd.yaml",
                                     {"mode": "fast", "prune_large": prune_large, **(MOTION_TINY if args.tiny else {})})
                torch.manual_seed(seed)
                fitter = Fitter(config, start_splats(scene, config, seed), views, scene_scale(views.viewmats.cpu().numpy()), device)
                start = time.perf_counter()
                fitter.train(seed, progress=False)
                seconds = time.perf_counter() - start
                quality, between = fitter.evaluate(), held_out_time_psnr(fitter, scene)
                rows.append({"seed": seed, "motion": motion, "prune_large": prune_large, "iterations": fitter.iterations,
                             "seconds_fit": round(seconds, 1), "n_gaussians": len(fitter.splats["means"]),
                             "psnr_holdout_views": float(np.mean(quality["psnr"])), "psnr_per_time": quality["psnr"],
                             "psnr_between_times": float(np.mean(between)), "psnr_per_between_time": between,
                             "motion_error": motion_error(fitter, scene)})
                print(json.dumps({k: v for k, v in rows[-1].items() if "per_" not in k}), flush=True)
    return rows


def motion_summary(rows: list[dict]) -> dict:
    """Means over seeds of each (motion, prune_large), and the moving fit's PSNR gap to the still one."""
    out = {}
    for prune_large in (False, True):
        pick = lambda m: [r for r in rows if r["motion"] == m and r["prune_large"] == prune_large]  # noqa: E731
        moving, still = pick(1.0), pick(0.0)
        if not moving or not still:  # a run of one --motion-prune choice
            continue
        out[f"prune_large={prune_large}"] = {
            "psnr_holdout_moving": float(np.mean([r["psnr_holdout_views"] for r in moving])),
            "psnr_holdout_still": float(np.mean([r["psnr_holdout_views"] for r in still])),
            "gap_db": float(np.mean([r["psnr_holdout_views"] for r in still]) - np.mean([r["psnr_holdout_views"] for r in moving])),
            "psnr_between_times_moving": float(np.mean([r["psnr_between_times"] for r in moving])),
            "motion_error_relative": float(np.mean([r["motion_error"]["relative"] for r in moving])),
            "motion_error_units": float(np.mean([r["motion_error"]["error"] for r in moving])),
            "still_drift_units": float(np.mean([r["motion_error"]["error"] for r in still])),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "pipeline", "fit", "motion"], default="all")
    parser.add_argument("--modes", default="fast,exact", help="comma-separated video modes (part 2: their fit budgets)")
    parser.add_argument("--orbit", type=Path, default=SHARED_ORBIT, help="part 2's static scene: a video or a folder of frames")
    parser.add_argument("--tiny", action="store_true", help="CPU wiring check: tiny model and grid")
    parser.add_argument("--offset-references", default="mean",
                        help="part 2: comma-separated offset_reference values to fit with (mean, key, none): their cost and drift")
    parser.add_argument("--warmup", action="store_true",
                        help="part 1: make a 2-step scene of the same shapes first, then time the real one with torch.compile's cache warm")
    parser.add_argument("--resume", action="store_true",
                        help="part 1: finish the scenes an earlier run left in --work (stopped by a call's time limit, say): "
                             "stages and refinement passes done are kept, and seconds_total counts each stage's kept work")
    parser.add_argument("--prune-large", action="store_true", help="part 2: fit with prune_large (FourDConfig)")
    parser.add_argument("--seeds", default="1,2,3", help="part 3: comma-separated seeds of the synthetic scene and fit")
    parser.add_argument("--motion-prune", choices=sorted(PRUNE_CHOICES), default="both",
                        help="part 3: fit with prune_large off, on or both (a short GPU call: one)")
    parser.add_argument("--motion-gaussians", type=int, default=4000, help="part 3: Gaussians of the synthetic scene")
    parser.add_argument("--work", type=Path, help="folder for the model and scenes (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")  # stage seconds as they finish
    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit("bench_fourd.py times the default settings on CUDA; pass --tiny for a CPU wiring check")
    report = {"device": device_name(), "torch": torch.__version__, "tiny": args.tiny}
    with tempfile.TemporaryDirectory(prefix="bench-fourd-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.part in ("all", "pipeline"):
            report["pipeline"] = run_pipeline(args, work)
        if args.part in ("all", "fit"):
            report["static_fit"] = run_static_fit(args, work)
        if args.part in ("all", "motion"):
            report["motion"] = run_motion(args)
            report["motion_summary"] = motion_summary(report["motion"])
            print(json.dumps(report["motion_summary"], indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    label = args.part + ("" if args.part in ("fit", "motion") else "_" + args.modes.replace(",", "_"))
    label += "_prune_large" if args.prune_large and args.part == "fit" else ""  # split runs keep their own files
    path = args.out / f"fourd_{re.sub(r'[^A-Za-z0-9]+', '_', report['device']).strip('_').lower()}_{label}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
