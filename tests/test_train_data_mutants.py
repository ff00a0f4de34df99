"""Training data at its edges: a CSV's columns found by their names, a clip with exactly the usable frames
it needs, a fresh data order each epoch, and make-dataset's start cameras and focal length.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dimensionx.directors.camera_paths import look_at
from dimensionx.train.batches import EpochShuffle
from dimensionx.train.data import MIN_USABLE_FRAMES, find_clips
from dimensionx.train.make_dataset import read_cameras, start_cameras
from dimensionx.videofiles import write_video


def write_clip(path, frames: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(np.zeros((frames, 16, 16, 3), np.uint8), path, 8)


def test_csv_columns_are_found_by_their_header_names(tmp_path):
    write_clip(tmp_path / "videos" / "a.mp4", 9)
    (tmp_path / "metadata.csv").write_text("caption,video\na red disc,videos/a.mp4\n")  # caption first
    (clip,) = find_clips(tmp_path, skip=0).clips
    assert clip.video == (tmp_path / "videos" / "a.mp4").resolve() and clip.caption == "a red disc"


def test_a_clip_with_exactly_the_usable_frames_it_needs_is_kept(tmp_path):
    skip = 2
    write_clip(tmp_path / "videos" / "enough.mp4", 2 * skip + MIN_USABLE_FRAMES)
    write_clip(tmp_path / "videos" / "short.mp4", 2 * skip + MIN_USABLE_FRAMES - 1)
    (tmp_path / "metadata.csv").write_text("video,caption\nvideos/enough.mp4,a\nvideos/short.mp4,b\n")
    found = find_clips(tmp_path, skip=skip)
    assert [clip.video.name for clip in found.clips] == ["enough.mp4"]
    assert [b.reason for b in found.bad] == ["too short: 8 frames, needs at least 9 (2 skipped at each end)"]


def test_each_epoch_is_a_fresh_permutation_and_a_resumed_epoch_the_same():
    def order(epoch: int, seed: int = 7) -> list[int]:
        sampler = EpochShuffle(10, seed)
        sampler.use_epoch(epoch)
        return list(sampler)

    orders = [order(epoch) for epoch in range(4)]
    assert all(sorted(o) == list(range(10)) for o in orders)  # every clip once an epoch
    assert len({tuple(o) for o in orders}) == 4  # reshuffled each epoch
    assert order(2) == orders[2]  # a resumed run meets the same clips


def test_start_cameras_spread_over_the_recon_cameras_first_to_last_and_aim_at_the_centre():
    centre = np.array([0.0, 0.0, 0.0])
    angles = np.radians(np.arange(0, 100, 20))  # five cameras on an arc, 4 units from the centre
    positions = np.stack([4 * np.sin(angles), np.zeros(5), -4 * np.cos(angles)], 1)
    c2w = np.stack([look_at(p, centre, np.array([0.0, -1.0, 0.0])) for p in positions])
    for clips, used in ((2, [0, 4]), (3, [0, 2, 4]), (5, [0, 1, 2, 3, 4])):
        starts = start_cameras(c2w, centre, clips, jitter=0.0, seed=0)
        np.testing.assert_allclose([s[:3, 3] for s in starts], positions[used], atol=1e-9)
        for start in starts:  # OpenCV: the camera looks along its +z axis, at the centre
            np.testing.assert_allclose(start[:3, 2], -start[:3, 3] / np.linalg.norm(start[:3, 3]), atol=1e-9)


def test_a_field_of_view_alone_gives_the_focal_length_that_sees_that_wide(tmp_path):
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps({"camera_angle_x": np.radians(90.0), "w": 64, "h": 48,
                                "frames": [{"file_path": "a.png", "transform_matrix": np.eye(4).tolist()}]}))
    _, focal, width = read_cameras(path)
    assert width == 64 and focal * np.tan(np.radians(45.0)) == pytest.approx(64 / 2)  # the edge is half a width out
