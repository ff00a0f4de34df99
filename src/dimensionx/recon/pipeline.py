"""Video -> cameras -> 3D Gaussians -> files, top to bottom: ``reconstruct(ReconConfig(...))``."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..atomic import remove_leftover_temps, write_json
from ..config import check_seed, config_to_dict
from ..device import resolve_device
from ..errors import DimensionXError
from ..outputs import atomic_dir, check_output_dir
from ..videofiles import MAX_RENDER_FRAMES, check_fps, check_video_encoder, write_video
from .cameras import (
    Cameras,
    cameras_from_transforms,
    reconstruction_from_cameras,
    scale_intrinsics,
    set_poses,
    smooth_path,
    transforms_from_cameras,
)
from .config import ReconConfig, for_device
from .diskspace import disk_space_checked
from ..splats.export import write_ply, write_splat
from .frames import load_footage, save_pngs, thumbnails
from ..splats.gaussians import init_splats, random_points
from ..splats.metrics import LPIPS_NOTE, check_holdout
from ..splats.render import RASTERIZE_MODES, scene_scale
from .sfm import camera_prior, frame_names, recover_cameras, save_images
from .train import Runner, Scene, split_holdout

log = logging.getLogger(__name__)
MAX_ITERATIONS = 1_000_000  # splat-training iterations: 3DGS papers train 30 000; more is a typo, not a schedule


def reconstruct(config: ReconConfig, attach: Sequence[Path] = (), frames: np.ndarray | None = None) -> Path:
    """Builds the scene folder ``config.out`` from ``config.video``, or from ``frames`` ([T, H, W, 3] uint8,
    e.g. a video just generated, then ``config.video`` only names it); ``attach`` files are copied into it."""
    # 0. check inputs and pick the device
    check_inputs(config, frames is not None)
    device = resolve_device(config.device)
    config = for_device(config, device.type)
    check_device_settings(config, device)
    if device.type == "cpu":
        log.info("training on CPU with the reference renderer: frames of at most %d px, at most %s Gaussians, "
                 "%d iterations, a %d-frame orbit video (set --max-size, --max-gaussians, --iterations, "
                 "--orbit-frames to change)", config.max_size, config.max_gaussians or "all", config.iterations,
                 config.orbit_frames)
    elif config.preset != "default":
        log.info("preset %s: %d iterations, %s strategy, SfM on frames of at most %s px", config.preset,
                 config.iterations, config.strategy, config.sfm_max_size or config.max_size)
    torch.manual_seed(config.seed)
    remove_leftover_temps(config.out)  # what a killed run (kill -9, a power cut) left beside --out
    seconds: dict[str, float] = {}
    with disk_space_checked(config.out), atomic_dir(config.out, config.overwrite) as out:
        # 1. frames: one shot, sampled and downscaled, saved as the images the cameras refer to
        with stage("frames", seconds, device):
            footage = load_footage(config, frames)

        # 2. cameras: SfM, or the given transforms.json
        with stage("sfm", seconds, device):
            if config.cameras:
                names = save_images(footage.images, out / "images", footage.source_ids)
                cameras = scale_intrinsics(cameras_from_transforms(config.cameras, names), *image_size(footage.images))
                points, colors = random_points(*camera_box(cameras), config.random_init_points, config.seed)
                rec = reconstruction_from_cameras(cameras, points, colors)
                models_found, reprojection_error, camera_path = None, None, None
            else:
                sfm = recover_cameras(footage, out / "images", config, camera_prior(config))
                cameras, points, colors, rec = sfm.cameras, sfm.points, sfm.colors, sfm.reconstruction
                models_found, reprojection_error, camera_path = sfm.models_found, sfm.reprojection_error_px, sfm.path
                names = frame_names(footage.source_ids)

        # 3. splats: fit 3D Gaussians to the training frames
        with stage("train", seconds, device):
            runner = fit_splats(config, footage.images, cameras, points, colors, device)
            train_ids, holdout_ids = runner.scene.train_ids, runner.scene.holdout_ids

        # 4. evaluation on the held-out frames
        with stage("eval", seconds, device):
            quality, side_by_side = runner.eval()
            (out / "renders" / "holdout").mkdir(parents=True)
            save_pngs([out / "renders" / "holdout" / cameras.names[i] for i in holdout_ids], side_by_side)

        # 5. files other tools open
        with stage("export", seconds, device):
            trained = Cameras(cameras.names, cameras.frame_ids, runner.viewmats(), cameras.Ks, cameras.width,
                              cameras.height)
            write_ply(runner.splats, out / "point_cloud.ply")
            write_splat(runner.splats, out / "scene.splat")
            set_poses(rec, trained)
            (out / "sparse" / "0").mkdir(parents=True)
            rec.write_text(str(out / "sparse" / "0"))
            write_json(transforms_from_cameras(trained), out / "transforms.json")
            if config.orbit_frames > 0:
                path = smooth_path(trained.subset(np.array(train_ids)), config.orbit_frames, config.orbit_smoothing)
                write_video(runner.render_traj(path, cameras.Ks[0]), out / "renders" / "orbit.mp4", config.orbit_fps)
        for extra in attach:
            shutil.copy2(extra, out / Path(extra).name)

        seconds["total"] = sum(seconds.values())
        write_json({
            "frames_total": footage.frames_total,
            "frames_used": len(names),
            "frames_registered": len(cameras),
            "models_found": models_found,
            "reprojection_error_px": reprojection_error,
            "camera_path": camera_path,
            "shots_found": len(footage.shots),
            "shot": footage.shot,
            "shot_frames": [footage.shots[footage.shot].start, footage.shots[footage.shot].stop - 1],
            "holdout_frames": [cameras.names[i] for i in holdout_ids],
            "psnr": quality["psnr"],
            "ssim": quality["ssim"],
            "lpips": None,
            "lpips_note": LPIPS_NOTE,
            "n_gaussians": runner.n_gaussians(),
            "iterations": runner.iterations,
            "final_loss": runner.losses[-1] if runner.losses else None,
            "seconds": {k: round(v, 3) for k, v in seconds.items()},
            "device": device_name(device),
            "config": config_to_dict(config),
        }, out / "metrics.json")
    log.info("scene written to %s (PSNR %s dB on %d held-out frames, %d Gaussians, %.1f s)", config.out,
             f"{quality['psnr']:.2f}" if quality["psnr"] is not None else "n/a", len(holdout_ids),
             runner.n_gaussians(), seconds["total"])
    return Path(config.out)


def fit_splats(config: ReconConfig, images: np.ndarray, cameras: Cameras, points: np.ndarray, colors: np.ndarray,
               device: torch.device) -> Runner:
    """Trains splats from the [P, 3] ``points`` / uint8 ``colors`` on the frames ``images`` [T, H, W, 3] uint8
    of the ``cameras`` (every ``holdout``-th held out); ``config`` is already resolved and checked for ``device``
    (``for_device``, ``check_device_settings``)."""
    train_ids, holdout_ids = split_holdout(len(cameras), config.holdout, thumbnails(images[cameras.frame_ids]))
    scene = Scene(
        images=torch.as_tensor(images[cameras.frame_ids], device=device).float() / 255.0,
        viewmats=torch.as_tensor(cameras.viewmats, dtype=torch.float32, device=device),
        Ks=torch.as_tensor(cameras.Ks, dtype=torch.float32, device=device),
        train_ids=train_ids, holdout_ids=holdout_ids,
    )
    points, colors = within_budget(points, colors, config.max_gaussians, config.seed)
    splats = init_splats(points, colors, config.sh_degree, config.init_opacity, config.init_scale)
    runner = Runner(config, splats, scene, scene_scale(cameras.viewmats), device)
    runner.train()
    return runner


def check_device_settings(config: ReconConfig, device: torch.device) -> None:
    if config.strategy == "mcmc" and config.densify and device.type != "cuda":
        raise DimensionXError("strategy mcmc needs CUDA (gsplat's relocation and noise kernels have no CPU path): "
                              "use strategy default on CPU, or --no-densify")


def check_inputs(config: ReconConfig, in_memory: bool = False) -> None:
    if not config.video and not in_memory:
        raise DimensionXError("no input video: pass a video file or a folder of frames")
    if not config.out:
        raise DimensionXError("no output folder: pass --out DIR")
    check_output_dir(config.out, config.overwrite)
    if config.orbit_frames != 0:
        check_video_encoder("renders/orbit.mp4", ", or pass --orbit-frames 0 to skip it")
    if not 0 <= config.sh_degree <= 3:
        raise DimensionXError(f"--sh-degree {config.sh_degree} is not supported: gsplat renders SH degrees 0 to 3")
    if config.iterations is not None and config.iterations < 1:
        raise DimensionXError(f"--iterations {config.iterations}: training needs at least 1 iteration "
                              "(default 3000 on CUDA, 300 on CPU)")
    if config.iterations is not None and config.iterations > MAX_ITERATIONS:
        raise DimensionXError(f"--iterations {config.iterations}: at most {MAX_ITERATIONS} (3000 is the default, 7000 "
                              "the quality preset's)")
    for flag, value in (("--max-size", config.max_size), ("--max-gaussians", config.max_gaussians)):
        if value is not None and value < 0:
            raise DimensionXError(f"{flag} {value}: 0 or more (0: keep all)")
    if config.orbit_frames is not None and not 0 <= config.orbit_frames <= MAX_RENDER_FRAMES:
        raise DimensionXError(f"--orbit-frames {config.orbit_frames}: 0 (no orbit video) to {MAX_RENDER_FRAMES}")
    check_fps(config.orbit_fps, "orbit_fps", whole=False, default=ReconConfig.orbit_fps)
    if config.orbit_degrees is not None and not (math.isfinite(config.orbit_degrees) and 0 < config.orbit_degrees <= 720):
        raise DimensionXError(f"--orbit-degrees {config.orbit_degrees}: the orbit's sweep in degrees, more than 0 and at "
                              "most 720 (e.g. 360), or leave it out")
    check_seed(config.seed)
    check_finite_settings(config)
    check_holdout(config.holdout, "--holdout")
    if config.cameras and not Path(config.cameras).is_file():
        raise DimensionXError(f"--cameras {config.cameras} does not exist: pass a transforms.json, or drop --cameras")
    if config.rasterize_mode not in RASTERIZE_MODES:
        raise DimensionXError(f"--rasterize-mode {config.rasterize_mode} does not exist: use one of "
                              f"{', '.join(RASTERIZE_MODES)} (gsplat's modes)")


def check_finite_settings(config: ReconConfig) -> None:
    """Every number of the config (rates, weights, thresholds, the background) is finite and not negative: a NaN
    learning rate or background trains a scene of NaN that still reports success."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        for number in value if isinstance(value, tuple) else (value,):
            if isinstance(number, (int, float)) and not isinstance(number, bool) and not (math.isfinite(number) and number >= 0):
                raise DimensionXError(f"{field.name} {value}: a finite number, 0 or more, is needed here "
                                      f"(the default is {getattr(ReconConfig, field.name)})")
    for name in ("sift_max_features", "match_overlap"):
        if getattr(config, name) < 1:
            raise DimensionXError(f"{name} {getattr(config, name)}: 1 or more (the default is {getattr(ReconConfig, name)})")
    if not all(0 <= c <= 1 for c in config.background):
        raise DimensionXError(f"background {config.background}: R, G and B in [0, 1], e.g. [0, 0, 0]")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu (pure-torch reference renderer)"


@contextlib.contextmanager
def stage(name: str, seconds: dict[str, float], device: torch.device) -> Iterator[None]:
    """Times a stage in wall-clock seconds, waiting for the GPU's queued work at its end."""
    start = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds[name] = time.perf_counter() - start


def within_budget(points: np.ndarray, colors: np.ndarray, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``budget`` (0: all) of the [P, 3] points and their [P, 3] colours, drawn at random."""
    if budget <= 0 or len(points) <= budget:
        return points, colors
    keep = np.sort(np.random.default_rng(seed).choice(len(points), budget, replace=False))
    log.info("starting from %d of the %d SfM points (max_gaussians)", budget, len(points))
    return points[keep], colors[keep]


def image_size(images: np.ndarray) -> tuple[int, int]:
    """(width, height) px of [T, H, W, 3] frames."""
    return images.shape[2], images.shape[1]


def camera_box(cameras: Cameras) -> tuple[np.ndarray, np.ndarray]:
    """A box around the cameras (1.5x their extent, at least 1 unit) to seed splats without SfM points."""
    centers = cameras.centers()
    middle, half = centers.mean(axis=0), np.maximum(0.75 * (centers.max(axis=0) - centers.min(axis=0)), 0.5)
    return middle - half, middle + half
