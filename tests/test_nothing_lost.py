"""A command deletes or replaces only what it wrote itself, and `--overwrite` keeps the old output until
the new one is complete (docs/reliability.md, "Nothing lost"). Through the real CLI where a user meets it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dimensionx.errors import DimensionXError
from dimensionx.outputs import finish_output_dir, OUTPUT_MARKER, set_aside_of, start_output_dir

from recon_synthetic import arc_cameras, intrinsics, transforms_json
from train_synthetic import write_clips

ROOT = Path(__file__).resolve().parents[1]
HOOK = Path(__file__).resolve().parent / "interrupt_hook"
TRAIN = ["--config", str(ROOT / "configs" / "train" / "tiny.yaml"), "--pre-encode"]


def cli(*args, cwd: Path, signal_at: tuple[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if signal_at:  # tests/interrupt_hook sends the signal when the named function is first called
        env.update(PYTHONPATH=os.pathsep.join([str(HOOK), env.get("PYTHONPATH", "")]),
                   DIMENSIONX_TEST_SIGNAL=signal_at[0], DIMENSIONX_TEST_SIGNAL_AT=signal_at[1])
    return subprocess.run([sys.executable, "-m", "dimensionx.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=600, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def error_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines() if ": error: " in line]
    return line


@pytest.fixture
def users_folder(tmp_path) -> Path:
    """A folder of the user's own files: a canary and a subfolder."""
    folder = tmp_path / "work" / "my_project"
    (folder / "notes").mkdir(parents=True)
    (folder / "canary.txt").write_text("the user's own file")
    (folder / "notes" / "todo.md").write_text("- keep me")
    return folder


# --- the folder-level policy: one old copy, kept until the new output is complete --------------------------

def test_overwrite_sets_the_old_output_aside_until_the_new_one_is_finished(tmp_path):
    out = tmp_path / "scene"
    start_output_dir(out, overwrite=False, stage="scene4d")
    (out / "result.bin").write_bytes(b"the complete old result")
    finish_output_dir(out)

    aside = start_output_dir(out, overwrite=True, stage="scene4d")
    assert aside is not None and aside.parent == out.parent and aside.name.startswith(".scene.old-")
    assert (aside / "result.bin").read_bytes() == b"the complete old result"
    assert set_aside_of(out) == aside and sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER]

    (out / "partial.bin").write_bytes(b"half of a new result")  # this run is interrupted; the next --overwrite
    again = start_output_dir(out, overwrite=True, stage="scene4d")  # drops the partial one, not the complete one
    assert again == aside and (aside / "result.bin").is_file() and not (out / "partial.bin").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".scene.old-")] == [aside.name]

    (out / "result.bin").write_bytes(b"the complete new result")
    finish_output_dir(out)
    assert not aside.exists() and set_aside_of(out) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]
    assert "replaces" not in json.loads((out / OUTPUT_MARKER).read_text())


def test_overwrite_never_sets_aside_a_folder_it_did_not_write(users_folder):
    before = snapshot(users_folder.parent)
    with pytest.raises(DimensionXError, match=r"holds files dimensionx did not write \(no \.dimensionx-output\.json\)"):
        start_output_dir(users_folder, overwrite=True, stage="scene4d")
    assert snapshot(users_folder.parent) == before


def test_a_forged_replaces_entry_cannot_point_outside_the_outputs_own_aside(tmp_path, users_folder):
    out = tmp_path / "work" / "scene"
    start_output_dir(out, overwrite=False, stage="scene4d")
    for forged in ("my_project", "../work/my_project", ".scene.old-../my_project"):
        (out / OUTPUT_MARKER).write_text(json.dumps({"tool": "dimensionx", "replaces": forged}))
        assert set_aside_of(out) is None
        finish_output_dir(out)
    assert (users_folder / "canary.txt").is_file() and (users_folder / "notes" / "todo.md").is_file()


# --- train: a run folder is only ever one train made ----------------------------------------------------

@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return write_clips(tmp_path_factory.mktemp("clips"))


@pytest.mark.parametrize("flag", ["--resume", "--overwrite", None])
def test_train_never_writes_into_or_deletes_a_folder_of_the_users_files(users_folder, clips, flag):
    before = snapshot(users_folder.parent)
    result = cli("train", *TRAIN, "--data", clips, "--output-dir", users_folder, *([flag] if flag else []),
                 cwd=users_folder.parent)
    assert result.returncode == 2
    line = error_line(result)
    assert "holds files that `dimensionx train` did not write" in line and "--resume latest" not in line
    assert snapshot(users_folder.parent) == before  # no marker, no config, nothing deleted


