"""``dimensionx scene4d`` / ``render4d`` end to end on the tiny model with known cameras, and the grid's rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dimensionx.fourd.config import FourDConfig
from dimensionx.fourd.grid import Grid, generate_rows, motion_scores, pick_times, refine
from dimensionx.media import read_frames
from recon_synthetic import arc_cameras, intrinsics, transforms_json

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(model="tiny", device="cpu", steps=2, time_frames=9, times=9, views=9, seed=1)


def dimensionx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dimensionx.cli", *args], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def scene(tmp_path_factory, tiny_model_dir) -> Path:
    folder = tmp_path_factory.mktemp("scene4d")
    cameras = folder / "transforms.json"
    cameras.write_text(json.dumps(transforms_json(arc_cameras(9, 40.0), intrinsics(96, 64), 96, 64)))
    from PIL import Image

    y, x = np.mgrid[0:64, 0:96]
    Image.fromarray(np.stack([x * 2, y * 3, ((x - 48) ** 2 + (y - 32) ** 2 < 300) * 255], -1).astype(np.uint8)).save(folder / "photo.png")
    result = dimensionx("scene4d", str(folder / "photo.png"), "--config", str(ROOT / "configs" / "fourd_tiny.yaml"),
                        "--cameras", str(cameras), "--out", str(folder / "out"))
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "out"


def test_scene4d_writes_every_output(scene):
    grid = scene / "grid"
    assert sorted(p.name for p in grid.glob("time_*.mp4")) == [f"time_{m:02d}.mp4" for m in range(9)]
    assert sorted(p.name for p in grid.glob("view_*.mp4")) == [f"view_{k:02d}.mp4" for k in range(9)]
    frames, _ = read_frames(grid / "time_03.mp4")
    assert frames.shape == (9, 64, 96, 3)
    from PIL import Image

    assert Image.open(grid / "contact_sheet.png").size == (9 * 96, 9 * 64)  # 96 px thumbnails, 9 x 9
    for name in ("canonical.ply", "deformation.safetensors", "deformation.json"):
        assert (scene / "scene4d" / name).is_file()
    transforms = json.loads((scene / "scene4d" / "transforms.json").read_text())
    assert len(transforms["frames"]) == 81
    assert sorted({f["time"] for f in transforms["frames"]}) == pytest.approx(np.linspace(0, 1, 9))
    assert sorted(p.name for p in (scene / "renders").glob("*.mp4")) == ["orbit_t0.50.mp4", "spiral.mp4", "timelapse_view00.mp4"]
    metrics = json.loads((scene / "metrics.json").read_text())
    assert len(metrics["fit"]["psnr_per_time"]) == 9 and metrics["fit"]["holdout_views"] == [1]
    assert len(metrics["fit"]["psnr_per_holdout_view"]) == 1
    assert set(metrics["seconds"]) == {"temporal", "grid", "scene4d", "renders"}
    assert set(metrics["grid"]["consistency_before_refinement"]) == {"time_step", "time_flicker", "view_flicker"}
    assert json.loads((scene / "scene4d.json").read_text())["config"]["times"] == 9
    assert set(metrics["peak_gpu_gib"]) == {"temporal", "grid", "scene4d", "renders"}
    assert not (scene / ".grid-partial").exists()  # the grid stage's work in progress goes once the grid is written


def test_resume_keeps_finished_stages(scene):
    stamp = (scene / "grid" / "time_00.mp4").stat().st_mtime_ns
    import shutil

    shutil.rmtree(scene / "renders")
    (scene / ".renders.k1ll3d").mkdir()  # the temporary folder of a run killed outright (SIGKILL) in that stage
    settings = scene / "scene4d.json"
    result = dimensionx("scene4d", str(json.loads(settings.read_text())["config"]["image"]), "--config", str(settings),
                        "--out", str(scene))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (scene / "grid" / "time_00.mp4").stat().st_mtime_ns == stamp
    assert (scene / "renders" / "spiral.mp4").is_file()
    assert not (scene / ".renders.k1ll3d").exists()


def test_other_settings_refuse_to_resume(scene):
    settings = json.loads((scene / "scene4d.json").read_text())["config"]
    result = dimensionx("scene4d", settings["image"], "--config", str(scene / "scene4d.json"), "--out", str(scene), "--loops", "2")
    assert result.returncode == 2 and "loops" in result.stderr and "--overwrite" in result.stderr


def test_render4d_any_time(scene, tmp_path):
    result = dimensionx("render4d", str(scene), "--time", "0.25", "--frames", "5", "--out", str(tmp_path / "frozen.mp4"))
    assert result.returncode == 0, result.stderr[-3000:]
    frames, _ = read_frames(tmp_path / "frozen.mp4")
    assert frames.shape == (5, 64, 96, 3)


def test_grid_sizes_must_decode_whole():
    result = dimensionx("scene4d", str(ROOT / "pyproject.toml"), "--out", "x", "--times", "13")
    assert result.returncode == 2


def test_pick_times_and_key_frame():
    assert pick_times(49, 9) == [0, 6, 12, 18, 24, 30, 36, 42, 48]
    frames = np.zeros((5, 8, 8, 3), np.uint8)
    frames[3, :4] = 200  # only frame 3 differs from the static background
    assert int(np.argmax(motion_scores(frames))) == 3


@pytest.fixture(scope="module")
def generator(tiny_model_dir):
    from dimensionx.models import resolve_model
    from dimensionx.video.generator import DirectorVideoGenerator

    return DirectorVideoGenerator(resolve_model("tiny"), torch.device("cpu"), torch.float32, reusable=True)


@pytest.mark.slow
def test_refinement_zero_loops_or_zero_strength_is_identity(generator):
    frames = (np.random.default_rng(0).random((9, 9, 64, 96, 3)) * 255).astype(np.uint8)
    grid = Grid(frames, list(range(9)), 0)
    assert np.array_equal(refine(generator, grid, FourDConfig(**TINY, loops=0)).frames, frames)
    assert np.array_equal(refine(generator, grid, FourDConfig(**TINY, loops=1, refine_strength=0.0)).frames, frames)
    changed = refine(generator, grid, FourDConfig(**TINY, loops=1, refine_strength=0.5)).frames
    assert changed.shape == frames.shape and not np.array_equal(changed, frames)


@pytest.mark.slow
def test_same_seed_same_grid(generator):
    temporal = (np.random.default_rng(1).random((9, 64, 96, 3)) * 255).astype(np.uint8)
    config = FourDConfig(**TINY)
    first, second = generate_rows(generator, temporal, config), generate_rows(generator, temporal, config)
    assert np.array_equal(first.frames, second.frames) and first.key == second.key
    assert first.frames.shape == (9, 9, 64, 96, 3)


@pytest.mark.slow
def test_grid_stopped_in_refinement_resumes_from_the_last_pass(generator, tmp_path, monkeypatch):
    from dimensionx.fourd import grid as grid_module
    from dimensionx.fourd import pipeline

    temporal = (np.random.default_rng(2).random((9, 64, 96, 3)) * 255).astype(np.uint8)
    config = FourDConfig(**TINY, loops=1, batch=9)  # one SDEdit batch per pass: over time, then over views
    finished = []  # the final grid of each run, as the contact sheet is drawn from it
    real_sheet, real_sdedit = pipeline.contact_sheet, grid_module.sdedit_videos
    monkeypatch.setattr(pipeline, "contact_sheet", lambda frames: finished.append(frames.copy()) or real_sheet(frames))

    (tmp_path / "whole").mkdir()
    assert pipeline.write_grid(tmp_path / "whole", generator, temporal, config, tmp_path / "whole.partial") is None
    assert not (tmp_path / "whole.partial").exists()

    calls = []

    def stopped_in_second_pass(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_sdedit(*args, **kwargs)

    monkeypatch.setattr(grid_module, "sdedit_videos", stopped_in_second_pass)
    (tmp_path / "stopped").mkdir()
    with pytest.raises(KeyboardInterrupt):
        pipeline.write_grid(tmp_path / "stopped", generator, temporal, config, tmp_path / "stopped.partial")
    progress = json.loads((tmp_path / "stopped.partial" / "progress.json").read_text())
    assert progress["passes"] == 1 and progress["seconds"] > 0

    monkeypatch.setattr(grid_module, "sdedit_videos", lambda *a, **k: calls.append(1) or real_sdedit(*a, **k))
    monkeypatch.setattr(pipeline, "generate_rows", lambda *a, **k: pytest.fail("the rows were made again"))
    earlier = pipeline.write_grid(tmp_path / "stopped", generator, temporal, config, tmp_path / "stopped.partial")
    assert len(calls) == 3  # the resumed run made the second pass only
    assert earlier["seconds"] == progress["seconds"]
    assert np.array_equal(finished[1], finished[0])  # the grid of a run that never stopped
    whole, resumed = (json.loads((tmp_path / name / "grid.json").read_text()) for name in ("whole", "stopped"))
    assert resumed["consistency_before"] == whole["consistency_before"] and resumed["key"] == whole["key"]
    assert not (tmp_path / "stopped.partial").exists()
