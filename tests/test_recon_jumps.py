"""Pose jumps are repaired: bundle adjustment with a smooth-path prior puts a kinked stretch of an orbit back."""

from __future__ import annotations

import numpy as np

from dimensionx.recon.cameras import Cameras, cameras_from_reconstruction, path_steps
from dimensionx.recon.config import ReconConfig
from dimensionx.recon.pathprior import smooth_centres, window_ids
from dimensionx.recon.sfm import CameraPrior, find_jumps, smooth_path_jumps
from recon_synthetic import ring_reconstruction, umeyama
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
