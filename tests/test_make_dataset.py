"""`dimensionx make-dataset` on a small synthetic splat scene: one clip per motion along its defined path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dimensionx.cli import main
from dimensionx.directors.camera_paths import MOTIONS
from dimensionx.splats.export import read_ply, write_ply
from dimensionx.train.data import find_clips
from dimensionx.videofiles import read_frames

FOCAL, WIDTH, HEIGHT, DISTANCE = 60.0, 64, 48, 4.0
MARKERS = {  # position -> colour; the median of the centres is the origin, where the red marker sits
    (0.0, 0.0, 0.0): (1, 0, 0), (1.2, 0.0, 0.0): (0, 1, 0), (-1.2, 0.0, 0.0): (0, 1, 0),
    (0.0, 1.2, 0.0): (0, 0, 1), (0.0, -1.2, 0.0): (0, 0, 1),
}


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """Five opaque blobs; one recon camera 4 units in front of the origin, looking at it (identity rotation)."""
    folder = tmp_path_factory.mktemp("scene")
    n = len(MARKERS)
    rgb = torch.tensor(list(MARKERS.values()), dtype=torch.float32) * 0.9 + 0.05
    splats = torch.nn.ParameterDict({
        "means": torch.nn.Parameter(torch.tensor(list(MARKERS), dtype=torch.float32)),
        "scales": torch.nn.Parameter(torch.full((n, 3), float(np.log(0.12)))),
        "quats": torch.nn.Parameter(torch.tensor([[1.0, 0, 0, 0]] * n)),
        "opacities": torch.nn.Parameter(torch.full((n,), 6.0)),
        "sh0": torch.nn.Parameter(((rgb - 0.5) / 0.28209479177387814)[:, None]),
        "shN": torch.nn.Parameter(torch.zeros(n, 0, 3)),
    })
    write_ply(splats, folder / "point_cloud.ply")
    c2w_opengl = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV identity rotation, written with OpenGL axes
    c2w_opengl[:3, 3] = [0, 0, -DISTANCE]
    frame = {"file_path": "images/frame_00000.png", "fl_x": FOCAL, "fl_y": FOCAL, "cx": WIDTH / 2, "cy": HEIGHT / 2,
             "w": WIDTH, "h": HEIGHT, "transform_matrix": c2w_opengl.tolist()}
    (folder / "transforms.json").write_text(json.dumps({"camera_model": "OPENCV", "frames": [frame]}))
    return folder


@pytest.fixture(scope="module")
def dataset(scene, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("datasets") / "synthetic"
    assert main(["make-dataset", str(scene), "--out", str(out), "--clips", "1", "--frames", "5",
                 "--size", f"{WIDTH}x{HEIGHT}", "--jitter", "0", "--device", "cpu", "--caption", "five blobs"]) == 0
    return out


def red_centroid(frame: np.ndarray) -> tuple[float, float, int]:
    """(x, y) px and area of the red marker in an [H, W, 3] frame."""
    mask = (frame[..., 0] > 120) & (frame[..., 1] < 90) & (frame[..., 2] < 90)
    ys, xs = np.nonzero(mask)
    return float(xs.mean()) + 0.5, float(ys.mean()) + 0.5, int(mask.sum())


def test_ply_reads_back_what_was_written(scene):
    splats = read_ply(scene / "point_cloud.ply")
    torch.testing.assert_close(splats["means"], torch.tensor(list(MARKERS), dtype=torch.float32))
    assert splats["sh0"].shape == (5, 1, 3) and splats["shN"].shape == (5, 0, 3)
    torch.testing.assert_close(splats["scales"], torch.full((5, 3), float(np.log(0.12))))


def test_one_clip_per_motion_in_the_csv_form_train_reads(dataset):
    rows = (dataset / "metadata.csv").read_text().splitlines()
    assert rows[0] == "video,caption" and len(rows) == 1 + 16
    for name in MOTIONS:
        (clip,) = find_clips(dataset / name, skip=0).clips
        assert clip.video.name == f"{name}_000.mp4" and clip.caption == "five blobs" and clip.frames == 5
        assert (dataset / name / "contact_sheet.png").is_file()
    frames, fps = read_frames(dataset / "orbit_left" / "videos" / "orbit_left_000.mp4")
    assert frames.shape == (5, HEIGHT, WIDTH, 3) and fps == 8


def test_orbit_left_swings_left_about_the_scene_centre(dataset):
    poses = np.array(json.loads((dataset / "orbit_left" / "cameras" / "orbit_left_000.json").read_text())["camera_to_world_opencv"])
    positions, forwards = poses[:, :3, 3], poses[:, :3, 2]
    np.testing.assert_allclose(np.linalg.det(poses[:, :3, :3]), 1.0, atol=1e-9)  # right-handed camera axes
    np.testing.assert_allclose(np.linalg.norm(positions, axis=1), DISTANCE, atol=1e-9)  # the centre is the origin
    # 30 degrees to the camera's left (-x) round the origin, from (0, 0, -4): by hand
    np.testing.assert_allclose(positions[-1], [-DISTANCE * np.sin(np.pi / 6), 0, -DISTANCE * np.cos(np.pi / 6)], atol=1e-9)
    np.testing.assert_allclose(forwards, -positions / DISTANCE, atol=1e-9)  # always looking at the centre
    frames = read_frames(dataset / "orbit_left" / "videos" / "orbit_left_000.mp4")[0]
    for frame in frames:  # the rendered centre marker stays in the middle of the image
        x, y, _ = red_centroid(frame)
        assert abs(x - WIDTH / 2) < 1.5 and abs(y - HEIGHT / 2) < 1.5
    green = lambda f: np.nonzero((f[..., 1] > 120) & (f[..., 0] < 90))[1]  # noqa: E731
    assert green(frames[-1]).max() - green(frames[-1]).min() < green(frames[0]).max() - green(frames[0]).min(), \
        "the x-axis blobs must come closer together in the image as the camera swings off their line"


def test_pan_left_sweeps_the_scene_right_and_zoom_in_enlarges_it(dataset):
    pan = read_frames(dataset / "pan_left" / "videos" / "pan_left_000.mp4")[0]
    x, y, _ = red_centroid(pan[2])  # halfway: the camera has turned 15 degrees left
    assert x == pytest.approx(WIDTH / 2 + FOCAL * np.tan(np.pi / 12), abs=1.5) and abs(y - HEIGHT / 2) < 1.5
    zoom = read_frames(dataset / "z_zoom_in" / "videos" / "z_zoom_in_000.mp4")[0]
    # 0.4 scene units in: the distance drops from 4 to 2.4, the marker's area grows by (4 / 2.4)^2
    assert red_centroid(zoom[-1])[2] / red_centroid(zoom[0])[2] == pytest.approx((4 / 2.4) ** 2, rel=0.25)


def test_unknown_motion_fails_before_rendering(scene, tmp_path, capsys):
    assert main(["make-dataset", str(scene), "--out", str(tmp_path / "d"), "--motions", "orbit_sideways"]) == 2
    assert "orbit_sideways" in capsys.readouterr().err and not (tmp_path / "d").exists()
