"""The layout's promises: light entry points, recon without the video stack, every preset loads, one camera-centre rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dimensionx.config import load_config
from dimensionx.errors import DimensionXError
from dimensionx.recon.config import ReconConfig
from dimensionx.video.config import ModeConfig, VideoConfig
from recon_synthetic import intrinsics, look_at, transforms_json, write_orbit_video

REPO = Path(__file__).resolve().parents[1]
# Every stage preset in configs/ and the config it loads into (configs/accelerate/ holds accelerate's own files).
STAGE_CONFIGS = {"recon.yaml": "recon.config.ReconConfig", "video.yaml": "video.config.VideoConfig",
                 "tiny.yaml": "video.config.VideoConfig", "orbit.yaml": "orbit.config.OrbitConfig",
                 "app.yaml": "app.config.AppConfig", "train/s_director.yaml": "train.config.TrainConfig",
                 "train/t_director.yaml": "train.config.TrainConfig", "train/tiny.yaml": "train.config.TrainConfig",
                 "train/dataset_tiny.yaml": "train.config.DatasetConfig",
                 "fourd.yaml": "fourd.config.FourDConfig", "fourd_tiny.yaml": "fourd.config.FourDConfig"}


def stage_config(dotted: str) -> type:
    import importlib

    module, name = dotted.rsplit(".", 1)
    return getattr(importlib.import_module(f"dimensionx.{module}"), name)


def test_every_config_preset_loads_into_its_stage_config():
    configs = REPO / "configs"
    presets = sorted(str(p.relative_to(configs)) for p in configs.rglob("*.yaml") if p.parent.name != "accelerate")
    assert set(presets) == set(STAGE_CONFIGS), f"a preset without a stage here: {set(presets) ^ set(STAGE_CONFIGS)}"
    for name in presets:
        cls = stage_config(STAGE_CONFIGS[name])
        assert isinstance(load_config(cls, configs / name), cls), name
    # recon.yaml and video.yaml spell out the defaults; tiny.yaml is the CPU smoke preset
    assert load_config(ReconConfig, configs / "recon.yaml") == ReconConfig()
    assert load_config(VideoConfig, configs / "video.yaml") == VideoConfig()
    tiny = load_config(VideoConfig, configs / "tiny.yaml")
    assert (tiny.model, tiny.steps, tiny.device) == ("tiny", 4, "cpu")


def test_mode_knobs_come_from_the_video_yaml(tmp_path):
    preset = tmp_path / "fast.yaml"
    preset.write_text("mode: fast\nmode_settings:\n  fp8: false\n  cache_interval: 4\n  cache_warmup_steps: 2\n"
                      "  offload_blocks_per_group: 3\n")
    config = load_config(VideoConfig, preset)
    assert config.mode_settings == ModeConfig(fp8=False, cache_interval=4, cache_warmup_steps=2, offload_blocks_per_group=3)
    preset.write_text("mode_settings:\n  cache_interval: 0\n")
    with pytest.raises(DimensionXError, match="cache_interval=0"):
        load_config(VideoConfig, preset)


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)


def test_dimensionx_help_imports_neither_torch_nor_diffusers():
    done = run_python("import sys\nfrom dimensionx.cli import build_parser\nbuild_parser()\n"
                      "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_recon_runs_without_importing_diffusers_or_transformers(tmp_path):
    video = tmp_path / "arc.mp4"
    viewmats, K = write_orbit_video(video, n=8, width=96, height=64)
    cameras = tmp_path / "transforms.json"
    cameras.write_text(json.dumps(transforms_json(viewmats, K, 96, 64)))
    small = tmp_path / "small.yaml"
    small.write_text("random_init_points: 200\nholdout: 4\n")
    code = (
        "import sys\nfrom dimensionx.cli import main\n"
        f"code = main(['recon', {str(video)!r}, '--out', {str(tmp_path / 'scene')!r}, '--cameras', {str(cameras)!r},"
        f" '--config', {str(small)!r}, '--iterations', '5', '--orbit-frames', '0', '--no-progress'])\n"
        "print(code, sorted(m for m in ('diffusers', 'transformers', 'peft') if m in sys.modules))"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []"
    assert (tmp_path / "scene" / "point_cloud.ply").is_file()


def test_camera_centres_are_where_the_cameras_were_placed():
    from dimensionx.recon.cameras import Cameras
    from dimensionx.splats.render import scene_scale
    from dimensionx.splats.render import camera_centers

    eyes = np.array([[0.0, -1.0, -4.0], [3.0, 0.5, 1.0], [-2.0, 2.0, 2.0]])
    viewmats = np.stack([look_at(eye) for eye in eyes])
    np.testing.assert_allclose(camera_centers(viewmats), eyes, atol=1e-12)
    cameras = Cameras(["a", "b", "c"], np.arange(3), viewmats, np.stack([intrinsics(96, 64)] * 3), 96, 64)
    np.testing.assert_allclose(cameras.centers(), eyes, atol=1e-12)
    # gsplat's trainer: 1.1 x the largest distance of a camera from the cameras' centroid
    assert scene_scale(viewmats) == pytest.approx(1.1 * np.linalg.norm(eyes - eyes.mean(0), axis=1).max())


def test_tests_read_a_private_empty_hugging_face_cache(empty_hf_cache):
    import huggingface_hub.constants

    assert Path(huggingface_hub.constants.HF_HUB_CACHE).is_relative_to(empty_hf_cache)
    assert huggingface_hub.constants.HF_HUB_OFFLINE


def test_the_4d_stage_reads_known_cameras_without_pycolmap(tmp_path):
    """A GPU machine without pycolmap (it does not fit next to PyAV there) fits 4D scenes on a transforms.json."""
    viewmats, K = write_orbit_video(tmp_path / "arc.mp4", n=4, width=96, height=64)
    cameras = tmp_path / "transforms.json"
    cameras.write_text(json.dumps(transforms_json(viewmats, K, 96, 64)))
    code = (
        "import sys\nsys.modules['pycolmap'] = None  # import pycolmap now raises\n"
        "import numpy as np\nfrom dimensionx.fourd.config import FourDConfig\nfrom dimensionx.fourd.scene import reference_cameras\n"
        f"views, Ks, ids, *_ = reference_cameras(np.zeros((4, 64, 96, 3), np.uint8), None, FourDConfig(cameras={str(cameras)!r}))\n"
        "print(views.shape, ids.tolist())"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(4, 4, 4) [0, 1, 2, 3]"
