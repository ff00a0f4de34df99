"""Grid -> 4D Gaussians: cameras of the reference row (SfM, or known ones), then the fit and its files."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..media import write_json
from ..splats.gaussians import init_splats, random_points
from .config import FourDConfig
from .fit import Fitter, GridViews, scene_extent, split_views
from .grid import Grid
from .store import save_scene

log = logging.getLogger(__name__)


def fit_scene(grid: Grid, grid_folder: Path, folder: Path, config: FourDConfig) -> None:
    """Fits 4D Gaussians to ``grid`` and writes ``folder`` (``scene4d/``): the scene files and ``fit.json``."""
    from .pipeline import fit_device, time_values

    device = fit_device(config)
    torch.manual_seed(config.seed)
    seconds = {}
    start = time.perf_counter()
    frames = downscale(grid.frames, config.max_size)  # [M, K, H, W, 3]
    viewmats, Ks, views, points, colors, source = reference_cameras(frames[grid.key], folder, config)
    seconds["cameras"] = time.perf_counter() - start
    times = time_values(grid.times, config.time_frames)
    train, holdout = split_views(len(views), config.holdout)
    data = GridViews(
        images=torch.as_tensor(frames[:, views], device=device).float() / 255.0,
        times=torch.tensor(times, dtype=torch.float32), viewmats=torch.as_tensor(viewmats, dtype=torch.float32, device=device),
        Ks=torch.as_tensor(Ks, dtype=torch.float32, device=device), train_views=train, holdout_views=holdout,
        reference=grid.key)
    extent = scene_extent(viewmats)
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


def downscale(frames: np.ndarray, max_size: int) -> np.ndarray:
    """[M, K, H, W, 3] uint8 with the longest side at most ``max_size`` px (0: unchanged)."""
    M, K, H, W = frames.shape[:4]
    if max_size <= 0 or max(H, W) <= max_size:
        return frames
    s = max_size / max(H, W)
    size = (max(1, round(W * s)), max(1, round(H * s)))
    return np.stack([[np.asarray(Image.fromarray(f).resize(size, Image.LANCZOS)) for f in row] for row in frames])


def reference_cameras(reference: np.ndarray, folder: Path, config: FourDConfig):
    """Cameras of the reference row ([K, H, W, 3] uint8): SfM through recon's public ``run_sfm``, or ``--cameras``.

    Returns (viewmats [V, 4, 4], Ks [V, 3, 3], view indices [V], points [P, 3], colors [P, 3] uint8, source).
    """
    from ..recon.cameras import cameras_from_transforms, scale_intrinsics
    from ..recon.config import ReconConfig
    from ..recon.frames import frame_names

    K, H, W = reference.shape[:3]
    names = frame_names(np.arange(K))  # the names recon's SfM gives frames: frame_00000.png ...
    if config.cameras:
        cameras = scale_intrinsics(cameras_from_transforms(config.cameras, names), W, H)
        centers = cameras.centers()
        middle, half = centers.mean(axis=0), max(float(np.ptp(centers, axis=0).max()), 1.0)
        points, colors = random_points(middle - half, middle + half, config.init_points, config.seed)
        return cameras.viewmats, cameras.Ks, np.arange(K), points, colors, "transforms.json"
    from ..recon.sfm import run_sfm  # pycolmap: only where SfM runs

    image_dir = folder / "sfm_images"
    image_dir.mkdir()
    for name, image in zip(names, reference):
        Image.fromarray(image).save(image_dir / name)
    sfm = run_sfm(reference, names, image_dir, ReconConfig(video=str(image_dir), seed=config.seed))
    log.info("SfM registered %d of %d views", len(sfm.cameras), K)
    return (sfm.cameras.viewmats, sfm.cameras.Ks, sfm.cameras.frame_ids, sfm.points, sfm.colors,
            f"sfm ({len(sfm.cameras)} of {K} views, {sfm.reprojection_error_px:.2f} px)")
