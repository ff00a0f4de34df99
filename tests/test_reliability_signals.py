"""Ctrl-C and kill during every phase of a long command, and a --help that imports no torch.

The signal is sent by the process to itself at a chosen point (tests/interrupt_hook/sitecustomize.py),
so "during the import of torch" or "during SfM" is exact, not a guess of timing.
"""

from __future__ import annotations

import json
import os
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
    return subprocess.run([sys.executable, "-m", "dimensionx.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


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
    ("SIGTERM", "dimensionx.media:write_video"),  # while the mp4 is encoded
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
