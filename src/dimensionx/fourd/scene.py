"""Grid -> 4D Gaussians: cameras of the reference row (SfM, or known ones), then the fit and its files."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_json
from ..device import resolve_device
from ..errors import DimensionXError
from ..recon import cameras_from_transforms, downscale, frame_names, scale_intrinsics, sfm_cameras
from ..splats.gaussians import init_splats, random_points
from ..splats.render import scene_scale
from ..video.cameras import known_cameras
from ..video.config import VideoConfig
from .config import FourDConfig
from .fit import Fitter, GridViews, split_views
from .grid import Grid, time_values
from .store import save_scene

log = logging.getLogger(__name__)


def fit_scene(grid: Grid, grid_folder: Path, folder: Path, config: FourDConfig) -> None:
    """Fits 4D Gaussians to ``grid`` and writes ``folder`` (``scene4d/``): the scene files and ``fit.json``."""
    device = resolve_device(config.fit_device)
    torch.manual_seed(config.seed)
    seconds = {}
    start = time.perf_counter()
    M, K = grid.frames.shape[:2]
    frames = downscale(grid.frames.reshape(M * K, *grid.frames.shape[2:]), config.max_size)
    frames = frames.reshape(M, K, *frames.shape[1:])  # [M, K, H, W, 3], the longest side at most max_size px
    viewmats, Ks, views, points, colors, source = reference_cameras(frames[grid.key], folder, config)
    seconds["cameras"] = time.perf_counter() - start
    times = time_values(grid.times, config.time_frames)
    train, holdout = split_views(len(views), config.holdout)
    data = GridViews(
        images=torch.as_tensor(frames[:, views], device=device).float() / 255.0,
        times=torch.tensor(times, dtype=torch.float32), viewmats=torch.as_tensor(viewmats, dtype=torch.float32, device=device),
        Ks=torch.as_tensor(Ks, dtype=torch.float32, device=device), train_views=train, holdout_views=holdout,
        reference=grid.key)
    extent = scene_scale(viewmats)
    fitter = Fitter(config, init_splats(points, colors, config.sh_degree, config.init_opacity, 1.0), data, extent, device)
    start = time.perf_counter()
    losses = fitter.train(config.seed)
    seconds["fit"] = time.perf_counter() - start
    quality = fitter.evaluate()
    save_scene(folder, fitter.splats, fitter.field, times, viewmats, Ks, frames.shape[3], frames.shape[2])
    write_json({
        "cameras": source, "views_used": [int(v) for v in views], "holdout_views": [int(views[i]) for i in holdout],
        "times": times, "psnr_per_time": quality["psnr"], "ssim_per_time": quality["ssim"],
        "psnr_per_holdout_view": quality["psnr_per_view"],
        "psnr": float(np.mean(quality["psnr"])) if quality["psnr"] else None,
        "ssim": float(np.mean(quality["ssim"])) if quality["ssim"] else None,
        "deformation_per_time": quality["deformation"], "motion": quality["motion"], "scene_extent": extent,
        "offset_reference": config.offset_reference,
        "n_gaussians_start": len(points), "n_gaussians": len(fitter.splats["means"]),
        "iterations": fitter.iterations, "coarse_iterations": fitter.coarse_iterations,
        "ms_per_iteration": 1000 * seconds["fit"] / fitter.iterations,
        "final_loss": losses[-1] if losses else None, "device": device.type, "seconds": seconds, "trace": fitter.trace,
    }, folder / "fit.json")


def reference_cameras(reference: np.ndarray, folder: Path, config: FourDConfig):
    """Cameras of the reference row ([K, H, W, 3] uint8): SfM through recon's public ``sfm_cameras``, or ``--cameras``.

    Returns (viewmats [V, 4, 4], Ks [V, 3, 3], view indices [V], points [P, 3], colors [P, 3] uint8, source).
    """
    K, H, W = reference.shape[:3]
    names = frame_names(np.arange(K))  # the names recon's SfM gives frames: frame_00000.png ...
    given, source = config.cameras, "transforms.json"
    if not given and config.model == "tiny":  # noise, which SfM cannot register; the director's path is known
        given, source = folder / "known_cameras.json", f"known cameras of {config.space_director} (tiny model)"
        write_json(known_cameras(VideoConfig(motion=config.space_director), K, W, H), given)
        log.info("the tiny model's views: the %s path's known cameras (%s), not SfM", config.space_director, given.name)
    if given:
        cameras = scale_intrinsics(cameras_from_transforms(given, names), W, H)
        centers = cameras.centers()
        middle, half = centers.mean(axis=0), max(float(np.ptp(centers, axis=0).max()), 1.0)
        points, colors = random_points(middle - half, middle + half, config.init_points, config.seed)
        return cameras.viewmats, cameras.Ks, np.arange(K), points, colors, source
    try:
        sfm = sfm_cameras(reference, folder / "sfm_images", config.seed)
    except DimensionXError as error:
        raise DimensionXError(
            f"structure from motion could not find the cameras of the grid's reference row ({K} views of the key time): "
            f"{str(error).split(': ', 1)[0]}. The grid is kept: run the same command with --cameras transforms.json "
            f"(one camera per view, {K} frames) to fit it with known cameras, or start over (--overwrite) with more "
            "--views (neighbouring views then differ less) or another --seed") from None
    log.info("SfM registered %d of %d views", len(sfm.cameras), K)
    return (sfm.cameras.viewmats, sfm.cameras.Ks, sfm.cameras.frame_ids, sfm.points, sfm.colors,
            f"sfm ({len(sfm.cameras)} of {K} views, {sfm.reprojection_error_px:.2f} px)")
