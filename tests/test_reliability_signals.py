"""Ctrl-C and kill during every phase of a long command, and a --help that imports no torch.

The signal is sent by the process to itself at a chosen point (tests/interrupt_hook/sitecustomize.py),
so "during the import of torch" or "during SfM" is exact, not a guess of timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recon_synthetic import transforms_json, write_orbit_video

HOOK = Path(__file__).parent / "interrupt_hook"
FAST_VIDEO = ["--model", "tiny", "--steps", "2", "--frames", "9", "--motion", "orbit_left"]
FAST_RECON = ["--max-size", "160", "--iterations", "30", "--orbit-frames", "6", "--no-progress"]


def interrupted_run(args: list[str], cwd: Path, signal_name: str, at: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HOOK), os.environ.get("PYTHONPATH", "")]),
           "DIMENSIONX_TEST_SIGNAL": signal_name, "DIMENSIONX_TEST_SIGNAL_AT": at}
    # Ctrl-C as at a terminal: a shell without job control starts background jobs (`pytest &`, nohup) with
    # SIGINT ignored, which their children inherit, and Python then installs no KeyboardInterrupt handler
    return subprocess.run([sys.executable, "-m", "dimensionx.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def assert_interrupted(result: subprocess.CompletedProcess, command: str, signal_name: str, folder: Path,
                       before: set[str]) -> None:
    code = {"SIGINT": 130, "SIGTERM": 143}[signal_name]
    assert result.returncode == code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "***" not in result.stderr  # no Python or native stack dump
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"dimensionx {command}: interrupted by {signal_name}; no partial output was written"
    assert {str(p.relative_to(folder)) for p in folder.rglob("*")} == before  # no output, no temp folder


@pytest.mark.parametrize("signal_name, at", [
    ("SIGINT", "torch"),  # while torch is being imported
    ("SIGTERM", "diffusers.models.model_loading_utils:load_state_dict"),  # while the model loads
    ("SIGINT", "diffusers.schedulers.scheduling_dpm_cogvideox:CogVideoXDPMScheduler.step"),  # denoising
    ("SIGTERM", "diffusers.schedulers.scheduling_dpm_cogvideox:CogVideoXDPMScheduler.step"),
    ("SIGTERM", "dimensionx.videofiles:write_video"),  # while the mp4 is encoded
])
def test_video_interrupted_anywhere_leaves_nothing(photo, tmp_path, signal_name, at):
    before = {photo.name}
    result = interrupted_run(["video", str(photo), *FAST_VIDEO, "--out", "clip.mp4"], tmp_path, signal_name, at)
    assert_interrupted(result, "video", signal_name, tmp_path, before)


@pytest.fixture(scope="module")
def arc(tmp_path_factory) -> Path:
    """A 16-frame orbit video and its cameras (transforms.json)."""
    folder = tmp_path_factory.mktemp("arc")
    viewmats, K = write_orbit_video(folder / "arc.mp4")
    (folder / "transforms.json").write_text(json.dumps(transforms_json(viewmats, K, 256, 192)))
    return folder


@pytest.mark.parametrize("signal_name, at, cameras", [
    ("SIGTERM", "dimensionx.recon.sfm:match_pairs", False),  # SfM: pycolmap's own handler must not dump a stack
    ("SIGINT", "dimensionx.recon.sfm:match_pairs", False),
    ("SIGTERM", "dimensionx.recon.train:Runner.train", True),  # training the splats
])
def test_recon_interrupted_anywhere_leaves_nothing(arc, signal_name, at, cameras):
    before = {"arc.mp4", "transforms.json"}
    flags = ["--cameras", "transforms.json"] if cameras else []
    result = interrupted_run(["recon", "arc.mp4", "--out", "scene", *flags, *FAST_RECON], arc, signal_name, at)
    assert_interrupted(result, "recon", signal_name, arc, before)


def test_help_imports_no_torch_or_diffusers():
    """`dimensionx --help` and every command's --help print without importing the heavy stack."""
    script = (
        "import sys\n"
        "from dimensionx.cli import build_parser, main\n"
        "commands = [None] + sorted(build_parser()._subparsers._group_actions[0].choices)\n"
        "for command in commands:\n"
        "    try:\n"
        "        main(['--help'] if command is None else [command, '--help'])\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, command\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers', 'transformers', 'pycolmap'))\n"
        "print('COMMANDS', len(commands), 'HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("COMMANDS") and summary.endswith("HEAVY []"), summary
    assert int(summary.split()[1]) >= 5  # dimensionx, video, motions, recon, scene3d (and every later command)


@pytest.mark.slow
def test_scene4d_interrupted_in_the_grid_keeps_its_work_and_resumes(tmp_path):
    """A 4D scene killed in the grid's refinement keeps the finished stages and the grid's rows (not a
    half-written grid/), says how to go on, and the same command then finishes without making the rows again."""
    import numpy as np
    from PIL import Image

    from recon_synthetic import arc_cameras, intrinsics

    y, x = np.mgrid[0:64, 0:96]
    Image.fromarray(np.stack([x * 2, y * 3, ((x - 48) ** 2 + (y - 32) ** 2 < 300) * 255], -1).astype(np.uint8)).save(tmp_path / "photo.png")
    (tmp_path / "transforms.json").write_text(json.dumps(transforms_json(arc_cameras(9, 40.0), intrinsics(96, 64), 96, 64)))
    command = ["scene4d", "photo.png", "--config", str(Path(__file__).parents[1] / "configs" / "fourd_tiny.yaml"),
               "--cameras", "transforms.json", "--out", "scene"]
    result = interrupted_run(command, tmp_path, "SIGTERM", "dimensionx.fourd.grid:sdedit_videos")  # the first refinement batch
    assert result.returncode == 143, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "dimensionx scene4d: interrupted by SIGTERM; the stages finished so far and the grid's refinement passes are "
        "kept in scene: run the same command to resume")
    scene = tmp_path / "scene"
    assert sorted(p.name for p in scene.iterdir()) == [".dimensionx-output.json", ".grid-partial", "scene4d.json", "temporal"]
    assert json.loads((scene / ".grid-partial" / "progress.json").read_text())["passes"] == 0

    resumed = subprocess.run([sys.executable, "-m", "dimensionx.cli", *command], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "grid: resuming after 0 of 2 refinement passes" in resumed.stderr
    assert (scene / "metrics.json").is_file() and not (scene / ".grid-partial").exists()
    assert len(list((scene / "grid").glob("time_*.mp4"))) == 9
