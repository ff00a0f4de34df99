"""``dimensionx scene4d`` / ``render4d`` end to end on the tiny model with known cameras, and the grid's rules."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dimensionx.fourd.config import FourDConfig
from dimensionx.fourd.grid import Grid, generate_rows, motion_scores, pick_times, refine
from dimensionx.videofiles import read_frames
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


def test_resume_keeps_finished_stages(scene, ended_pid):
    stamp = (scene / "grid" / "time_00.mp4").stat().st_mtime_ns
    import shutil

    shutil.rmtree(scene / "renders")
    (scene / f".renders.tmp-{ended_pid}-k1ll3d00").mkdir()  # the temporary folder of a run killed outright (SIGKILL) in that stage
    settings = scene / "scene4d.json"
    result = dimensionx("scene4d", str(json.loads(settings.read_text())["config"]["image"]), "--config", str(settings),
                        "--out", str(scene))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (scene / "grid" / "time_00.mp4").stat().st_mtime_ns == stamp
    assert (scene / "renders" / "spiral.mp4").is_file()
    assert not (scene / f".renders.tmp-{ended_pid}-k1ll3d00").exists()


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


def moved_copy(scene: Path, tmp_path: Path) -> Path:
    """A copy of the scene folder, its settings naming the copy as --out (so a run there resumes it)."""
    import shutil

    copy = tmp_path / "scene"
    shutil.copytree(scene, copy)
    sidecar = json.loads((copy / "scene4d.json").read_text())
    sidecar["config"]["out"] = str(copy)
    (copy / "scene4d.json").write_text(json.dumps(sidecar))
    return copy


def damage(path: Path, how: str) -> None:
    """``path`` cut to half its bytes ("truncate") or replaced by text ("garbage")."""
    if how == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_text("{not json")


def damaged_copy(scene: Path, tmp_path: Path, name: str, how: str) -> Path:
    copy = moved_copy(scene, tmp_path)
    damage(copy / name, how)
    return copy


def resume(copy: Path) -> subprocess.CompletedProcess:
    config = json.loads((copy / "scene4d.json").read_text())["config"]
    return dimensionx("scene4d", config["image"], "--config", str(copy / "scene4d.json"), "--out", str(copy))


@pytest.mark.parametrize("name, how", [
    ("scene4d/deformation.safetensors", "truncate"), ("scene4d/canonical.ply", "truncate"),
    ("scene4d/deformation.json", "garbage"), ("grid/grid.json", "garbage"), ("grid/stage.json", "garbage"),
    ("temporal/temporal.mp4", "truncate"),
])
def test_resume_over_a_damaged_scene_names_the_file(scene, tmp_path, name, how):
    """A finished stage whose file was cut short or overwritten: the resumed run stops before using it, with
    one line naming the file and how to redo that stage, exit 2; nothing is rewritten."""
    copy = damaged_copy(scene, tmp_path, name, how)
    before = sorted(p.stat().st_mtime_ns for p in copy.rglob("*") if p.is_file())
    result = resume(copy)
    assert result.returncode == 2, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert f"{copy / name} is damaged" in line and f"delete {copy / name.split('/')[0]}" in line, line
    assert "Traceback" not in result.stderr
    assert sorted(p.stat().st_mtime_ns for p in copy.rglob("*") if p.is_file()) == before


def test_resume_over_a_damaged_sidecar_asks_for_overwrite(scene, tmp_path):
    copy = damaged_copy(scene, tmp_path, "scene4d.json", "garbage")
    image = json.loads((scene / "scene4d.json").read_text())["config"]["image"]
    result = dimensionx("scene4d", image, "--config", str(ROOT / "configs" / "fourd_tiny.yaml"), "--out", str(copy))
    assert result.returncode == 2 and f"{copy / 'scene4d.json'} is damaged" in result.stderr
    assert "its settings are lost: pass --overwrite" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("name, how", [(".grid-partial/progress.json", "garbage"), (".grid-partial/raw.npy", "truncate")])
def test_damaged_grid_work_in_progress_names_the_file(scene, tmp_path, name, how):
    """The grid stage's kept work (rows, progress) damaged: one line naming it and saying to delete the folder."""
    import shutil

    copy = moved_copy(scene, tmp_path)
    for stage in ("grid", "scene4d", "renders"):
        shutil.rmtree(copy / stage)
    partial = copy / ".grid-partial"
    partial.mkdir()
    np.save(partial / "raw.npy", np.zeros((9, 9, 64, 96, 3), np.uint8))
    (partial / "progress.json").write_text(json.dumps({"times": list(range(9)), "key": 0, "passes": 0, "clock": {},
                                                       "seconds": 1.0, "peak_gpu_gib": None}))
    path = copy / name
    damage(path, how)
    result = resume(copy)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{path} is damaged" in result.stderr and f"delete {partial}" in result.stderr and "Traceback" not in result.stderr


def test_render4d_on_a_damaged_scene_names_the_file(scene, tmp_path):
    copy = damaged_copy(scene, tmp_path, "scene4d/canonical.ply", "truncate")
    result = dimensionx("render4d", str(copy), "--out", str(tmp_path / "o.mp4"))
    assert result.returncode == 2 and f"{copy / 'scene4d' / 'canonical.ply'} is damaged" in result.stderr
    assert not (tmp_path / "o.mp4").exists() and "Traceback" not in result.stderr


