"""Frames for reconstruction: uniform sampling, downscaling, hard cuts in a montage."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_file
from dimensionx.errors import DimensionXError
from dimensionx.recon.config import ReconConfig
from dimensionx.recon.frames import choose_shot, downscale, find_cuts, sample_ids, split_shots
from dimensionx.videofiles import read_frames
from recon_synthetic import MONTAGE_SHOT_STARTS, intrinsics, look_at, point_views, same_start_montage, splat_scene



def panning_clip(seed: int, n: int = 20) -> np.ndarray:
    """[n, 48, 64, 3]: a window sliding 2 px a frame over a smooth random texture."""
    rng = np.random.default_rng(seed)
    texture = np.kron(rng.integers(0, 256, (12, 40, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # [48, 160, 3]
    return np.stack([texture[:, 2 * t : 2 * t + 64] for t in range(n)])


def test_uniform_sampling_spreads_frames_over_the_shot():
    assert sample_ids(range(0, 145), 49).tolist() == list(range(0, 145, 3))  # the benchmark's 49 of 145
    assert sample_ids(range(10, 15), 64).tolist() == [10, 11, 12, 13, 14]  # fewer frames than asked: all
    with pytest.raises(DimensionXError, match="--frames 2 is too few"):
        sample_ids(range(10), 2)


def test_downscale_keeps_aspect_and_only_shrinks():
    frames = np.zeros((2, 320, 480, 3), np.uint8)
    assert downscale(frames, 240).shape == (2, 160, 240, 3)
    assert downscale(frames, 720).shape == frames.shape and downscale(frames, 0).shape == frames.shape


def test_cuts_between_two_clips_are_found_and_the_longest_shot_is_chosen():
    video = np.concatenate([panning_clip(0, 12), panning_clip(1, 20)])
    cuts = find_cuts(video, ReconConfig())
    assert cuts == [12]
    shots = split_shots(len(video), cuts)
    assert shots == [range(0, 12), range(12, 32)]
    assert choose_shot(shots, None, "montage.mp4") == 1
    assert choose_shot(shots, 0, "montage.mp4") == 0
    with pytest.raises(DimensionXError, match=r"--shot 5 does not exist: montage.mp4 has 2 shot\(s\)"):
        choose_shot(shots, 5, "montage.mp4")


def test_a_continuous_clip_has_no_cut():
    assert find_cuts(panning_clip(0, 30), ReconConfig()) == []


def test_a_jump_back_to_a_view_just_shown_is_no_cut():
    clip = panning_clip(0, 30)
    popping = np.concatenate([clip[:12], clip[4:22]])  # pans 11 steps, pops back to step 4, pans on
    assert find_cuts(popping, ReconConfig()) == []
    assert find_cuts(popping, ReconConfig(cut_memory=1)) == [12]  # judged against the last frame only: a cut


@pytest.mark.slow
def test_real_montage_is_split_at_its_cuts_and_the_orbit_is_not():
    montage, _ = read_frames(shared_file("videos/camera_montage_plate_1280x854.mp4"))
    cuts = find_cuts(montage, ReconConfig())
    # 12 cuts, each where the montage jumps to the next motion. Each generated motion also pops
    # once, 15 frames after its start, back to a view it showed a few frames earlier: no cut.
    assert len(cuts) == 12 and cuts == MONTAGE_SHOT_STARTS
    shots = split_shots(len(montage), cuts)
    assert min(len(s) for s in shots[1:]) >= 23

    orbit, _ = read_frames(shared_file("videos/orbit360_landscape_145f_480x320.mp4"))
    assert find_cuts(orbit, ReconConfig()) == []


def test_clips_that_all_start_from_one_photo_are_cut_apart():
    rng = np.random.default_rng(2)
    texture = np.kron(rng.integers(0, 256, (12, 40, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # [48, 160, 3]
    right = np.stack([texture[:, 48 + t : 112 + t] for t in range(20)])  # from the photo, panning right
    left = np.stack([texture[:, 48 - t : 112 - t] for t in range(20)])  # from the same photo, panning left
    video = np.concatenate([right, left, right])
    # Each cut goes back to the photo, a view shown 20 frames before: still a cut.
    assert find_cuts(video, ReconConfig()) == [20, 40]


@pytest.mark.parametrize("clip_frames, scale", [(24, 1.0), (24, 0.2), (16, 0.3)], ids=["montage", "slow", "short"])
def test_every_cut_is_found_when_all_clips_start_from_the_same_view(clip_frames, scale):
    """12 camera motions of one synthetic scene, each clip opening on the same view (as clips generated from
    one photo do): at their full amount, at a fifth of it (slow clips: many frames repeat, the clip's opening
    stays within the detector's memory), and in 16-frame clips."""
    video, starts = same_start_montage(clip_frames, scale, width=48, height=36)
    assert find_cuts(video, ReconConfig()) == starts


def test_a_pop_back_near_the_shots_opening_is_no_cut():
    """A generated clip that pops 15 frames in back to a view between its 3rd and 4th frames stays one shot:
    only a return to the very view the shot opened on restarts it."""
    def orbit_view(k: float) -> np.ndarray:  # the camera k frames into a 30 degree orbit of 24 frames
        angle = np.radians(30.0 * k / 23)
        return look_at(np.array([4 * np.sin(angle), -1.0, -4 * np.cos(angle)]))

    steps = np.concatenate([np.arange(15), np.arange(2.5, 11.5)])
    video = point_views(splat_scene(), np.stack([orbit_view(k) for k in steps]), intrinsics(48, 36), 48, 36)
    assert find_cuts(video, ReconConfig()) == []
    assert find_cuts(video, ReconConfig(cut_novelty=0.1)) == [15]  # a jump, kept whole only as a pop
