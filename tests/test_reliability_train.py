"""`train`, `make-dataset` and the files they read, through the real CLI: a damaged input is named in
one line (exit 2, no traceback) and nothing is left half-written (docs/reliability.md)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_reliability import assert_refused, cli, files
from train_synthetic import write_clips, write_cut_short

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["--config", ROOT / "configs" / "train" / "tiny.yaml"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return write_clips(tmp_path_factory.mktemp("clips"), frames=25)


def test_a_clip_cut_short_is_named_with_the_frames_it_holds_not_trained_on(clips, tmp_path):
    write_cut_short(clips / "videos" / "clip0.mp4", tmp_path / "cut.mp4")
    (tmp_path / "metadata.csv").write_text("video,caption\ncut.mp4,a disc\n")
    before = files(tmp_path)
    result = cli("train", *TINY_TRAIN, "--data", tmp_path, "--output-dir", tmp_path / "run", cwd=tmp_path)
    assert_refused(result, "none of its 1 rows is usable", tmp_path, before)
    warning = re.search(r"skipping line 2 \(cut\.mp4\): \S*cut\.mp4 is cut short: its header declares 25 frames but only "
                        r"frames 0-(\d+) \((\d+)\) decode", result.stderr)
    assert warning and int(warning[2]) == int(warning[1]) + 1 < 25, result.stderr


@pytest.mark.parametrize("flag, message", [
    (["--learning-rate", "nan"], "learning_rate nan: use a number from 1e-08 to 1 (the default is 0.001)"),
    (["--learning-rate", "inf"], "learning_rate inf: use a number from 1e-08 to 1"),
    (["--rank", "100000"], "rank 100000: use a number from 1 to 3072 (the default is 256)"),
    (["--micro-batch", "0"], "micro_batch 0: use a number from 1 to 64"),
    (["--frames", "100001"], "frames 100001: use a number from 5 to 161"),
    (["--frames", "10"], "frames 10: CogVideoX takes 4k+1 frames"),
])
def test_flags_out_of_range_are_refused_before_the_run_folder_is_made(clips, tmp_path, flag, message):
    before = files(tmp_path)
    result = cli("train", *TINY_TRAIN, "--data", clips, "--output-dir", tmp_path / "run", *flag, cwd=tmp_path)
    assert_refused(result, message, tmp_path, before)


@pytest.mark.parametrize("text, message", [
    ("- model\n- tiny\n", "holds a list or a single value, not a mapping of settings: write one `name: value` per line"),
    ("rank: [4\n", "is not valid YAML/JSON (while parsing a flow sequence"),
])
def test_a_config_file_that_is_no_mapping_is_named(clips, tmp_path, text, message):
    (tmp_path / "preset.yaml").write_text(text)
    before = files(tmp_path)
    result = cli("train", "--config", "preset.yaml", "--data", clips, "--output-dir", "run", cwd=tmp_path)
    assert_refused(result, f"config file preset.yaml {message}", tmp_path, before)


@pytest.mark.parametrize("text, message", [
    ("model: [unclosed\n", "--sat-config sat.yaml is not valid YAML/JSON"),
    ("- a\n- b\n", "--sat-config sat.yaml holds a list or a single value, not a mapping of settings"),
    ("model:\n  network_config:\n    params:\n      num_frames: many\n",
     "--sat-config sat.yaml: invalid literal for int() with base 10: 'many'; num_frames, latent_height"),
])
def test_convert_sat_names_a_bad_sat_config(tmp_path, text, message):
    (tmp_path / "sat.yaml").write_text(text)
    before = files(tmp_path)
    result = cli("convert-sat", "ckpt", "--sat-config", "sat.yaml", "--out", "converted", cwd=tmp_path)
    assert_refused(result, message, tmp_path, before)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """A scene folder as `recon` writes it: five splats and one camera."""
    import json

    import numpy as np
    import torch

    from dimensionx.splats.export import write_ply

    folder = tmp_path_factory.mktemp("scene")
    n = 5
    splats = {"means": torch.randn(n, 3, generator=torch.Generator().manual_seed(0)), "scales": torch.full((n, 3), -2.0),
              "quats": torch.tensor([[1.0, 0, 0, 0]] * n), "opacities": torch.full((n,), 6.0),
              "sh0": torch.full((n, 1, 3), 0.5), "shN": torch.zeros(n, 0, 3)}
    write_ply(splats, folder / "point_cloud.ply")
    c2w = np.diag([1.0, -1.0, -1.0, 1.0])
    c2w[:3, 3] = [0, 0, -4]
    frame = {"file_path": "f.png", "fl_x": 60, "fl_y": 60, "w": 64, "h": 48, "transform_matrix": c2w.tolist()}
    (folder / "transforms.json").write_text(json.dumps({"frames": [frame]}))
    return folder


def test_make_dataset_names_a_truncated_ply(scene, tmp_path):
    cut = tmp_path / "cut"
    cut.mkdir()
    data = (scene / "point_cloud.ply").read_bytes()
    (cut / "point_cloud.ply").write_bytes(data[:-50])  # the last splat's row is cut short
    (cut / "transforms.json").write_text((scene / "transforms.json").read_text())
    before = files(tmp_path)
    result = cli("make-dataset", "cut", "--out", "data", "--device", "cpu", cwd=tmp_path)
    assert_refused(result, "cut/point_cloud.ply is damaged or not a 3DGS PLY (PlyElementParseError: element 'vertex': "
                           "row 4: early end-of-file): re-run `dimensionx recon`", tmp_path, before)


# ---- a damaged checkpoint, a full or read-only disk -----------------------------------------------------

def in_mount_namespace(mounts: str, *args, cwd: Path, after: str = "true"):
    """Runs the CLI in a private mount namespace after the shell commands ``mounts`` (a small tmpfs: a full
    disk; a read-only bind mount), as an unprivileged user can with `unshare -rm`; then ``after``, while the
    mounts still exist (they go with the namespace)."""
    command = f'{mounts} && "$@"; status=$?; {after}; exit $status'
    return subprocess.run(["unshare", "-rm", "sh", "-c", command, "sh", sys.executable, "-m", "dimensionx.cli",
                           *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def mounts_allowed(tmp_path_factory):
    probe = tmp_path_factory.mktemp("probe")
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-rm", "mount", "-t", "tmpfs", "tmpfs", str(probe)], capture_output=True).returncode:
        pytest.skip("this machine lets no user mount a tmpfs in a private namespace (unshare -rm)")


@pytest.fixture(scope="module")
def run(clips, tmp_path_factory) -> Path:
    """A finished 2-step run with a checkpoint after each step."""
    out = tmp_path_factory.mktemp("runs") / "run"
    result = cli("train", *TINY_TRAIN, "--data", clips, "--output-dir", out, "--max-steps", 2, "--checkpoint-every", 1,
                 cwd=out.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def copy_of(run: Path, folder: Path) -> Path:
    shutil.copytree(run, folder / "run")
    return folder / "run"


def test_resume_from_a_truncated_checkpoint_file_names_it_and_the_earlier_checkpoint(run, clips, tmp_path):
    out = copy_of(run, tmp_path)
    with open(out / "checkpoints" / "step_000002" / "optimizer.bin", "r+b") as f:
        f.truncate(1000)
    before = files(tmp_path)
    result = cli("train", *TINY_TRAIN, "--data", clips, "--output-dir", "run", "--max-steps", 3, "--resume", cwd=tmp_path)
    assert_refused(result, "checkpoint run/checkpoints/step_000002 is damaged: optimizer.bin is 1000 bytes, "
                           f"{(run / 'checkpoints' / 'step_000002' / 'optimizer.bin').stat().st_size} when written; resume "
                           "from the one before (--resume run/checkpoints/step_000001) or start again (--overwrite)",
                   tmp_path, before)


def test_resume_from_a_checkpoint_with_a_changed_byte_is_refused(run, clips, tmp_path):
    out = copy_of(run, tmp_path)
    lora = out / "checkpoints" / "step_000002" / "lora.safetensors"
    data = bytearray(lora.read_bytes())
    data[-1] ^= 0xFF  # same size, one bit pattern changed in the last tensor
    lora.write_bytes(bytes(data))
    before = files(tmp_path)
    result = cli("train", *TINY_TRAIN, "--data", clips, "--output-dir", "run", "--max-steps", 3, "--resume", cwd=tmp_path)
    assert_refused(result, "step_000002 is damaged: lora.safetensors differs from the sha256 written with it", tmp_path,
                   before)


def test_resume_with_another_rank_says_which_rank_the_checkpoint_holds(run, clips, tmp_path):
    copy_of(run, tmp_path)
    before = files(tmp_path)
    result = cli("train", *TINY_TRAIN, "--data", clips, "--output-dir", "run", "--max-steps", 3, "--resume",
                 "--rank", 8, cwd=tmp_path)
    assert_refused(result, "checkpoint run/checkpoints/step_000002 holds a LoRA of rank 4, but rank is 8: pass --rank 4 "
                           "to continue it, or --overwrite to start a new run at rank 8", tmp_path, before)


def test_a_full_disk_while_checkpointing_leaves_no_partial_checkpoint(clips, tmp_path, mounts_allowed):
    (tmp_path / "disk").mkdir()
    result = in_mount_namespace("mount -t tmpfs -o size=100k tmpfs disk", "train", *TINY_TRAIN, "--data", clips,
                                "--output-dir", "disk/run", "--max-steps", 3, "--checkpoint-every", 1, cwd=tmp_path,
                                after="ls -A disk/run/checkpoints > listing.txt")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    error = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(error) == 1 and re.fullmatch(r"dimensionx train: error: cannot write checkpoint disk/run/checkpoints/"
                                            r"step_00000\d: no space left on the device; free some space or choose an "
                                            r"output folder on another disk, then continue with --resume latest", error[0]), error
    assert (tmp_path / "listing.txt").read_text().split() == ["step_000001"]  # the complete one, no .step_*.partial


def test_a_killed_runs_partial_checkpoint_is_removed_by_the_next_run(run, clips, tmp_path):
    out = copy_of(run, tmp_path)
    partial = out / "checkpoints" / ".step_000003.partial"
    partial.mkdir()
    (partial / "optimizer.bin").write_bytes(b"half")
    keep = out / "checkpoints" / ".step_notes.partial"  # not a name train makes: left alone
    keep.mkdir()
    result = cli("train", *TINY_TRAIN, "--data", clips, "--output-dir", "run", "--max-steps", 3, "--resume",
                 "--checkpoint-every", 1, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not partial.exists() and keep.is_dir()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [".step_notes.partial", "step_000002", "step_000003"]


def test_a_full_disk_while_the_video_is_written_is_one_line_and_leaves_nothing(tmp_path, photo, mounts_allowed):
    (tmp_path / "disk").mkdir()  # the photo fixture lies in tmp_path
    result = in_mount_namespace("mount -t tmpfs -o size=12k tmpfs disk && echo > disk/canary", "video", "photo.png",
                                "--motion", "none", "--model", "tiny", "--steps", 1, "--frames", 9, "--out",
                                "disk/clip.mp4", cwd=tmp_path, after="ls -A disk > listing.txt")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    error = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert error == ["dimensionx video: error: cannot write disk/clip.mp4: no space left on the device; free some space "
                     "or choose an output folder on another disk, then run the command again (its temporary files were "
                     "removed)"], result.stderr[-3000:]
    assert (tmp_path / "listing.txt").read_text().split() == ["canary"]  # no mp4, sidecar or temporary folder


def test_a_read_only_data_folder_with_pre_encode_is_refused_before_the_run_folder_is_made(clips, tmp_path,
                                                                                          mounts_allowed):
    (tmp_path / "data").mkdir()
    before = files(tmp_path)
    result = in_mount_namespace(f"mount --bind {clips} data && mount -o remount,bind,ro data", "train", *TINY_TRAIN,
                                "--data", "data", "--pre-encode", "--output-dir", "run", cwd=tmp_path)
    assert_refused(result, "cannot write data/.dimensionx-cache/CLIP.safetensors: ", tmp_path, before)
    assert "(Read-only file system); choose another cache_dir (in --config)" in result.stderr


# ---- runaway settings: refused before any work ------------------------------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--size", "100000x100000"], "--size 100000x100000: each side from 8 to 4096 px"),
    (["--size", "4096x4096", "--frames", "1000"], "--size 4096x4096 with --frames 1000: rendering a clip needs about "
                                                  "750.0 GiB, more than the"),
    (["--jitter", "nan"], "--jitter nan: use a number from 0 to 90.0 (the default is 5)"),
    (["--fps", "100000"], "--fps 100000: frames per second must be from 1 to 240 (default 8)"),
    (["--clips", "0"], "--clips 0: use a number from 1 to 1000 (the default is 8)"),
])
def test_make_dataset_refuses_runaway_sizes_before_reading_the_scene(scene, tmp_path, flags, message):
    before = files(tmp_path)
    result = cli("make-dataset", scene, "--out", "data", "--device", "cpu", *flags, cwd=tmp_path)
    assert_refused(result, message, tmp_path, before)


@pytest.mark.parametrize("flags, message", [
    (["--frames", "100001"], "--frames 100001: at most 161 (49 is the original setting, 145 the orbit's)"),
    (["--steps", "100000"], "--steps 100000: use 1 to 1000 (50 is the original setting)"),
    (["--fps", "-5"], "--fps -5: frames per second must be from 1 to 240"),
])
def test_video_refuses_runaway_flags_before_any_model_loads(tmp_path, photo, flags, message):
    before = files(tmp_path)
    result = cli("video", photo, "--motion", "none", "--model", "tiny", "--out", "clip.mp4", *flags, cwd=tmp_path)
    assert_refused(result, message, tmp_path, before)


# ---- a video and its sidecar belong together ---------------------------------------------------------------

FAST_VIDEO = ["--motion", "none", "--model", "tiny", "--steps", 1, "--frames", 9]


def test_a_sidecar_beside_another_runs_video_is_refused_and_a_killed_runs_temporaries_removed(tmp_path, photo, ended_pid):
    killed = tmp_path / f".clip.mp4.tmp-{ended_pid}-k1ll3d00"  # what atomic_files left when `video --out clip.mp4` was killed outright
    killed.mkdir()
    (killed / "clip.mp4").write_bytes(b"half an mp4")
    users = [tmp_path / ".clip.notes", tmp_path / f".clip.mp4.tmp-{os.getpid()}-abcd1234"]  # another name; a running process's
    for folder in users:
        folder.mkdir()
    (users[1] / "notes.txt").write_text("mine")
    first = cli("video", photo, *FAST_VIDEO, "--out", "clip.mp4", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert not killed.exists() and all(folder.is_dir() for folder in users)
    assert json.loads((tmp_path / "clip.json").read_text())["video"]["sha256"] == \
        hashlib.sha256((tmp_path / "clip.mp4").read_bytes()).hexdigest()

    second = cli("video", photo, *FAST_VIDEO, "--seed", 7, "--out", "other.mp4", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    os.replace(tmp_path / "other.mp4", tmp_path / "clip.mp4")  # kill -9 between the mp4's and the sidecar's rename
    before = files(tmp_path)
    result = cli("video", photo, "--config", "clip.json", "--out", "again.mp4", cwd=tmp_path)
    assert_refused(result, "clip.json does not describe clip.mp4 beside it: the mp4's sha256 is not the one the sidecar "
                           "records, so they come from different runs", tmp_path, before)


# ---- make-dataset: Ctrl-C keeps the finished motions --------------------------------------------------------

def test_make_dataset_interrupted_keeps_its_finished_motions_and_the_same_command_finishes(scene, tmp_path):
    command = ["make-dataset", scene, "--out", "data", "--device", "cpu", "--motions", "orbit_left,pan_right,z_zoom_in",
               "--clips", 1, "--frames", 5, "--size", "64x48", "--jitter", 0]
    hook = {"PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "interrupt_hook"), os.environ.get("PYTHONPATH", "")]),
            "DIMENSIONX_TEST_SIGNAL": "SIGINT", "DIMENSIONX_TEST_SIGNAL_AT": "dimensionx.train.make_dataset:contact_sheet",
            "DIMENSIONX_TEST_SIGNAL_CALL": "2"}  # while the second motion's contact sheet is made
    interrupted = cli(*command, cwd=tmp_path, env=hook)
    assert interrupted.returncode == 130 and "Traceback" not in interrupted.stderr, interrupted.stderr[-2000:]
    assert interrupted.stderr.splitlines()[-1] == ("dimensionx make-dataset: interrupted by SIGINT; the 1 finished "
                                                   "motion(s) are kept in data (orbit_left): run the same command to "
                                                   "make the others")
    data = tmp_path / "data"
    kept = {p: p.read_bytes() for p in (data / "orbit_left").rglob("*") if p.is_file()}
    assert sorted(p.name for p in data.iterdir() if not p.name.startswith(".")) == ["dataset.json", "orbit_left"]

    other = cli(*command[:-1], 3, cwd=tmp_path)  # another jitter: not the same dataset
    assert other.returncode == 2 and "holds an unfinished dataset made with other settings (jitter)" in other.stderr

    finished = cli(*command, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert {p: p.read_bytes() for p in (data / "orbit_left").rglob("*") if p.is_file()} == kept  # not made again
    rows = (data / "metadata.csv").read_text().splitlines()
    assert rows[0] == "video,caption" and [row.split(",")[0] for row in rows[1:]] == [
        f"{m}/videos/{m}_000.mp4" for m in ("orbit_left", "pan_right", "z_zoom_in")]
    assert not [p for p in data.iterdir() if p.name.startswith(".") and p.name != ".dimensionx-output.json"]
    again = cli(*command, cwd=tmp_path)
    assert again.returncode == 2 and "already exists: pass --overwrite" in again.stderr


def test_make_dataset_refuses_a_background_that_is_no_colour(scene, tmp_path):
    # a probe beyond issue 31: "nan,0,0" was accepted and rendered NaN behind the splats
    (tmp_path / "preset.yaml").write_text('background: "nan,0,0"\n')
    before = files(tmp_path)
    result = cli("make-dataset", scene, "--config", "preset.yaml", "--out", "data", "--device", "cpu", cwd=tmp_path)
    assert_refused(result, "background 'nan,0,0': write R,G,B in [0, 1], e.g. 0,0,0", tmp_path, before)


# ---- train interrupted: nothing half-made, or the checkpoints named -------------------------------------------

def signal_at(function: str, call: int = 1) -> dict:
    return {"PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "interrupt_hook"), os.environ.get("PYTHONPATH", "")]),
            "DIMENSIONX_TEST_SIGNAL": "SIGINT", "DIMENSIONX_TEST_SIGNAL_AT": function,
            "DIMENSIONX_TEST_SIGNAL_CALL": str(call)}


def test_train_interrupted_before_its_first_checkpoint_leaves_no_run_folder(clips, tmp_path):
    before = files(tmp_path)
    result = cli("train", *TINY_TRAIN, "--data", clips, "--output-dir", "run", cwd=tmp_path,
                 env=signal_at("dimensionx.train.trainer:load_components"))  # after the run folder was made
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.splitlines()[-1] == "dimensionx train: interrupted by SIGINT; no partial output was written"
    assert files(tmp_path) == before


def test_train_interrupted_after_a_checkpoint_says_it_is_kept(clips, tmp_path):
    result = cli("train", *TINY_TRAIN, "--data", clips, "--output-dir", "run", "--checkpoint-every", 1, cwd=tmp_path,
                 env=signal_at("dimensionx.train.trainer:append_log", 2))  # in step 2, after step 1's checkpoint
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.splitlines()[-1] == ("dimensionx train: interrupted by SIGINT; the checkpoints up to "
                                              "run/checkpoints/step_000001 are kept: continue with --resume latest")
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_000001"]


def test_recon_refuses_a_sidecar_of_another_run_beside_its_video(tmp_path):
    """recon reads the camera motion from the video's sidecar: one beside another run's mp4 would be the wrong prior."""
    import numpy as np

    from dimensionx.videofiles import write_video

    frames = np.random.default_rng(0).integers(0, 255, (4, 64, 96, 3), dtype=np.uint8)
    write_video(frames, tmp_path / "clip.mp4", 8)
    sidecar = {"config": {"motion": "orbit_left"}, "video": {"sha256": "0" * 64}}  # another mp4's checksum
    (tmp_path / "clip.json").write_text(json.dumps(sidecar))
    before = files(tmp_path)
    result = cli("recon", "clip.mp4", "--out", "scene", cwd=tmp_path)
    assert_refused(result, "clip.json does not describe clip.mp4 beside it", tmp_path, before)
