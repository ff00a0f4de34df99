"""`dimensionx recon` as a user runs it (scene3d and pipeline.sh: test_scene3d.py): the scene folder, its files, the errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData

from dimensionx.cli import main
from dimensionx.videofiles import read_frames, write_video
from recon_synthetic import transforms_json, write_orbit_video

REPO = Path(__file__).resolve().parents[1]
FAST = ["--max-size", "160", "--iterations", "30", "--orbit-frames", "6", "--no-progress"]
METRICS_KEYS = {"frames_total", "frames_registered", "models_found", "reprojection_error_px", "psnr", "ssim",
                "n_gaussians", "seconds", "device"}


@pytest.fixture(scope="module")
def arc_video(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 16-frame, 256x192 video of the synthetic splat scene along a 60 degree arc, and its cameras."""
    path = tmp_path_factory.mktemp("arc") / "arc.mp4"
    viewmats, K = write_orbit_video(path)
    return path, viewmats, K


def recon(*args) -> int:
    return main(["recon", *map(str, args)])


def test_recon_writes_a_scene_that_other_tools_open(arc_video, tmp_path):
    out = tmp_path / "scene"
    assert recon(arc_video[0], "--out", out, *FAST) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    assert METRICS_KEYS <= set(metrics)
    assert metrics["frames_total"] == 16 and metrics["frames_registered"] == 16 and metrics["models_found"] == 1
    assert metrics["reprojection_error_px"] < 1.0 and metrics["iterations"] == 30
    # Bar: the (nearly) untrained splats of the same scene (same SfM points, 1 iteration: recon
    # refuses 0) score ~10.2 dB on the held-out frames and 30 iterations ~15.1 dB; 3 dB more (half
    # the MSE) must be reached.
    untrained = tmp_path / "untrained"
    assert recon(arc_video[0], "--out", untrained, *FAST, "--iterations", "1", "--orbit-frames", "0") == 0
    assert metrics["psnr"] > json.loads((untrained / "metrics.json").read_text())["psnr"] + 3.0
    assert set(metrics["seconds"]) == {"frames", "sfm", "train", "eval", "export", "total"}
    assert metrics["device"].startswith("cpu") and metrics["lpips"] is None and "LPIPS" in metrics["lpips_note"]

    ply = PlyData.read(str(out / "point_cloud.ply"))
    assert ply["vertex"].count == metrics["n_gaussians"] and len(ply["vertex"].properties) == 62
    assert (out / "scene.splat").stat().st_size == 32 * metrics["n_gaussians"]
    assert {"cameras.txt", "images.txt", "points3D.txt"} <= {p.name for p in (out / "sparse" / "0").iterdir()}
    transforms = json.loads((out / "transforms.json").read_text())
    assert len(transforms["frames"]) == 16
    assert all((out / frame["file_path"]).is_file() for frame in transforms["frames"])
    assert transforms["frames"][0]["w"] == 160 and transforms["frames"][0]["h"] == 120
    orbit, _ = read_frames(out / "renders" / "orbit.mp4")
    assert orbit.shape == (6, 120, 160, 3)
    holdout = sorted(p.name for p in (out / "renders" / "holdout").iterdir())
    assert holdout == metrics["holdout_frames"] == ["frame_00000.png", "frame_00008.png"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_an_existing_scene_is_kept_without_overwrite(arc_video, tmp_path, capsys):
    out = tmp_path / "scene"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert recon(arc_video[0], "--out", out, *FAST) == 2
    assert "already exists: pass --overwrite" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_known_cameras_skip_sfm(arc_video, tmp_path):
    path, viewmats, K = arc_video
    cameras = tmp_path / "transforms.json"
    cameras.write_text(json.dumps(transforms_json(viewmats, K, 256, 192)))  # full-size intrinsics: rescaled
    config = tmp_path / "small.yaml"
    config.write_text("random_init_points: 400\nholdout: 4\n")
    out = tmp_path / "scene"
    assert recon(path, "--out", out, "--cameras", cameras, "--config", config, *FAST) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["models_found"] is None and metrics["reprojection_error_px"] is None
    assert metrics["frames_registered"] == 16 and len(metrics["holdout_frames"]) == 4
    written = json.loads((out / "transforms.json").read_text())["frames"]
    given = transforms_json(viewmats, K, 256, 192)["frames"]
    np.testing.assert_allclose(written[3]["transform_matrix"], given[3]["transform_matrix"], atol=1e-5)
    assert written[0]["fl_x"] == pytest.approx(K[0, 0] * 160 / 256, rel=1e-6)


def test_noise_fails_with_the_sfm_error_and_writes_nothing(tmp_path, capsys):
    noise = np.random.default_rng(0).integers(0, 256, size=(12, 96, 128, 3), dtype=np.uint8)
    write_video(noise, tmp_path / "noise.mp4", fps=8)
    assert recon(tmp_path / "noise.mp4", "--out", tmp_path / "scene", *FAST) == 2
    err = capsys.readouterr().err
    assert "structure from motion registered only" in err and "--cameras transforms.json" in err
    assert not (tmp_path / "scene").exists()


@pytest.mark.parametrize("args, message", [
    (["missing.mp4"], "missing.mp4 does not exist"),
    (["{video}", "--shot", "3"], "--shot 3 does not exist"),
    (["{video}", "--sh-degree", "4"], "--sh-degree 4 is not supported"),
    (["{video}", "--cameras", "nope.json"], "--cameras nope.json does not exist"),
    (["{video}", "--device", "tpu"], "--device tpu is unknown"),
    (["{video}", "--rasterize-mode", "mip"], "--rasterize-mode mip does not exist: use one of classic, antialiased"),
])
def test_bad_inputs_are_named_with_a_fix(arc_video, tmp_path, capsys, args, message):
    args = [a.format(video=arc_video[0]) for a in args]
    assert recon(*args, "--out", tmp_path / "scene", *FAST) == 2
    assert message in capsys.readouterr().err


def test_configs_recon_yaml_holds_the_defaults():
    from dimensionx.config import load_config
    from dimensionx.recon.config import ReconConfig

    assert load_config(ReconConfig, REPO / "configs" / "recon.yaml") == ReconConfig()
