"""Pose jumps are repaired: bundle adjustment with a smooth-path prior puts a kinked stretch of an orbit back."""

from __future__ import annotations

import numpy as np

from dimensionx.recon.cameras import Cameras, cameras_from_reconstruction, path_steps
from dimensionx.recon.config import ReconConfig
from dimensionx.recon.pathprior import smooth_centres, window_ids
from dimensionx.recon.frames import Footage
from dimensionx.recon.sfm import CameraPrior, find_jumps, recover_cameras, smooth_path_jumps
from dimensionx.splats.render import camera_centers
from recon_synthetic import RenderReader, arc_cameras, intrinsics, ring_reconstruction, splat_scene, umeyama
from test_recon_path import panning_footage


def test_windows_wrap_around_a_closed_path_only():
    assert window_ids([(0, 1)], 10, 2, closed=True).tolist() == [0, 1, 2, 9]
    assert window_ids([(0, 1)], 10, 2, closed=False).tolist() == [0, 1, 2]


def test_the_smooth_path_through_the_neighbours_follows_a_circle():
    angles = np.radians(np.arange(36) * 10.0)
    circle = np.stack([4 * np.sin(angles), np.zeros(36), 4 * np.cos(angles)], axis=1)  # [36, 3]
    bent = circle.copy()
    bent[[34, 35, 0, 1]] *= 0.7  # a dent across the seam
    smooth = smooth_centres(bent, np.array([34, 35, 0, 1]), context=4, closed=True)
    assert np.abs(smooth - circle).max() < 0.01 * 4  # within 1% of the radius
    assert np.array_equal(smooth[2:34], circle[2:34])  # the others are left alone


def test_a_kinked_stretch_of_an_orbit_is_put_back_on_the_ring():
    rec, names, true = ring_reconstruction()  # cameras 12-14 turned 30 degrees and pulled in to 0.75
    cameras = cameras_from_reconstruction(rec, names)
    footage = panning_footage(len(names))  # the image changes evenly: the kink is not in the footage
    config = ReconConfig()
    assert find_jumps(cameras, footage, config) == [(11, 12), (14, 15)]  # off the ring (40 deg), back (20 deg, radius x 1.33)

    repaired_rec, repaired, figures = smooth_path_jumps(rec, cameras, names, footage, config,
                                                        CameraPrior("orbit_left", 360.0))
    assert figures["kept"] and figures["frames"] == [[11, 12], [14, 15]]
    assert figures["step_degrees"][0] > 35 and figures["step_degrees"][1] < 15  # [before, after]
    assert find_jumps(repaired, footage, config) == []
    steps = path_steps(repaired, np.zeros((len(names), 1))).rotation_degrees
    assert steps.max() < 15  # the 40 degree step is gone (the ring steps 10 degrees)
    # Aligned to the truth by one similarity, every centre lies within 3% of the ring's radius of its own.
    truth = Cameras(names, np.arange(len(names)), true, repaired.Ks, repaired.width, repaired.height).centers()
    s, R, t = umeyama(repaired.centers(), truth)
    errors = np.linalg.norm(s * repaired.centers() @ R.T + t - truth, axis=1)
    assert errors.max() < 0.03 * 4.0, errors.round(3)
    # The kinked cameras' few observations of the others' points disagree (drawn from where they were moved):
    # those become the outliers, while the rest keeps the 0.3 px noise it was drawn with.
    assert rec.compute_mean_reprojection_error() < 1.0
    assert np.median([p.error for p in repaired_rec.points3D.values()]) < 1.0  # px


def test_a_stretch_the_sampling_skipped_is_decoded_densely_and_mapped_again(tmp_path):
    """A 48 degree arc (1.25 degrees a frame), sampled every 2nd frame but for frames 20-28: SfM bridges the
    10 degree step (4x the 2.5 degree median). The repair decodes the frames between, maps them in, and the
    path keeps to the known one."""
    viewmats, K = arc_cameras(39, 47.5), intrinsics(160, 120)
    reader = RenderReader(splat_scene(), viewmats, K, 160, 120)
    ids = np.array([i for i in range(0, 39, 2) if not 20 < i < 28])  # [17] source frames
    true_steps = np.linalg.norm(np.diff(camera_centers(viewmats[ids]), axis=0), axis=1)
    assert true_steps.max() > 3.5 * np.median(true_steps)  # the sampling itself leaves the long step
    footage = Footage(reader.read(ids), ids, 39, [range(39)], 0, reader=reader)
    config = ReconConfig(video="arc.mp4", smooth_jumps=False)  # the densified path alone

    sfm = recover_cameras(footage, tmp_path / "images", config, CameraPrior())

    frames = footage.source_ids[sfm.cameras.frame_ids]
    assert set(ids) <= set(frames) and set(range(21, 28)) <= set(frames)  # the skipped frames are in the model
    assert sfm.path["repairs"][0].startswith("long step around frames 16-32: added")
    steps = np.linalg.norm(np.diff(sfm.cameras.centers(), axis=0), axis=1)
    assert steps.max() <= 2.5 * np.median(steps) and sfm.path["long_steps"] == []
    truth = camera_centers(viewmats[frames])
    s, R, t = umeyama(sfm.cameras.centers(), truth)
    errors = np.linalg.norm(s * sfm.cameras.centers() @ R.T + t - truth, axis=1)
    assert errors.max() < 0.05, errors.round(3)  # world units: 1.25% of the arc's radius of 4
