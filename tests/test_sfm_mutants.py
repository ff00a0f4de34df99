"""SfM's bookkeeping against references written from its definitions: which pairs are matched, where
the model split, which steps are jumps, when a model is refused. No SfM runs here: these are the
choices that decide what SfM sees and what the user is told."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dimensionx.errors import DimensionXError
from dimensionx.recon.cameras import PathSteps
from dimensionx.recon.config import ReconConfig
from dimensionx.recon.frames import Footage, thumbnails
from dimensionx.recon import sfm
from dimensionx.recon.sfm import (
    CameraPrior,
    camera_prior,
    check_registered,
    choose_pairs,
    index_pairs,
    loop_pairs,
    recover_cameras,
    repair,
    sequential_pairs,
    long_steps,
    step_jumps,
    unregistered_runs,
)
from recon_synthetic import arc_cameras, intrinsics, render_views, splat_scene


def footage(n: int, images: np.ndarray | None = None, ids: np.ndarray | None = None) -> Footage:
    images = np.zeros((n, 8, 8, 3), np.uint8) if images is None else images
    ids = np.arange(n) if ids is None else ids
    return Footage(images, ids, int(ids.max()) + 1, [range(int(ids.max()) + 1)], 0, reader=None)


@pytest.mark.parametrize("n, overlap", [(7, 2), (5, 6), (3, 1)])
def test_sequential_pairs_are_each_frame_with_its_overlap_successors(n, overlap):
    expected = {(i, j) for i in range(n) for j in range(n) if 1 <= j - i <= overlap}
    assert sequential_pairs(n, overlap) == expected


def test_a_short_shot_matches_every_pair_and_a_longer_one_does_not():
    config = ReconConfig(exhaustive_frames=6, match_overlap=2, loop_candidates=0)
    assert choose_pairs(footage(6), config, CameraPrior()) == {(i, j) for i in range(6) for j in range(6) if i < j}
    assert choose_pairs(footage(7), config, CameraPrior()) == {(i, j) for i in range(7) for j in range(7) if 1 <= j - i <= 2}


def test_a_closed_orbit_matches_across_its_seam():
    """The frames of a 360-degree orbit are a circle: i and j are neighbours when the way round the seam,
    n - j + i frames, is at most the overlap."""
    n, overlap = 12, 3
    config = ReconConfig(exhaustive_frames=4, match_overlap=overlap, loop_candidates=0)
    seam = {(i, j) for i in range(n) for j in range(n) if i < j and 1 <= n - j + i <= overlap}
    assert seam == {(0, 11), (0, 10), (0, 9), (1, 11), (1, 10), (2, 11)}  # the definition spelt out
    closed = choose_pairs(footage(n), config, CameraPrior("orbit_left", 360.0))
    assert closed == sequential_pairs(n, overlap) | seam
    assert choose_pairs(footage(n), config, CameraPrior("orbit_left", 180.0)) == sequential_pairs(n, overlap)


@pytest.mark.parametrize("degrees, closed", [(None, False), (299.9, False), (300.0, True), (360.0, True)])
def test_an_orbit_closes_from_300_degrees(degrees, closed):
    assert CameraPrior("orbit_left", degrees).closed_loop is closed


def test_loop_pairs_are_the_most_alike_frames_far_enough_apart():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(14, 32, 32, 3), dtype=np.uint8)
    config = ReconConfig(match_overlap=2, loop_candidates=2, loop_min_gap=5)
    x = thumbnails(images).double().numpy()  # [T, D]: cosine similarity of the mean-removed thumbnails
    x -= x.mean(axis=1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    expected = set()
    for i in range(len(images)):
        far = [j for j in range(len(images)) if abs(i - j) >= 5]
        best = sorted(far, key=lambda j: -(x[i] @ x[j]))[:2]
        expected |= {(min(i, j), max(i, j)) for j in best}
    assert loop_pairs(images, config) == expected
    assert all(j - i >= 5 for i, j in expected)
    # the gap defaults to twice the overlap; no candidates, or a shot no longer than the gap: none
    assert all(j - i >= 4 for i, j in loop_pairs(images, ReconConfig(match_overlap=2, loop_candidates=2)))
    assert loop_pairs(images, ReconConfig(match_overlap=2, loop_candidates=0)) == set()
    assert loop_pairs(images[:5], config) == set() and loop_pairs(images[:6], config) != set()


def test_index_pairs_map_source_ids_to_positions_and_drop_absent_frames():
    ids = np.array([0, 4, 8, 9, 12])
    assert index_pairs(ids, {(4, 9), (0, 12), (8, 10), (3, 4)}) == {(1, 3), (0, 4)}


@pytest.mark.parametrize("registered, n", [([0, 1, 2, 5, 6, 9], 10), ([2, 3, 4], 6), ([0, 1, 2, 3], 4), ([1], 3)])
def test_unregistered_runs_are_bounded_by_the_registered_frames_around_them(registered, n):
    missing = [k for k in range(n) if k not in registered]
    runs = []
    for k in missing:  # group consecutive missing frames; each run is (frame before, frame after), clipped
        if runs and runs[-1][1] == k:
            runs[-1] = (runs[-1][0], k + 1)
        else:
            runs.append((k - 1, k + 1))
    expected = [(max(a, 0), min(b, n - 1)) for a, b in runs]
    assert unregistered_runs(np.array(registered), n) == expected


def steps(rotation, change=None, radius=None) -> PathSteps:
    rotation = np.asarray(rotation, float)
    change = np.ones_like(rotation) if change is None else np.asarray(change, float)
    radius = np.ones(len(rotation) + 1) if radius is None else np.asarray(radius, float)
    return PathSteps(rotation_degrees=rotation, distance=rotation / 100, image_change=change, radius=radius)


def test_a_step_three_times_the_median_with_ordinary_image_change_is_a_jump():
    config = ReconConfig(jump_ratio=3.0)
    assert step_jumps(steps([1, 1, 1, 3.01, 1]), 90.0, config) == [(3, 4)]
    assert step_jumps(steps([1, 1, 1, 3.0, 1]), 90.0, config) == []  # exactly at the ratio: not a jump
    assert step_jumps(steps([1, 1, 1, 6, 1], change=[1, 1, 1, 2.5, 1]), 90.0, config) == []  # the image moved too
    low = ReconConfig(jump_ratio=1.5)
    assert step_jumps(steps([1, 1, 8]), 90.0, low) == [(2, 3)]
    assert step_jumps(steps([0.1, 8]), 90.0, low) == []  # fewer than 4 cameras: no median to trust


@pytest.mark.parametrize("shown", [2, 3])
def test_a_video_showing_every_frame_two_or_three_times_has_the_steps_of_the_video_itself(shown):
    """Frame-rate conversion by repetition (the shared plate montage shows each frame twice): the repeats are
    steps of no motion and no image change; the real steps must keep their ratios to the footage's pace, so the
    same long steps and jumps are found, not every step (a median of the repeats' ~0)."""
    rotation, change = [1, 1.2, 0.9, 3.6, 1, 1.1, 1], [1, 1.1, 0.9, 1, 1, 1, 1.2]
    once = steps(rotation, change)
    repeat = [0.0004] * (shown - 1)  # SfM places a repeated frame a hair from its original
    twice = steps(sum(([r] + repeat for r in rotation), []), sum(([c] + [0.0] * (shown - 1) for c in change), []))
    real = slice(0, None, shown)  # the steps between distinct frames
    np.testing.assert_allclose(twice.motion_ratios()[real], once.motion_ratios())
    np.testing.assert_allclose(twice.ratios()[real], once.ratios())
    assert long_steps(once, ReconConfig()) == [(3, 4)]
    assert long_steps(twice, ReconConfig()) == [(3 * shown, 3 * shown + 1)]
    config = ReconConfig(jump_ratio=3.0)
    assert step_jumps(once, 90.0, config) == [(3, 4)]
    assert step_jumps(twice, 90.0, config) == [(3 * shown, 3 * shown + 1)]


def test_on_an_orbit_a_radial_step_is_a_jump_at_a_lower_ratio():
    """Orbit (>= 180 degrees): a step over 2x the median while the radius changes beyond x1.15 and the
    image changes at most 1.5x its median is a jump; on a short arc it is not."""
    config = ReconConfig(jump_ratio=3.0, jump_ratio_radial=2.0, jump_radius_change=0.15, jump_ordinary_change=1.5)
    radius = [1, 1, 1, 1.2, 1.2, 1.2]
    path = steps([1, 1, 2.5, 1, 1], radius=radius)
    assert step_jumps(path, 180.0, config) == [(2, 3)]
    assert step_jumps(path, 179.0, config) == []
    assert step_jumps(steps([1, 1, 2.5, 1, 1], radius=[1, 1, 1, 1.1, 1.1, 1.1]), 360.0, config) == []  # radius kept
    assert step_jumps(steps([1, 1, 2.5, 1, 1], radius=[1.2, 1.2, 1.2, 1, 1, 1]), 360.0, config) == [(2, 3)]  # shrinks
    assert step_jumps(steps([1, 1, 1.9, 1, 1], radius=radius), 360.0, config) == []  # a step under 2x
    assert step_jumps(steps([1, 1, 2.5, 1, 1], change=[1, 1, 1.6, 1, 1], radius=radius), 360.0, config) == []


@pytest.mark.parametrize("registered, total, refused", [(9, 10, False), (8, 10, True), (2, 2, False), (1, 1, True),
                                                        (27, 30, False), (26, 30, True)])
def test_a_model_needs_90_percent_of_the_sampled_frames_and_at_least_two(registered, total, refused):
    config = ReconConfig(video="clip.mp4")
    if not refused:
        check_registered(registered, total, 1, footage(total), config)
        return
    with pytest.raises(DimensionXError) as error:
        check_registered(registered, total, 1, footage(total), config)
    assert (f"registered only {registered} of {total} frames of clip.mp4, shot 0 (frames 0-{total - 1})"
            in str(error.value))
    assert "at least 90% of a shot's frames (min_registered_fraction)" in str(error.value)


def test_a_repair_matches_every_frame_of_the_window_around_a_break_with_each_other():
    """A break between sampled frames 4 and 5 (source 40, 50): the window reaches repair_margin sampled
    frames further on each side (source 20 .. 70) and is clipped at the ends of the sample."""
    ids = np.arange(0, 100, 10)  # [10] sampled source frames 0, 10, ..., 90
    config = ReconConfig(repair_margin=2, repair_max_frames=24)
    extra: set[tuple[int, int]] = set()
    action = repair(footage(10, ids=ids), [(4, 5)], extra, config, "split")
    inside = [20, 30, 40, 50, 60, 70]
    assert extra == {(p, q) for p in inside for q in inside if p < q}
    assert action.startswith("split around frames 20-70: added 0 frame(s)")
    extra = set()
    assert "frames 0-30" in repair(footage(10, ids=ids), [(0, 1)], extra, config, "jump")
    assert "frames 60-90" in repair(footage(10, ids=ids), [(8, 9)], set(), config, "jump")


def test_the_motion_prior_comes_from_the_flags_else_from_the_video_sidecar(tmp_path):
    video = tmp_path / "orbit.mp4"
    video.write_bytes(b"not decoded here")
    sidecar = {"orbit_degrees": 360, "config": {"motion": "orbit_left"}}
    video.with_suffix(".json").write_text(json.dumps(sidecar))
    assert camera_prior(ReconConfig(video=str(video))) == CameraPrior("orbit_left", 360.0)
    assert camera_prior(ReconConfig(video=str(video), camera_motion="pan_left")) == CameraPrior("pan_left", 360.0)
    assert camera_prior(ReconConfig(video=str(video), orbit_degrees=90.0)) == CameraPrior("orbit_left", 90.0)
    flags = ReconConfig(video=str(video), camera_motion="pan_left", orbit_degrees=45.0)
    assert camera_prior(flags) == CameraPrior("pan_left", 45.0)
    # an older sidecar records the sweep among its settings only
    video.with_suffix(".json").write_text(json.dumps({"config": {"motion": "orbit_up", "orbit_degrees": 180}}))
    assert camera_prior(ReconConfig(video=str(video))) == CameraPrior("orbit_up", 180.0)
    video.with_suffix(".json").write_text("{broken")
    assert camera_prior(ReconConfig(video=str(video))) == CameraPrior()
    assert camera_prior(ReconConfig(video=str(tmp_path / "frames"))) == CameraPrior()  # no video, no sidecar: none


def test_a_split_is_repaired_on_smaller_copies_and_the_path_reports_each_repair(tmp_path, monkeypatch):
    """16 views of an arc at 256 x 192, view 5 replaced by noise: SfM (on 192 px copies) registers 15 (94%:
    a split under the 95% target, above the 90% floor). The repair samples source frames 2-8 around it,
    finds nothing new to match (no reader, every pair matched) and stops; mapping again for low parallax
    registers no more, so the first round is kept; the jump smoothing runs on the
    result and is reported. The cameras and frames are the full-size ones."""
    viewmats, K = arc_cameras(16, 60.0), intrinsics(256, 192)
    images = render_views(splat_scene(), viewmats, K, 256, 192)
    images[5] = np.random.default_rng(0).integers(0, 256, (192, 256, 3), np.uint8)
    figures = {"frames": [[3, 4]], "step_degrees": [9.0, 5.0], "step_ratio": [3.5, 1.2], "largest_step_degrees": [9.0, 6.0],
               "reprojection_error_px": [0.4, 0.45], "points": [100, 100], "kept": True}
    smoothed = []

    def smooth(rec, cameras, names, footage, config, prior):  # stands in for the bundle adjustment
        smoothed.append(len(cameras))
        return rec, cameras, figures

    monkeypatch.setattr(sfm, "smooth_path_jumps", smooth)
    config = ReconConfig(video="arc.mp4", sfm_max_size=192)
    result = recover_cameras(footage(16, images), tmp_path / "images", config, CameraPrior())

    assert result.cameras.frame_ids.tolist() == [k for k in range(16) if k != 5] and smoothed == [15]
    assert result.path["repairs"] == [
        "split around frames 2-8: added 0 frame(s) of the shot there and matched each window's frames with each other "
        "(nothing new to match: stopped)",
        "mapped again with the settings for low parallax (LOW_PARALLAX): 15 of 16 sampled frames in the largest of 1 "
        "model(s); no better than the round before (15): not kept",  # a noise frame registers with no settings
        "jump at frames 3-4: bundle adjustment with a smooth-path prior around it (4 cameras each side): step there "
        "9.0 -> 5.0 degrees, ratio to the median 3.50 -> 1.20, largest step 9.0 -> 6.0 degrees, reprojection error "
        "0.40 -> 0.45 px: kept"]
    assert result.path["jump_repair"] is figures
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [f"frame_{i:05d}.png" for i in range(16)]
    assert Image.open(tmp_path / "images" / "frame_00015.png").size == (256, 192)  # not SfM's 192 px copies
    assert abs(result.cameras.Ks[0, 0, 0] / K[0, 0] - 1) < 0.02 and result.cameras.width == 256  # full-size cameras
    assert len(result.points) == len(result.colors) > 100


def test_a_full_ring_of_cameras_is_smoothed_as_a_closed_path_without_a_prior():
    """Cameras sweeping 300 degrees or more close on themselves, whatever the sidecar says: a jump next to
    the ring's last cameras is smoothed with the cameras after the seam, as with a 360-degree orbit prior."""
    from recon_synthetic import ring_reconstruction
    from test_recon_path import panning_footage

    from dimensionx.recon.cameras import cameras_from_reconstruction

    rec, names, _ = ring_reconstruction(kinked=range(33, 36))
    cameras = cameras_from_reconstruction(rec, names)
    config = ReconConfig()
    runs = [sfm.smooth_path_jumps(rec, cameras, names, panning_footage(len(names)), config, prior)
            for prior in (CameraPrior(), CameraPrior("orbit_left", 360.0), CameraPrior("orbit_left", 90.0))]
    assert runs[0][2]["frames"][0] == [32, 33]
    np.testing.assert_allclose(runs[0][1].viewmats, runs[1][1].viewmats)
    assert runs[0][2] == runs[1][2] == runs[2][2]
