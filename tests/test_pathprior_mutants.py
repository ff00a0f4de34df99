"""The smooth-path prior on open paths (the ends are no seam) and the bad-point rule at its boundary."""

from __future__ import annotations

import numpy as np
import pycolmap
from scipy.interpolate import make_interp_spline

from dimensionx.recon.pathprior import drop_bad_points, smooth_centres


def wavy_path(n: int) -> np.ndarray:
    """[n, 3] centres on a curve no cubic fits exactly, so each choice of knots gives another spline."""
    s = np.arange(n, dtype=float)
    return np.stack([s, np.sin(s / 1.7), np.cos(s / 2.3)], axis=1)


def test_an_open_path_is_bridged_by_a_cubic_through_context_cameras_on_each_side():
    centres = wavy_path(12)
    smooth = smooth_centres(centres, np.array([5, 6]), context=2, closed=False)
    knots = np.array([3, 4, 7, 8])  # two unflagged cameras before and after the run 5-6
    want = make_interp_spline(knots, centres[knots], k=3)(np.array([5, 6]))
    np.testing.assert_allclose(smooth[[5, 6]], want, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.delete(smooth, [5, 6], axis=0), np.delete(centres, [5, 6], axis=0))


def test_a_run_at_the_end_of_an_open_path_uses_the_cameras_before_it_only():
    centres = wavy_path(10)
    smooth = smooth_centres(centres, np.array([8, 9]), context=3, closed=False)
    knots = np.array([5, 6, 7])  # nothing after the last camera: three knots, a quadratic
    want = make_interp_spline(knots, centres[knots], k=2)(np.array([8, 9]))
    np.testing.assert_allclose(smooth[[8, 9]], want, rtol=0, atol=1e-12)


def test_a_run_at_the_start_of_an_open_path_and_one_with_too_few_knots():
    centres = wavy_path(10)
    smooth = smooth_centres(centres, np.array([0, 1]), context=2, closed=False)
    want = make_interp_spline(np.array([2, 3]), centres[[2, 3]], k=1)(np.array([0, 1]))  # two knots: a line
    np.testing.assert_allclose(smooth[[0, 1]], want, rtol=0, atol=1e-12)
    lonely = smooth_centres(centres, np.arange(9), context=2, closed=False)  # one unflagged camera: left alone
    np.testing.assert_array_equal(lonely, centres)


def test_points_above_the_error_limit_are_deleted_and_those_at_it_kept():
    rec = pycolmap.Reconstruction()
    errors = {"below": 1.0, "at": 2.0, "above": 2.5, "nan": float("nan"), "inf": float("inf")}
    ids = {}
    for name, error in errors.items():
        ids[name] = rec.add_point3D(np.zeros(3), pycolmap.Track(), np.zeros(3, dtype=np.uint8))
        rec.points3D[ids[name]].error = error
    assert drop_bad_points(rec, max_error_px=2.0) == 3
    assert sorted(rec.points3D) == sorted([ids["below"], ids["at"]])
