"""``--overwrite`` replaces only what dimensionx wrote, and only once the new output is complete."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dimensionx.errors import DimensionXError
from dimensionx.outputs import atomic_dir, OUTPUT_MARKER


def run_cli(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dimensionx.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A working folder holding a user's own files and an input clip."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.tex").write_text("years of work")
    (work / "data").mkdir()
    (work / "data" / "table.csv").write_text("a,b\n1,2\n")
    (work / "clip.mp4").write_bytes(b"not really a video")
    return work


@pytest.mark.parametrize("out", [".", "..", "data"])
def test_recon_overwrite_refuses_working_folder_parents_and_foreign_folders(workdir, out):
    before = snapshot(workdir.parent)
    result = run_cli(["recon", "clip.mp4", "--out", out, "--overwrite"], cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert "--overwrite refuses to replace" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(workdir.parent) == before


def test_recon_overwrite_refuses_home_folder(workdir, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("alias ll='ls -l'")
    result = run_cli(["recon", str(workdir / "clip.mp4"), "--out", str(home), "--overwrite"], cwd=workdir,
                     env={"HOME": str(home)})
    assert result.returncode == 2
    assert "home" in result.stderr
    assert (home / ".bashrc").read_text() == "alias ll='ls -l'"


def test_video_out_naming_a_folder_is_refused_before_any_model_loads(workdir, photo):
    result = run_cli(["video", str(photo), "--model", "tiny", "--motion", "none", "--out", "data", "--overwrite"], cwd=workdir)
    assert result.returncode == 2
    assert "is a folder" in result.stderr
    result = run_cli(["video", str(photo), "--model", "tiny", "--motion", "none", "--out", "myvideo"], cwd=workdir)
    assert result.returncode == 2
    assert "*.mp4" in result.stderr
    assert sorted(p.name for p in workdir.iterdir()) == ["clip.mp4", "data", "thesis.tex"]


def test_atomic_dir_replaces_its_own_output_only_after_the_new_one_is_complete(tmp_path):
    out = tmp_path / "scene"
    with atomic_dir(out) as tmp:
        (tmp / "v1.txt").write_text("first")
    assert (out / OUTPUT_MARKER).is_file()
    with pytest.raises(RuntimeError):
        with atomic_dir(out, overwrite=True) as tmp:
            (tmp / "v2.txt").write_text("half")
            raise RuntimeError("crash in the middle of the run")
    assert (out / "v1.txt").read_text() == "first"  # the old output survives a failed run
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "v2.txt").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "v2.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]  # no temp or set-aside folder left


def test_atomic_dir_refuses_a_folder_it_did_not_write(tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"jpeg")
    with pytest.raises(DimensionXError, match="did not write"):
        with atomic_dir(foreign, overwrite=True):
            pass
    assert (foreign / "holiday.jpg").read_bytes() == b"jpeg"