def test_train_overwrite_keeps_the_previous_run_until_the_new_one_exports(tmp_path, clips):
    run = tmp_path / "run"
    steps = ["--max-steps", "4", "--checkpoint-every", "2"]
    assert cli("train", *TRAIN, "--data", clips, "--output-dir", run, *steps, cwd=tmp_path).returncode == 0
    old_lora = (run / "pytorch_lora_weights.safetensors").read_bytes()

    # the new run is stopped (SIGTERM) after its first checkpoint: the finished run must still be there
    stopped = cli("train", *TRAIN, "--data", clips, "--output-dir", run, *steps, "--overwrite", "--seed", "7",
                  cwd=tmp_path, signal_at=("SIGTERM", "dimensionx.train.trainer:save_checkpoint"))
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    aside = set_aside_of(run)
    assert aside is not None and (aside / "pytorch_lora_weights.safetensors").read_bytes() == old_lora
    assert f"the run it replaces stays in {aside}" in stopped.stdout
    assert not (run / "pytorch_lora_weights.safetensors").exists()

    resumed = cli("train", *TRAIN, "--data", clips, "--output-dir", run, *steps, "--seed", "7", "--resume", "latest",
                  cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not aside.exists() and set_aside_of(run) is None
    assert (run / "pytorch_lora_weights.safetensors").read_bytes() != old_lora


# --- scene3d: the kept video never replaces a file --------------------------------------------------------

def test_scene3d_keeps_its_video_under_a_free_name_when_sfm_fails(tmp_path, photo):
    (tmp_path / "scene.video.mp4").write_bytes(b"the user's own video")
    (tmp_path / "scene.video.json").write_text('{"mine": true}')
    before = snapshot(tmp_path)
    from dimensionx.directors.tiny import tiny_lora_dir

    lora = tiny_lora_dir() / "orbit_left_lora_weights.safetensors"  # a file alone: no known cameras, so SfM meets noise
    result = cli("scene3d", photo, "--motion", "none", "--lora", lora, "--model", "tiny", "--steps", "1", "--video-frames", "9",
                 "--out", "scene", "--max-size", "160", "--iterations", "30", "--orbit-frames", "6", "--no-progress",
                 cwd=tmp_path)
    assert result.returncode == 2
    assert "The generated video is kept as scene.video-2.mp4" in error_line(result)
    after = snapshot(tmp_path)
    assert {k: after[k] for k in before} == before  # the user's files are untouched
    assert set(after) - set(before) == {"scene.video-2.mp4", "scene.video-2.json"}
    assert json.loads((tmp_path / "scene.video-2.json").read_text())["config"]["lora"] == str(lora)


# --- scene4d: --overwrite keeps the finished scene until the new one is complete ------------------------

@pytest.mark.slow
def test_scene4d_overwrite_interrupted_keeps_the_previous_scene(tmp_path, tiny_model_dir):
    y, x = np.mgrid[0:64, 0:96]
    Image.fromarray(np.stack([x * 2, y * 3, ((x - 48) ** 2 + (y - 32) ** 2 < 300) * 255], -1).astype(np.uint8)).save(tmp_path / "photo.png")
    (tmp_path / "transforms.json").write_text(json.dumps(transforms_json(arc_cameras(9, 40.0), intrinsics(96, 64), 96, 64)))
    command = ["scene4d", "photo.png", "--config", ROOT / "configs" / "fourd_tiny.yaml", "--cameras", "transforms.json",
               "--out", "scene"]
    assert cli(*command, cwd=tmp_path).returncode == 0
    old = snapshot(tmp_path / "scene")

    stopped = cli(*command, "--overwrite", cwd=tmp_path, signal_at=("SIGTERM", "dimensionx.fourd.grid:sdedit_videos"))
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    aside = set_aside_of(tmp_path / "scene")
    assert aside is not None
    assert {k: v for k, v in snapshot(aside).items()} == old  # the complete scene, byte for byte
    assert stopped.stderr.strip().splitlines()[-1].endswith(
        f"run it again without --overwrite to resume; the scene it replaces stays in {aside.relative_to(tmp_path)} "
        "until this one is complete")

    resumed = cli(*command, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not aside.exists() and (tmp_path / "scene" / "metrics.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "scene", "transforms.json"]
