"""The tiny model's known cameras: `video` writes them beside its noise, `scene3d` reconstructs from them without SfM.

The cameras are read back with recon's own transforms.json reader (the file's consumer) and
checked against the geometry each motion promises, worked out here by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from dimensionx.cli import main
from dimensionx.recon.cameras import cameras_from_transforms

FAST = ["--model", "tiny", "--steps", "1", "--frames", "9", "--prompt", "a red barn"]
RECON = ["--iterations", "20", "--orbit-frames", "4", "--no-progress"]


def read_cameras(video: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """(the sidecar, [T, 3] camera centres, [T, 3] viewing directions) of ``video``'s known cameras."""
    sidecar = json.loads(video.with_suffix(".json").read_text())
    path = video.with_name(sidecar["cameras"])
    frames = len(json.loads(path.read_text())["frames"])
    cameras = cameras_from_transforms(path, [f"{i:04d}.png" for i in range(frames)])
    c2w = np.linalg.inv(cameras.viewmats)  # [T, 4, 4] camera-to-world, OpenCV axes
    return sidecar, c2w[:, :3, 3], c2w[:, :3, 2]


def test_tiny_video_writes_the_orbit_left_cameras_beside_it(photo, tmp_path, caplog):
    out = tmp_path / "v" / "tiny.mp4"
    assert main(["video", str(photo), *FAST, "--motion", "orbit_left", "--out", str(out)]) == 0
    sidecar, centres, forward = read_cameras(out)
    assert sidecar["cameras"] == "tiny.transforms.json"
    assert len(centres) == 9
    # orbit_left: 30 degrees round the centre 1 unit ahead, swinging to the camera's left (-x), still facing it
    centre = np.array([0.0, 0.0, 1.0])
    assert np.allclose(np.linalg.norm(centres - centre, axis=1), 1.0)
    assert np.allclose(centres[-1], [-np.sin(np.radians(30)), 0.0, 1 - np.cos(np.radians(30))])
    to_centre = (centre - centres) / np.linalg.norm(centre - centres, axis=1, keepdims=True)
    assert np.allclose(forward, to_centre)
    # full paths (read from the log records: the CLI's stderr handler is bound to the first test's stream)
    assert f"and {out.with_suffix('.json')} and {out.with_name('tiny.transforms.json')}" in caplog.text


def test_a_mix_moves_by_its_weights_and_the_t_director_keeps_the_camera_still(photo, tmp_path):
    out = tmp_path / "mix.mp4"
    assert main(["video", str(photo), *FAST, "--motion", "x_right:0.5,y_up", "--out", str(out)]) == 0
    _, centres, forward = read_cameras(out)
    assert np.allclose(centres[-1], [0.15, -0.3, 0.0])  # half of x_right's 0.3 units, all of y_up's 0.3 (y is down)
    assert np.allclose(forward, [0.0, 0.0, 1.0])
    still = tmp_path / "still.mp4"
    assert main(["video", str(photo), *FAST, "--motion", "time", "--out", str(still)]) == 0
    _, centres, forward = read_cameras(still)
    assert np.allclose(centres, 0.0) and np.allclose(forward, [0.0, 0.0, 1.0])


def test_a_lora_file_alone_has_no_known_cameras(photo, tmp_path):
    from dimensionx.directors.tiny import tiny_lora_dir

    out = tmp_path / "custom.mp4"
    lora = tiny_lora_dir() / "orbit_left_lora_weights.safetensors"
    assert main(["video", str(photo), *FAST, "--motion", "none", "--lora", str(lora), "--out", str(out)]) == 0
    assert "cameras" not in json.loads(out.with_suffix(".json").read_text())
    assert not out.with_suffix(".transforms.json").exists()


def test_scene3d_tiny_reaches_a_3d_scene_from_the_known_cameras(photo, tmp_path, caplog):
    out = tmp_path / "scene"
    assert main(["scene3d", str(photo), "--model", "tiny", "--steps", "1", "--video-frames", "9", "--motion", "orbit_left",
                 "--out", str(out), *RECON]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["models_found"] is None and metrics["frames_registered"] == 9  # no SfM: the cameras were given
    assert metrics["config"]["cameras"].endswith("video.transforms.json")
    assert (out / "point_cloud.ply").is_file() and (out / "video.transforms.json").is_file()
    assert "known cameras of its motion" in caplog.text  # the log line (its stderr handler may predate capsys)


def test_scene3d_orbit_tiny_uses_the_known_ring(photo, tmp_path):
    out = tmp_path / "ring"
    assert main(["scene3d", str(photo), "--orbit", "--model", "tiny-orbit", "--steps", "1", "--out", str(out), *RECON]) == 0
    _, centres, _ = read_cameras(out / "video.mp4")
    assert len(centres) == 33 and json.loads((out / "metrics.json").read_text())["models_found"] is None
    swept = np.degrees(np.arctan2(-centres[:, 0], 1 - centres[:, 2]))  # angle round the centre, left positive
    assert np.allclose(np.unwrap(swept, period=360)[[8, 16, 24]], [90, 180, 270])  # a full 360-degree ring


def test_scene3d_keeps_the_video_and_its_cameras_when_recon_refuses(photo, tmp_path, capsys):
    out = tmp_path / "scene"
    assert main(["scene3d", str(photo), "--model", "tiny", "--steps", "1", "--video-frames", "9", "--motion", "pan_left",
                 "--frames", "5", "--out", str(out), *RECON]) == 2
    err = capsys.readouterr().err
    kept = tmp_path / "scene.video.mp4"
    assert re.search(r"has 9 frames but 5 frames were sampled", err), err
    assert f"run `dimensionx recon {kept} --cameras {tmp_path / 'scene.video.transforms.json'} --out {out}`" in err
    sidecar, centres, _ = read_cameras(kept)
    assert sidecar["cameras"] == "scene.video.transforms.json" and len(centres) == 9