@pytest.mark.parametrize("flag, value, rule", [("--frames", "0", "--frames 0: a video of 1 to 3600 frames"),
                                               ("--fps", "-5", "--fps -5: frames per second must be from 1 to 240")])
def test_render4d_refuses_empty_videos_before_work(scene, tmp_path, flag, value, rule):
    result = dimensionx("render4d", str(scene), flag, value, "--out", str(tmp_path / "o.mp4"))
    assert result.returncode == 2 and rule in result.stderr and not (tmp_path / "o.mp4").exists()


def test_cameras_of_the_wrong_length_are_refused_before_any_stage(tmp_path):
    cameras = tmp_path / "five.json"
    cameras.write_text(json.dumps(transforms_json(arc_cameras(5, 40.0), intrinsics(96, 64), 96, 64)))
    result = dimensionx("scene4d", str(ROOT / "docs" / "app.png"), "--config", str(ROOT / "configs" / "fourd_tiny.yaml"),
                        "--cameras", str(cameras), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "has 5 frames but the grid has --views 9" in result.stderr
    assert not (tmp_path / "out").exists()


def test_adding_cameras_after_a_failed_fit_reuses_the_grid(scene, tmp_path):
    """A run whose fit failed (SfM, say) left temporal/ and grid/: the same command with --cameras (only that
    changed) keeps them and fits."""
    import shutil

    copy = moved_copy(scene, tmp_path)
    for stage in ("scene4d", "renders"):
        shutil.rmtree(copy / stage)
    sidecar = json.loads((copy / "scene4d.json").read_text())
    cameras = sidecar["config"].pop("cameras")
    sidecar["config"]["cameras"] = None
    (copy / "scene4d.json").write_text(json.dumps(sidecar))
    stamp = (copy / "grid" / "time_00.mp4").stat().st_mtime_ns
    result = dimensionx("scene4d", sidecar["config"]["image"], "--config", str(ROOT / "configs" / "fourd_tiny.yaml"),
                        "--cameras", cameras, "--out", str(copy))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (copy / "grid" / "time_00.mp4").stat().st_mtime_ns == stamp and (copy / "scene4d" / "canonical.ply").is_file()
    assert f"4D scene written to {copy}" in result.stdout


@pytest.mark.slow
def test_grid_over_two_processes_equals_the_one_process_grid(tmp_path, tiny_model_dir):
    """``--gpus 2`` on the CPU: two gloo processes under torchrun, each making every other group of videos
    (``--batch 2``: 4 groups of rows, then 5 of views and 5 of times in the refinement passes), gathered
    before each next step. The grid, raw and refined, equals the one-process grid frame for frame, and
    the scene is finished by the first process."""
    from PIL import Image

    cameras = tmp_path / "transforms.json"
    cameras.write_text(json.dumps(transforms_json(arc_cameras(9, 40.0), intrinsics(96, 64), 96, 64)))
    y, x = np.mgrid[0:64, 0:96]
    Image.fromarray(np.stack([x * 2, y * 3, ((x - 48) ** 2 + (y - 32) ** 2 < 300) * 255], -1).astype(np.uint8)).save(tmp_path / "p.png")
    common = [str(tmp_path / "p.png"), "--config", str(ROOT / "configs" / "fourd_tiny.yaml"), "--cameras", str(cameras),
              "--batch", "2", "--iterations", "2"]
    one = dimensionx("scene4d", *common, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-3000:]
    two = dimensionx("scene4d", *common, "--gpus", "2", "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("4D scene written to") == 1
    shares = lambda stderr: sorted(set(re.findall(r"spatial videos: 100%\|[^|]*\| (\d+/\d+)", stderr)))  # noqa: E731
    assert shares(one.stderr) == ["4/4"] and shares(two.stderr) == ["2/2"]  # each process made half the rows
    for name in [f"time_{m:02d}.mp4" for m in range(9)] + [f"raw/time_{m:02d}.mp4" for m in range(9)]:
        a, b = read_frames(tmp_path / "one" / "grid" / name)[0], read_frames(tmp_path / "two" / "grid" / name)[0]
        assert np.array_equal(a, b), name
    assert (tmp_path / "two" / "renders" / "spiral.mp4").is_file() and (tmp_path / "two" / "metrics.json").is_file()


def test_sfm_failure_advises_scene4d_flags_only(tmp_path):
    """SfM on a reference row it cannot match (noise): the error names scene4d's own ways out (--cameras,
    --views, --seed, --overwrite), never recon's flags (--frames, --shot, --max-size) that scene4d lacks."""
    from dimensionx.errors import DimensionXError
    from dimensionx.fourd.scene import reference_cameras

    noise = np.random.default_rng(0).integers(0, 256, (9, 64, 96, 3), dtype=np.uint8)
    with pytest.raises(DimensionXError) as error:
        reference_cameras(noise, tmp_path, FourDConfig(views=9, seed=1))
    message = str(error.value)
    assert "could not find the cameras of the grid's reference row (9 views" in message
    assert "--cameras transforms.json" in message and "--views" in message
    assert not any(flag in message for flag in ("--frames", "--shot", "--max-size"))
