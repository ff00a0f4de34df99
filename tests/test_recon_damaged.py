"""`dimensionx recon` on damaged inputs and a full disk: one line naming the file or folder, exit 2, nothing
written; a video cut short is used as far as it decodes and reported; a killed run's leftovers are removed."""

from __future__ import annotations

import errno
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from dimensionx.errors import DimensionXError
from dimensionx.recon.config import ReconConfig
from dimensionx.recon.pipeline import reconstruct
from dimensionx.videofiles import write_video
from recon_synthetic import arc_cameras, intrinsics, render_views, splat_scene, write_orbit_video

FAST = ["--max-size", "160", "--iterations", "5", "--orbit-frames", "0", "--no-progress", "--device", "cpu"]


def recon(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dimensionx.cli", "recon", *map(str, args), *FAST],
                          capture_output=True, text=True, timeout=300)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one line a refusal ends with (INFO lines come before it); exit status 2, no traceback."""
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("dimensionx recon: error: ")
    return last


def in_process(video: Path, out: Path) -> None:
    """``reconstruct`` with the CLI's settings, where a test replaces a function inside it."""
    reconstruct(ReconConfig(video=str(video), out=str(out), max_size=160, iterations=5, orbit_frames=0,
                            progress=False, device="cpu"))


def files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def arc_frames() -> np.ndarray:
    """[8, 120, 160, 3] uint8 views of the synthetic scene along a 40 degree arc."""
    return render_views(splat_scene(), arc_cameras(8, 40.0), intrinsics(160, 120), 160, 120)


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk (8-bit RGB) of ``width`` x ``height`` px, and no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


@pytest.mark.parametrize("first", [b"\x89PNG\r\n\x1a\n truncated", png_header(17000, 17000)],
                         ids=["corrupt", "289-mpx"])
def test_a_damaged_first_frame_of_a_folder_is_named(arc_frames, tmp_path, first):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(arc_frames):
        Image.fromarray(frame).save(frames / f"{i:03d}.png")
    (frames / "000.png").write_bytes(first)
    before = files(tmp_path)
    err = error_line(recon(frames, "--out", tmp_path / "scene"))
    assert f"frame {frames / '000.png'} cannot be read as an image" in err and "replace or remove it" in err
    assert files(tmp_path) == before


def cut_short(video: Path, out: Path, fraction: float) -> None:
    """Remuxes ``video`` with its index first (as a web-ready mp4) and keeps the first ``fraction`` of its bytes."""
    whole = out.with_name("whole.mp4")
    with av.open(str(video)) as source, av.open(str(whole), "w", options={"movflags": "faststart"}) as target:
        stream = target.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                target.mux(packet)
    data = whole.read_bytes()
    whole.unlink()
    out.write_bytes(data[: int(len(data) * fraction)])


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "arc.mp4"
    write_orbit_video(path, n=49, degrees=60.0, width=160, height=120)
    return path


def test_a_video_cut_short_is_used_as_far_as_it_decodes_and_reported(clip, tmp_path):
    video = tmp_path / "clip.mp4"
    cut_short(clip, video, 0.4)
    result = recon(video, "--out", tmp_path / "scene", "--frames", "8")
    assert result.returncode == 0, result.stderr[-3000:]
    damage = re.search(r"clip\.mp4 is damaged: (\d+) of ~49 frames decode; reconstructing from those", result.stderr)
    assert damage, result.stderr
    metrics = json.loads((tmp_path / "scene" / "metrics.json").read_text())
    assert 8 <= metrics["frames_total"] == int(damage.group(1)) < 49


def test_a_video_cut_to_almost_nothing_is_refused(clip, tmp_path):
    video = tmp_path / "clip.mp4"
    cut_short(clip, video, 0.03)
    before = files(tmp_path)
    err = error_line(recon(video, "--out", tmp_path / "scene"))
    assert re.search(r"clip\.mp4 is damaged: [0-2] of ~49 frames decode, too few to reconstruct", err), err
    assert files(tmp_path) == before


def test_a_disk_without_room_for_sfm_is_refused_before_pycolmap_writes(arc_frames, tmp_path, monkeypatch):
    """pycolmap aborts the process on a full disk (SQLite in a C++ thread): the room is checked first."""
    from dimensionx.recon import diskspace

    video = tmp_path / "arc.mp4"
    write_video(arc_frames, video, fps=8)
    before = files(tmp_path)
    monkeypatch.setattr(diskspace.shutil, "disk_usage", lambda _: type("Usage", (), {"free": 3_000_000})())
    with pytest.raises(DimensionXError) as error:
        in_process(video, tmp_path / "scene")
    err = str(error.value)
    assert f"the disk of {tmp_path} is full for the scene {tmp_path / 'scene'}" in err
    assert "3 MB free, structure from motion needs up to" in err and "pass --out on another disk" in err
    assert files(tmp_path) == before


def test_a_disk_that_fills_while_the_scene_is_written_leaves_nothing(arc_frames, tmp_path, monkeypatch):
    from dimensionx.recon import pipeline

    video = tmp_path / "arc.mp4"
    write_video(arc_frames, video, fps=8)
    before = files(tmp_path)

    def full(splats, path):
        Path(path).write_bytes(b"ply\n")  # a part of the file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pipeline, "write_ply", full)
    with pytest.raises(DimensionXError) as error:
        in_process(video, tmp_path / "scene")
    err = str(error.value)
    assert "is full for the scene" in err and "No space left on device" in err
    assert files(tmp_path) == before


def test_the_temporary_folders_of_a_killed_run_are_removed_by_the_next(arc_frames, tmp_path, ended_pid):
    video = tmp_path / "arc.mp4"
    write_video(arc_frames, video, fps=8)
    killed = tmp_path / f".scene.tmp-{ended_pid}-k1wv7f66"  # atomic_dir's temporary folder, as kill -9 left it
    (killed / "images").mkdir(parents=True)
    (killed / "images" / "frame_00000.png").write_bytes(b"half")
    others = [tmp_path / ".scene.old-123-456", tmp_path / ".other.abc", tmp_path / ".scene.video-x1y2",  # not ours
              tmp_path / f".scene.tmp-{os.getpid()}-a1b2c3d4", tmp_path / "scene.txt"]  # a running process's, a file
    for other in others[:4]:
        other.mkdir()
    others[4].write_text("mine")
    result = recon(video, "--out", tmp_path / "scene")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not killed.exists() and all(other.exists() for other in others)
    assert not [p for p in (tmp_path / "scene").iterdir() if p.name.startswith(".sfm")]  # SfM's work folder went
