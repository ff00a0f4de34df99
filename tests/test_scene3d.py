"""`dimensionx scene3d` and `pipeline.sh`: every video flag reaches the video, the scene is complete, SfM refuses noise."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dimensionx.cli import main
from recon_synthetic import arc_cameras, intrinsics, transforms_json

REPO = Path(__file__).resolve().parents[1]
VIDEO = ["--model", "tiny", "--steps", "2", "--video-frames", "9", "--prompt", "a red barn"]
RECON = ["--max-size", "160", "--iterations", "30", "--orbit-frames", "4", "--no-progress"]


@pytest.fixture
def known_cameras(tmp_path) -> list[str]:
    """--cameras for the 9 frames of the tiny model's 96x64 video (an arc: the frames are noise, the cameras known)."""
    cameras = tmp_path / "transforms.json"
    cameras.write_text(json.dumps(transforms_json(arc_cameras(9, 60.0), intrinsics(96, 64), 96, 64)))
    small = tmp_path / "small.yaml"
    small.write_text("random_init_points: 300\nholdout: 4\n")
    return ["--cameras", str(cameras), "--config", str(small)]


def test_scene3d_forwards_every_video_flag_and_writes_the_scene(photo, tmp_path, known_cameras, tiny_cache):
    from dimensionx.directors.tiny import tiny_lora_dir

    loras = tmp_path / "loras"
    loras.mkdir()
    shutil.copy(tiny_lora_dir() / "orbit_left_lora_weights.safetensors", loras / "orbit_left.safetensors")
    out = tmp_path / "scene"
    code = main(["scene3d", str(photo), *VIDEO, "--motion", "orbit_left", "--lora-dir", str(loras), "--then", "time",
                 "--switch-step", "1", "--guidance", "4.5", "--fit", "pad", "--mode", "lowmem", "--video-seed", "5",
                 "--video-fps", "6", "--video-device", "cpu", "--dtype", "fp32", "--seed", "1", "--out", str(out),
                 *known_cameras, *RECON])
    assert code == 0

    sidecar = json.loads((out / "video.json").read_text())
    config = sidecar["config"]
    assert (config["guidance"], config["fit"], config["mode"], config["seed"], config["fps"], config["steps"]) == (4.5, "pad", "lowmem", 5, 6, 2)
    assert (config["device"], config["dtype"], config["then"], config["switch_step"], config["frames"]) == ("cpu", "fp32", "time", 1, 9)
    assert Path(sidecar["directors"][0]["file"]).parent == loras.resolve() and sidecar["then"]["directors"][0]["name"] == "time"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["seed"] == 1 and metrics["frames_registered"] == 9 and metrics["models_found"] is None
    assert (out / "video.mp4").is_file() and (out / "point_cloud.ply").is_file() and (out / "renders" / "orbit.mp4").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the temporary video folder is gone


def test_scene3d_video_config_preset_and_flag_precedence(photo, tmp_path, known_cameras):
    preset = tmp_path / "video.yaml"
    preset.write_text("model: tiny\nsteps: 1\nframes: 9\nmotion: y_up\nguidance: 3.0\n")
    out = tmp_path / "scene"
    assert main(["scene3d", str(photo), "--video-config", str(preset), "--guidance", "2.5", "--seed", "7",
                 "--out", str(out), *known_cameras, *RECON]) == 0
    config = json.loads((out / "video.json").read_text())["config"]
    assert (config["motion"], config["steps"], config["guidance"], config["seed"]) == ("y_up", 1, 2.5, 7)  # --seed seeds both


def test_scene3d_on_noise_without_cameras_stops_at_sfm_and_keeps_the_video(photo, tmp_path, capsys):
    """A LoRA file alone has no known camera path (tests/test_known_cameras.py), so the noise goes to SfM."""
    from dimensionx.directors.tiny import tiny_lora_dir

    out = tmp_path / "scene"
    lora = tiny_lora_dir() / "orbit_left_lora_weights.safetensors"
    assert main(["scene3d", str(photo), *VIDEO, "--motion", "none", "--lora", str(lora), "--out", str(out), *RECON]) == 2
    err = capsys.readouterr().err
    kept = tmp_path / "scene.video.mp4"
    assert re.search(rf"dimensionx scene3d: error: structure from motion registered only \d of 9 frames of {re.escape(str(kept))}", err), err
    assert f"The generated video is kept as {kept}" in err
    assert not out.exists() and kept.is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_pipeline_sh_makes_a_scene(photo, tmp_path, known_cameras):
    env = {**os.environ, "PYTHON": sys.executable}
    run = subprocess.run(["bash", str(REPO / "pipeline.sh"), str(photo), "orbit_left", *VIDEO, "--seed", "3",
                          "--out", str(tmp_path / "scene"), *known_cameras, *RECON],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "scene" / "metrics.json").read_text())["frames_registered"] == 9
    assert json.loads((tmp_path / "scene" / "video.json").read_text())["config"]["seed"] == 3
    usage = subprocess.run(["bash", str(REPO / "pipeline.sh"), str(photo)], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage: bash pipeline.sh IMAGE MOTION" in usage.stderr


@pytest.mark.slow
def test_scene3d_gpus_2_runs_the_video_cfg_parallel(photo, tmp_path, known_cameras):
    """--gpus 2 launches the video under torchrun (gloo processes on a CPU), then reconstructs in this process."""
    out = tmp_path / "scene"
    assert main(["scene3d", str(photo), *VIDEO, "--motion", "orbit_left", "--gpus", "2", "--video-device", "cpu",
                 "--out", str(out), *known_cameras, *RECON]) == 0
    assert json.loads((out / "video.json").read_text())["processes"] == 2
    assert (out / "video.mp4").is_file() and (out / "metrics.json").is_file() and not (out / "launch_settings.json").exists()
