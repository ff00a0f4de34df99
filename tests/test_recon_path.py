"""Camera paths: jumps against the image change, an orbit's sweep, the pairs SfM matches, the sidecar prior."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dimensionx.recon.cameras import Cameras, orbit_span_degrees, still_step
from dimensionx.recon.config import ReconConfig, for_device
from dimensionx.recon.frames import Footage
from dimensionx.recon.sfm import (
    CameraPrior,
    camera_prior,
    choose_pairs,
    describe_path,
    find_jumps,
    footage_steps,
    long_steps,
    unregistered_runs,
)
from recon_synthetic import arc_cameras, intrinsics, ring_cameras


def cameras_of(viewmats: np.ndarray) -> Cameras:
    n = len(viewmats)
    return Cameras([f"frame_{i:05d}.png" for i in range(n)], np.arange(n), viewmats,
                   np.repeat(intrinsics(64, 48)[None], n, axis=0), 64, 48)


def panning_footage(n: int) -> Footage:
    """[n] frames of a window sliding 2 px a frame over a random texture: the image changes evenly."""
    rng = np.random.default_rng(0)
    texture = np.kron(rng.integers(0, 256, (12, 60, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # [48, 240, 3]
    images = np.stack([texture[:, 2 * t : 2 * t + 64] for t in range(n)])
    return Footage(images, np.arange(n), n, [range(n)], 0, reader=None)


def test_a_pose_jump_the_footage_does_not_show_is_found():
    viewmats = ring_cameras(36)[:24]  # 10 degree steps
    smooth = cameras_of(viewmats)
    footage = panning_footage(24)
    assert find_jumps(smooth, footage, ReconConfig()) == []

    # From camera 12 on, the path is turned 35 degrees further about the orbit's axis and pulled 20% closer:
    # the step 11 -> 12 is 45 degrees where the images change as little as elsewhere.
    jumped = viewmats.copy()
    turn = np.eye(4)
    turn[:3, :3] = Rotation.from_euler("y", -35, degrees=True).as_matrix()  # the orbit turns about -y
    for k in range(12, 24):
        c2w = turn @ np.linalg.inv(viewmats[k])  # rotate the camera about the world's y axis ...
        c2w[:3, 3] *= 0.8  # ... and bring it 20% closer to the centre
        jumped[k] = np.linalg.inv(c2w)
    assert find_jumps(cameras_of(jumped), footage, ReconConfig()) == [(11, 12)]
    # Where the footage changes as much as the cameras step (a fast move), it is no jump.
    fast = panning_footage(24)
    fast.images[12:] = np.roll(fast.images[12:], 30, axis=2)
    assert find_jumps(cameras_of(jumped), fast, ReconConfig()) == []


def test_orbit_span_measures_the_sweep_of_the_cameras():
    assert abs(orbit_span_degrees(cameras_of(ring_cameras(36))) - 350) < 1  # 36 views 10 degrees apart
    assert abs(orbit_span_degrees(cameras_of(arc_cameras(13, 120.0))) - 120) < 1


def test_unregistered_runs_are_bounded_by_registered_neighbours():
    assert unregistered_runs(np.array([0, 1, 2, 5, 6, 9]), 10) == [(2, 5), (6, 9)]
    assert unregistered_runs(np.array([2, 3]), 4) == [(0, 2)]
    assert unregistered_runs(np.arange(5), 5) == []


def test_pairs_short_shots_match_everything_and_closed_orbits_match_across_the_seam():
    short = panning_footage(6)
    assert choose_pairs(short, ReconConfig(exhaustive_frames=10), CameraPrior()) == {
        (i, j) for i in range(6) for j in range(i + 1, 6)}
    long = panning_footage(30)
    config = ReconConfig(exhaustive_frames=10, match_overlap=3, loop_candidates=0)
    open_pairs = choose_pairs(long, config, CameraPrior())
    assert (0, 29) not in open_pairs and (0, 3) in open_pairs and (0, 4) not in open_pairs
    closed = choose_pairs(long, config, CameraPrior("orbit_left", 360.0))
    assert closed - open_pairs == {(0, 27), (0, 28), (0, 29), (1, 28), (1, 29), (2, 29)}


def test_the_video_sidecar_gives_the_camera_prior(tmp_path):
    video = tmp_path / "orbit.mp4"
    video.write_bytes(b"")
    assert camera_prior(ReconConfig(video=str(video))) == CameraPrior(None, None)
    video.with_suffix(".json").write_text(json.dumps({"config": {"motion": "orbit_left"}, "orbit_degrees": 360}))
    prior = camera_prior(ReconConfig(video=str(video)))
    assert prior == CameraPrior("orbit_left", 360.0) and prior.closed_loop
    assert not camera_prior(ReconConfig(video=str(video), orbit_degrees=90.0)).closed_loop  # flags win


def test_cpu_defaults_are_small_and_flags_win():
    cpu = for_device(ReconConfig(), "cpu")
    assert (cpu.iterations, cpu.max_size, cpu.max_gaussians, cpu.orbit_frames) == (300, 240, 6000, 24)
    assert for_device(ReconConfig(), "cuda").max_size == 720
    assert for_device(ReconConfig(max_size=480, iterations=50), "cpu").max_size == 480


def moved_along(viewmats: np.ndarray, start: int, degrees: float, scale: float) -> np.ndarray:
    """``viewmats`` with cameras ``start:`` turned ``degrees`` further about the orbit's axis (-y) and their
    centres scaled by ``scale`` towards the centre."""
    moved = viewmats.copy()
    turn = np.eye(4)
    turn[:3, :3] = Rotation.from_euler("y", -degrees, degrees=True).as_matrix()
    for k in range(start, len(viewmats)):
        c2w = turn @ np.linalg.inv(viewmats[k])
        c2w[:3, 3] *= scale
        moved[k] = np.linalg.inv(c2w)
    return moved


def test_on_an_orbit_a_shorter_step_that_also_changes_the_radius_is_a_jump():
    """Steps of 22 and 20 degrees (2.2x and 2x the 10 degree median) are below the 3x jump ratio; on an
    orbit the second is still a jump when the radius drops 20% across it, the first (the camera only sped
    up) is not."""
    ring = ring_cameras(36)[:30]  # 290 degrees, 10 degree steps
    footage = panning_footage(30)
    assert find_jumps(cameras_of(moved_along(ring, 12, 12.0, 1.0)), footage, ReconConfig()) == []
    assert find_jumps(cameras_of(moved_along(ring, 12, 10.0, 0.8)), footage, ReconConfig()) == [(11, 12)]
    # Off an orbit (an arc of 60 degrees) the distance to the centres' mean is no radius to keep: a 12 degree
    # step among 5 degree ones, which moves the camera from 0.66 to 0.36 of that distance, is left alone.
    arc = moved_along(arc_cameras(13, 60.0), 6, 7.0, 1.0)
    assert find_jumps(cameras_of(arc), panning_footage(13), ReconConfig()) == []


def test_a_split_in_a_sparse_sample_of_a_long_shot_is_sampled_densely_and_matched_across():
    """32 of 273 frames (8.5 frames apart): the repair window around a break spans some 70 input frames,
    more than repair_max_frames; 24 of them, spread over it, are decoded and matched with each other."""
    from dimensionx.recon.frames import ArrayReader, sample_ids
    from dimensionx.recon.sfm import repair

    video = np.random.default_rng(0).integers(0, 256, (273, 12, 16, 3), dtype=np.uint8)
    ids = sample_ids(range(273), 32)
    footage = Footage(video[ids], ids, 273, [range(273)], 0, reader=ArrayReader(video, 0))
    extra: set[tuple[int, int]] = set()
    config = ReconConfig()
    lo, hi = ids[10 - config.repair_margin], ids[14 + config.repair_margin]  # the break: samples 11-13 missing

    action = repair(footage, [(10, 14)], extra, config, "split")

    window = footage.source_ids[(footage.source_ids >= lo) & (footage.source_ids <= hi)]
    assert config.repair_max_frames <= len(window) <= config.repair_max_frames + 9  # with the 9 samples there
    assert window[0] == lo and window[-1] == hi
    assert np.diff(window).max() <= np.ceil((hi - lo) / (config.repair_max_frames - 1))  # evenly spread
    np.testing.assert_array_equal(footage.images, video[footage.source_ids])  # the frames decoded are those named
    assert f"added {len(footage.source_ids) - 32} frame(s)" in action and len(footage.source_ids) > 32 + 12
    assert (int(lo), int(hi)) in extra and len(extra) == len(window) * (len(window) - 1) // 2  # across the break


def still_shot(jump_degrees: float, jump_move: float, n: int = 24, pan_degrees: float = 0.0) -> tuple[Cameras, Footage]:
    """``n`` cameras of a tripod shot that barely moves (0.01 degree and 1 mm of jitter a frame, 4 units from the
    scene; turning ``pan_degrees`` a frame) but for one step at frames 11-12 turning ``jump_degrees`` and moving
    ``jump_move`` sideways; frames that only change by sensor noise."""
    rng = np.random.default_rng(1)
    start = ring_cameras(36)[0]
    viewmats, turn, shift = [], 0.0, np.zeros(3)
    for k in range(n):
        turn += rng.normal(0, 0.01) + pan_degrees + (jump_degrees if k == 12 else 0.0)
        shift += rng.normal(0, 0.001, 3) + (np.array([jump_move, 0, 0]) if k == 12 else 0.0)
        c2w = np.linalg.inv(start)
        c2w[:3, :3] = c2w[:3, :3] @ Rotation.from_euler("y", turn, degrees=True).as_matrix()
        c2w[:3, 3] += shift
        viewmats.append(np.linalg.inv(c2w))
    base = np.random.default_rng(0).integers(0, 256, (48, 64, 3))
    images = np.clip(base + rng.normal(0, 2, (n, 48, 64, 3)), 0, 255).astype(np.uint8)
    return cameras_of(np.stack(viewmats)), Footage(images, np.arange(n), n, [range(n)], 0, reader=None)


def test_the_still_floor_shifts_the_image_by_one_percent_of_its_width():
    cameras = cameras_of(ring_cameras(36))  # 64 px wide, 60 degree field of view
    degrees, distance = still_step(cameras, depth=4.0, shift=0.01)
    f = cameras.Ks[0, 0, 0]
    assert abs(f * np.tan(np.radians(degrees)) - 0.64) < 0.01  # the image centre moves 0.64 px
    assert abs(f * distance / 4.0 - 0.64) < 0.01  # so does a point 4 units away when the camera moves sideways


@pytest.mark.parametrize("jump_degrees, jump_move, jumps", [(0.3, 0.02, False), (3.0, 0.3, True), (3.0, 0.0, True),
                                                             (0.0, 0.3, True)])
def test_a_near_static_shot_jumps_only_beyond_the_still_floor(caplog, jump_degrees, jump_move, jumps):
    """Against a median step of ~0.01 degree any step looks like a jump (30x the median and more): below the
    floor (0.3 degree, 2 cm at 4 units: under 1% of the width) it is none, above it (a 3 degree turn, a 30 cm
    move, or both) it is one."""
    cameras, footage = still_shot(jump_degrees, jump_move)
    points = np.random.default_rng(0).uniform(-1, 1, (200, 3))  # the scene, about 4 units in front
    config = ReconConfig()
    assert (11, 12) in find_jumps(cameras, footage, config)  # without points: no floor, the ratio alone
    assert find_jumps(cameras, footage, config, points) == ([(11, 12)] if jumps else [])
    with caplog.at_level(logging.WARNING, logger="dimensionx.recon.sfm"):
        path = describe_path(cameras, footage, points, config, CameraPrior())
    assert path["jumps"] == ([[11, 12]] if jumps else []) and path["long_steps"] == path["jumps"]
    assert ("the camera path still jumps between frames [[11, 12]]" in caplog.text) == jumps
    assert "still steps over" not in caplog.text  # a jump is named as one, not twice


def test_a_tripod_pan_has_no_long_step_for_its_jittering_centres():
    """A steady 2 degree pan whose centres jitter by 1 mm, and camera 7's by 1 cm (4 units from the scene): the
    distance steps there, several times their own median, lie under the still floor (5 cm) and count as none."""
    cameras, footage = still_shot(0.0, 0.0, pan_degrees=2.0)
    cameras.viewmats[7, :3, 3] -= cameras.viewmats[7, :3, :3] @ np.array([0.01, 0.0, 0.0])  # centre + 1 cm
    steps = footage_steps(cameras, footage, np.random.default_rng(0).uniform(-1, 1, (200, 3)), ReconConfig())
    jitter = steps.distance / np.median(steps.distance)
    assert jitter.max() > 2.5  # against their median, the centres' jitter alone would make long steps
    assert long_steps(steps, ReconConfig()) == [] and steps.motion_ratios().max() < 1.2


@pytest.mark.slow
def test_a_slow_dolly_shown_twice_is_mapped_in_one_model_of_every_frame(tmp_path):
    """A camera moving straight at the scene (a dolly, as S-Director's zoom motions move) by a tenth of its
    distance over 13 frames, each shown twice (frame-rate conversion by repetition, as in the shared plate
    montage): COLMAP's mapper defaults split it into 5-6 models of at most 10 of the 25 frames (3 runs of 3)
    and the shot was refused. Mapped again with the settings for low parallax, every frame is in one model."""
    from dimensionx.recon.frames import load_footage
    from dimensionx.recon.sfm import recover_cameras
    from recon_synthetic import motion_cameras, point_views, splat_scene

    width, height = 256, 192
    views = point_views(splat_scene(), motion_cameras("dolly", 0.1, 13), intrinsics(width, height), width, height)
    config = for_device(ReconConfig(video="dolly", orbit_frames=0, progress=False), "cuda")  # SfM runs on the CPU
    footage = load_footage(config, np.repeat(views, 2, axis=0)[:25])
    sfm = recover_cameras(footage, tmp_path / "images", config, camera_prior(config))
    assert len(sfm.cameras) == 25 and sfm.models_found == 1, sfm.path["repairs"]
