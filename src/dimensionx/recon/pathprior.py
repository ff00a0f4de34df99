"""Repairing pose jumps: bundle adjustment with a smoothness prior on the camera centres around each jump.

A jump is a step between neighbouring cameras far larger than the path's usual step where the
footage changes no more than usual (``sfm.find_jumps``). Around each jump the cameras get a
position prior: the smooth path through the cameras on either side (a cubic spline in camera
order, through ``jump_context`` cameras beyond the window on each side; across the seam of a closed
orbit), with a tight standard deviation; every other camera gets a loose prior at its own centre,
so the model does not drift. pycolmap's pose-prior bundle adjuster (Cauchy loss on reprojection
errors, so the few observations that held the jump in place give way) then moves the cameras and
the points together; points left with a reprojection error above ``jump_max_error_px`` are
deleted. The result is kept only if the largest step ratio at the jumps shrinks and the mean
reprojection error grows by less than ``jump_loss_px``.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import make_interp_spline

from .cameras import Cameras, cameras_from_reconstruction
from .colmap import pycolmap
from .config import ReconConfig


def window_ids(jumps: list[tuple[int, int]], n: int, window: int, closed: bool) -> np.ndarray:
    """Sorted camera indices within ``window`` of a jump ``(k, k + 1)`` (wrapping when ``closed``)."""
    ids = {(k + d) for k, _ in jumps for d in range(1 - window, window + 1)}
    ids = {i % n for i in ids} if closed else {i for i in ids if 0 <= i < n}
    return np.array(sorted(ids), dtype=np.int64)


def smooth_centres(centres: np.ndarray, inside: np.ndarray, context: int, closed: bool) -> np.ndarray:
    """[C, 3] centres with those at ``inside`` replaced by a cubic spline (in camera order) through the
    ``context`` cameras outside on each side of each run of ``inside`` cameras."""
    n = len(centres)
    out = centres.copy()
    flagged = np.zeros(n, dtype=bool)
    flagged[inside] = True
    for run in _runs(flagged, closed):
        before = [run[0] - d for d in range(context, 0, -1)]
        after = [run[-1] + d for d in range(1, context + 1)]
        knots = np.array([i for i in before + after if closed or 0 <= i < n])
        if closed:
            knots = knots[~flagged[knots % n]]
        else:
            knots = knots[~flagged[knots]]
        if len(knots) < 2:
            continue
        spline = make_interp_spline(knots, centres[knots % n], k=min(3, len(knots) - 1))
        out[np.array(run) % n] = spline(np.array(run))
    return out


def _runs(flagged: np.ndarray, closed: bool) -> list[list[int]]:
    """Runs of consecutive flagged indices; a run across the end of a closed path continues past n."""
    n, runs, k = len(flagged), [], 0
    if flagged.all():
        return []
    start = int(np.argmin(flagged)) if closed else 0  # begin at an unflagged index: no run is cut in two
    while k < n:
        i = (start + k) % n if closed else k
        if not flagged[i]:
            k += 1
            continue
        run = []
        while k < n and flagged[(start + k) % n if closed else k]:
            run.append(start + k if closed else k)
            k += 1
        runs.append(run)
    return runs


def smooth_jumps(rec: pycolmap.Reconstruction, cameras: Cameras, names: list[str], jumps: list[tuple[int, int]],
                 closed: bool, config: ReconConfig) -> Cameras:
    """Bundle-adjusts ``rec`` in place with the smooth-path prior around ``jumps`` (index pairs into
    ``cameras``, its registered images in frame order); returns its cameras afterwards."""
    centres = cameras.centers()
    step = float(np.median(np.linalg.norm(np.diff(centres, axis=0), axis=1)))
    inside = window_ids(jumps, len(cameras), config.jump_window, closed)
    targets = smooth_centres(centres, inside, config.jump_context, closed)
    sigma = np.full(len(cameras), config.path_prior_sigma * step)
    sigma[inside] = config.jump_prior_sigma * step
    by_name = {image.name: image for image in rec.images.values()}
    priors = []
    for name, target, s in zip(cameras.names, targets, sigma):
        priors.append(pycolmap.PosePrior(
            corr_data_id=by_name[name].data_id, position=target, position_covariance=np.eye(3) * s**2,
            coordinate_system=pycolmap.PosePriorCoordinateSystem.CARTESIAN))
    options = pycolmap.BundleAdjustmentOptions()
    options.print_summary = False
    options.refine_focal_length = False  # the jump is in the poses; the shared lens stays as SfM found it
    options.ceres.loss_function_type = pycolmap.LossFunctionType.CAUCHY
    options.ceres.loss_function_scale = config.jump_loss_px
    ba_config = pycolmap.BundleAdjustmentConfig()
    for name in cameras.names:
        ba_config.add_image(by_name[name].image_id)
    prior_options = pycolmap.PosePriorBundleAdjustmentOptions()
    prior_options.alignment_ransac.max_error = 0.0  # the priors are already in the model's frame
    pycolmap.create_pose_prior_bundle_adjuster(options, prior_options, ba_config, priors, rec).solve()
    rec.update_point_3d_errors()  # the adjuster moves points and cameras but leaves their errors as they were
    drop_bad_points(rec, config.jump_max_error_px)
    return cameras_from_reconstruction(rec, names)


def drop_bad_points(rec: pycolmap.Reconstruction, max_error_px: float) -> int:
    """Deletes the points of ``rec`` whose mean reprojection error is above ``max_error_px`` (or not finite):
    the Cauchy loss lets an outlier drift anywhere, even far behind the cameras. Returns how many."""
    bad = [point_id for point_id, point in rec.points3D.items() if not np.isfinite(point.error)
           or point.error > max_error_px]
    for point_id in bad:
        rec.delete_point3D(point_id)
    return len(bad)
