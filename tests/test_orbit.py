"""`dimensionx orbit` on the tiny orbit model, and an orbit model converted from a SAT checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dimensionx.cli import main
from dimensionx.video.loop import close_loop
from dimensionx.videofiles import read_frames
from test_sat_convert import save_deepspeed, sat_names

TINY_FRAMES = 33  # tiny-orbit's sample_frames (the real orbit model: 145)
FAST = ["--model", "tiny-orbit", "--steps", "2", "--prompt", "a red barn in a field"]


def orbit(*args) -> int:
    return main(["orbit", *map(str, args)])


@pytest.fixture(scope="module")
def tiny_orbit(tmp_path_factory) -> Path:
    from PIL import Image

    folder = tmp_path_factory.mktemp("orbit")
    y, x = np.mgrid[0:100, 0:150]
    rgb = np.stack([x / 150 * 255, y / 100 * 255, ((x - 75) ** 2 + (y - 50) ** 2 < 900) * 255], -1)
    Image.fromarray(rgb.astype(np.uint8)).save(folder / "photo.png")
    assert orbit(folder / "photo.png", *FAST, "--out", folder / "orbit.mp4") == 0
    return folder / "orbit.mp4"


def test_orbit_makes_the_models_frames_with_the_original_settings(tiny_orbit):
    frames, fps = read_frames(tiny_orbit)
    assert frames.shape == (TINY_FRAMES, 64, 96, 3) and fps == 8
    config = json.loads(tiny_orbit.with_suffix(".json").read_text())["config"]
    assert config["frames"] == TINY_FRAMES and config["uncond"] == "zero" and config["motion"] == "none"
    assert config["guidance"] == 6.0 and config["dynamic_cfg"] is True and config["seed"] == 42 and config["loop_frames"] == 0


def test_recon_reads_an_orbit_video_as_a_closed_360_degree_path(tiny_orbit):
    """The orbit's sidecar tells the 3D stage to match the loop's ends and to check a 360-degree sweep."""
    from dimensionx.recon.config import ReconConfig
    from dimensionx.recon.sfm import camera_prior

    prior = camera_prior(ReconConfig(video=str(tiny_orbit)))
    assert prior.orbit_degrees == 360.0
    assert prior.closed_loop


def test_sat_checkpoint_converted_makes_the_same_orbit(tiny_orbit, tmp_path):
    """The tiny orbit's transformer written under SAT names, converted, makes the tiny orbit's video."""
    from diffusers import CogVideoXTransformer3DModel

    from dimensionx.models import resolve_model

    transformer = CogVideoXTransformer3DModel.from_pretrained(resolve_model("tiny-orbit").path, subfolder="transformer")
    source = save_deepspeed(sat_names(transformer), tmp_path / "run")
    (tmp_path / "sat.yaml").write_text(
        f"model: {{network_config: {{params: {{num_frames: {TINY_FRAMES}, latent_height: 8, latent_width: 12}}}}}}\n")
    model = tmp_path / "orbit360"
    assert main(["convert-sat", str(source), "--out", str(model), "--base", "tiny-orbit", "--sat-config", str(tmp_path / "sat.yaml")]) == 0
    assert not (model / "vae").exists()  # transformer only: VAE, T5 and scheduler come from the base

    out = tmp_path / "converted.mp4"
    assert orbit(tiny_orbit.parent / "photo.png", *FAST[2:], "--model", model, "--out", out) == 0
    assert np.array_equal(read_frames(out)[0], read_frames(tiny_orbit)[0])


def test_a_frame_count_the_table_does_not_fit_is_refused(photo, tmp_path, capsys):
    assert orbit(photo, *FAST, "--frames", "49", "--out", tmp_path / "o.mp4") == 2
    assert f"makes exactly {TINY_FRAMES} frames" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_without_a_model_the_error_says_how_to_convert_one(photo, tmp_path, capsys):
    assert orbit(photo, "--out", tmp_path / "o.mp4") == 2
    assert "dimensionx convert-sat" in capsys.readouterr().err


@pytest.mark.parametrize("uncond", ["zero", "empty"])
def test_unguided_branch_text(photo, uncond):
    """``zero``: the unguided half of the CFG batch gets an all-zero T5 embedding (as SAT); ``empty``: the embedding of ""."""
    from PIL import Image

    from dimensionx.models import resolve_model
    from dimensionx.orbit.config import OrbitConfig
    from dimensionx.video.generator import DirectorVideoGenerator

    generator = DirectorVideoGenerator(resolve_model("tiny-orbit"), torch.device("cpu"), torch.float32)
    seen = []
    generator.pipe.transformer.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["encoder_hidden_states"]), with_kwargs=True)
    height, width = generator.size
    config = OrbitConfig(frames=TINY_FRAMES, steps=1, uncond=uncond, prompt="a red barn")
    generator(Image.open(photo).resize((width, height)), config.prompt, config, decode=False)
    unguided, guided = seen[0]  # [226, 32] each: the pipeline puts the unguided branch first
    assert guided.abs().sum() > 0
    assert (unguided.abs().sum() == 0) == (uncond == "zero")


def test_loop_fades_the_tail_into_the_first_frame():
    frames = (np.arange(10, dtype=np.uint8) * 10)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3)  # frame t: value 10 t
    looped = close_loop(frames, 4)
    # frames 6..9 (60, 70, 80, 90) move 1/5, 2/5, 3/5, 4/5 of the way to frame 0 (value 0)
    assert looped[:, 0, 0, 0].tolist() == [0, 10, 20, 30, 40, 50, 48, 42, 32, 18]
    assert looped.dtype == np.uint8 and np.array_equal(close_loop(frames, 0), frames)


def test_loop_longer_than_half_the_video_is_refused(photo, tmp_path, capsys):
    assert orbit(photo, *FAST, "--loop", "20", "--out", tmp_path / "o.mp4") == 2
    assert "--loop 20" in capsys.readouterr().err



def test_scene3d_orbit_feeds_the_orbit_video_to_the_3d_stage(photo, tmp_path, caplog):
    from recon_synthetic import arc_cameras, intrinsics, transforms_json

    # Random weights draw noise, which SfM cannot match: known cameras (a full circle) make the 3D stage run.
    cameras = tmp_path / "transforms.json"
    cameras.write_text(json.dumps(transforms_json(arc_cameras(TINY_FRAMES, 360.0), intrinsics(96, 64), 96, 64)))
    small = tmp_path / "small.yaml"
    small.write_text("random_init_points: 300\n")
    out = tmp_path / "scene"
    recon = ["--max-size", "160", "--iterations", "30", "--orbit-frames", "6", "--no-progress", "--cameras", str(cameras),
             "--config", str(small)]
    with caplog.at_level("INFO"):
        assert main(["scene3d", str(photo), "--orbit", *FAST, "--out", str(out), *recon]) == 0
    assert f"({TINY_FRAMES} frames, 96x64)" in caplog.text  # the orbit model's video went to the 3D stage
    assert read_frames(out / "video.mp4")[0].shape[0] == TINY_FRAMES
    assert json.loads((out / "metrics.json").read_text())["frames_registered"] == TINY_FRAMES


def test_pipeline_sh_turns_orbit360_into_scene3d_orbit(tmp_path):
    import subprocess

    script = Path(__file__).parents[1] / "pipeline.sh"
    run = subprocess.run(["bash", str(script), "photo.jpg", "orbit360", "--model", "m"], capture_output=True, text=True,
                         env={"PYTHON": "echo", "PATH": "/usr/bin:/bin"})
    assert run.stdout.split() == ["-m", "dimensionx.cli", "scene3d", "photo.jpg", "--orbit", "--out", "outputs/photo_orbit360", "--model", "m"]


def test_configs_orbit_yaml_holds_the_defaults_and_names_the_converted_folder():
    from dimensionx.config import load_config
    from dimensionx.orbit.config import OrbitConfig

    preset = load_config(OrbitConfig, Path(__file__).parents[1] / "configs" / "orbit.yaml")
    assert preset == OrbitConfig(model="models/orbit360")


def test_batch_writes_one_orbit_per_line_and_reports_a_bad_line(photo, tmp_path):
    batch = tmp_path / "prompts.txt"
    batch.write_text(f"{photo}@@a red barn\nmissing.png@@a blue barn\n")
    assert orbit("--batch", batch, *FAST, "--out", tmp_path / "orbits") == 1  # line 2 fails, line 1 is written
    (video,) = sorted((tmp_path / "orbits").glob("*.mp4"))
    assert video.name.startswith("0001_photo") and read_frames(video)[0].shape[0] == TINY_FRAMES
    assert json.loads(video.with_suffix(".json").read_text())["config"]["prompt"] == "a red barn"
