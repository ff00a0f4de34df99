"""``dimensionx video --batch FILE --gpus N``: N torchrun processes (gloo on the CPU) share the lines, line i of
the file's video lines going to rank i % N; each makes whole videos, the files the one-process batch writes."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from PIL import Image

from dimensionx.cli import main
from dimensionx.errors import DimensionXError
from dimensionx.video.inputs import check_gpus

FAST = ["--model", "tiny", "--steps", "1", "--frames", "5", "--device", "cpu"]
VIDEO_FILES = ("mp4", "json", "transforms.json")  # what a line writes: the video, its sidecar, the tiny model's cameras


@pytest.fixture
def lines(photo, tmp_path):
    """Four video lines (a comment between them): the second names a missing photo."""
    Image.open(photo).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(tmp_path / "flip.png")
    batch = tmp_path / "lines.txt"
    batch.write_text("photo.png@@a barn@@orbit_left\nmissing.png@@nothing\n# made by rank 0 of 2\n"
                     "flip.png@@upside down@@time\nphoto.png@@the barn again@@y_up\n")
    return batch


def outputs(folder):
    """{file name: bytes} of every file a line wrote, the sidecars without their timings (seconds differ run to run)."""
    files = {}
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        if path.suffix == ".json" and not path.name.endswith(".transforms.json"):
            sidecar = json.loads(data)
            del sidecar["seconds"]
            sidecar["config"]["out"] = path.with_suffix(".mp4").name
            data = json.dumps(sidecar, sort_keys=True).encode()
        files[path.name] = data
    return files


@pytest.mark.slow
def test_two_ranks_write_the_one_process_batch_byte_for_byte(lines, tmp_path, caplog):
    assert main(["video", "--batch", str(lines), *FAST, "--out", str(tmp_path / "one")]) == 1  # line 2 fails
    assert "batch: 3 of 4 videos written" in caplog.text
    two = subprocess.run([sys.executable, "-m", "dimensionx.cli", "video", "--batch", str(lines), *FAST, "--gpus", "2",
                          "--out", str(tmp_path / "two")], capture_output=True, text=True)
    assert two.returncode == 1, two.stderr[-3000:]  # as the one-process batch: the bad line fails the run
    expected = {f"{stem}.{kind}" for stem in ("0001_photo_orbit_left", "0004_flip_time", "0005_photo_y_up") for kind in VIDEO_FILES}
    assert set(outputs(tmp_path / "one")) == expected
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one")  # mp4s byte for byte, sidecars to the timings
    # the bad line is the 2nd video line, so rank 1's (i % 2 == 1): named once, with its rank, in one line each
    assert re.findall(r"batch line 2 skipped \(rank (\d)\): input image missing.png does not exist", two.stderr) == ["1"]
    assert re.findall(r"^batch: .*$", two.stderr, re.M) == ["batch: 3 of 4 videos written to "
                                                           f"{tmp_path / 'two'} by 2 ranks; failed lines: 2 (rank 1)"]
    assert "Traceback" not in two.stderr and "ChildFailedError" not in two.stderr
    sidecar = json.loads((tmp_path / "two" / "0004_flip_time.json").read_text())
    assert (sidecar["processes"], sidecar["config"]["gpus"]) == (1, 1)  # one process made it: `--config` it to remake it

    # Resume: what the ranks wrote is kept by a later run (one process here), which makes only the missing video.
    for kind in VIDEO_FILES:
        (tmp_path / "two" / f"0005_photo_y_up.{kind}").unlink()
    stamp = (tmp_path / "two" / "0001_photo_orbit_left.mp4").stat().st_mtime_ns
    caplog.clear()
    assert main(["video", "--batch", str(lines), *FAST, "--out", str(tmp_path / "two")]) == 1
    assert f"batch: 3 of 4 videos written to {tmp_path / 'two'} (2 kept from an earlier run); failed lines: 2" in caplog.text
    assert (tmp_path / "two" / "0001_photo_orbit_left.mp4").stat().st_mtime_ns == stamp
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one")


def test_resume_remakes_a_video_made_with_other_settings_only_with_overwrite(photo, tmp_path, caplog, monkeypatch):
    """A kept video must be the one this line asks for: another seed's file is refused, as one video's run refuses it."""
    batch = tmp_path / "lines.txt"
    batch.write_text("photo.png@@a barn@@orbit_left\n")
    out = tmp_path / "videos"
    assert main(["video", "--batch", str(batch), *FAST, "--out", str(out)]) == 0
    first = (out / "0001_photo_orbit_left.mp4").read_bytes()
    caplog.clear()
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")  # the same folder named relative to the working folder: the same video
    assert main(["video", "--batch", str(batch), *FAST, "--out", "../videos"]) == 0
    assert "batch line 1: kept ../videos/0001_photo_orbit_left.mp4, made before with these settings" in caplog.text
    assert (out / "0001_photo_orbit_left.mp4").read_bytes() == first
    assert main(["video", "--batch", str(batch), *FAST, "--seed", "7", "--out", str(out)]) == 1
    assert "0001_photo_orbit_left.mp4 already exists: pass --overwrite" in caplog.text
    assert main(["video", "--batch", str(batch), *FAST, "--seed", "7", "--overwrite", "--out", str(out)]) == 0
    assert (out / "0001_photo_orbit_left.mp4").read_bytes() != first
    sidecar = json.loads((out / "0001_photo_orbit_left.json").read_text())
    assert sidecar["config"]["seed"] == 7


def test_a_damaged_video_is_not_kept(photo, tmp_path, caplog):
    """An mp4 that is not the one its sidecar records (a run killed between the two renames) is made again."""
    batch = tmp_path / "lines.txt"
    batch.write_text("photo.png@@a barn@@orbit_left\n")
    out = tmp_path / "videos"
    assert main(["video", "--batch", str(batch), *FAST, "--out", str(out)]) == 0
    video = out / "0001_photo_orbit_left.mp4"
    whole = video.read_bytes()
    video.write_bytes(whole[: len(whole) // 2])
    assert main(["video", "--batch", str(batch), *FAST, "--out", str(out)]) == 1  # not kept: refused, as any existing file
    assert f"batch line 1 skipped: {video} already exists: pass --overwrite" in caplog.text and "kept" not in caplog.text
    assert main(["video", "--batch", str(batch), *FAST, "--overwrite", "--out", str(out)]) == 0
    assert video.read_bytes() == whole


def test_gpus_rule_with_and_without_batch(lines, capsys):
    """One home for the rule: a video's CFG-parallel takes 1 or 2 processes; a batch's lines any N >= 1."""
    assert main(["video", "--batch", str(lines), *FAST, "--gpus", "0"]) == 2
    assert "error: --gpus 0: with --batch, N processes (one GPU each) share the lines: use 1 or more" in capsys.readouterr().err
    check_gpus(4, batch=True)
    with pytest.raises(DimensionXError, match=r"--gpus 0: with --batch, N processes \(one GPU each\) share the lines"):
        check_gpus(0, batch=True)
    with pytest.raises(DimensionXError, match="CFG-parallel splits the two guidance branches, so use --gpus 2"):
        check_gpus(4)


def _rank(rank: int, batch: str, port: int, results) -> None:
    """One of two torchrun-like processes running the batch; line 2 (rank 1's first) crashes, as an out-of-memory would."""
    import os

    from dimensionx.video import batch as batch_module
    from dimensionx.video.config import VideoConfig

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    made = []

    def make(self, number, text):
        if number == 2:
            raise RuntimeError("CUDA out of memory.\nTried to allocate 2.00 GiB")
        made.append(number)
        return batch_module.BatchResult(number, None, rank=self.rank)

    batch_module._LineMaker.make = make
    try:
        batch_module.generate_batch(VideoConfig(batch=batch, device="cpu", model="tiny"))
        results[rank] = ("returned", made)
    except DimensionXError as exc:
        results[rank] = (str(exc), made)


def test_a_crash_on_one_rank_stops_every_rank_with_one_line(tmp_path):
    import socket

    import torch.multiprocessing as mp

    batch = tmp_path / "lines.txt"
    batch.write_text("".join(f"photo.png@@line {n}@@orbit_left\n" for n in range(1, 7)))
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_rank, args=(str(batch), port, results), nprocs=2, join=True)
    message, made = results[0]
    assert message == ("batch line 2 failed on rank 1 of 2: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB; every "
                       "rank stopped, the finished videos are kept: fix that and run the same command again to make the rest")
    assert made == [1]  # rank 0 stopped after the round of the crash: lines 3 and 5 were never started
    assert results[1] == ("returned", [])  # rank 1 says nothing: the run's one line is rank 0's


def test_orbit_batch_takes_the_batch_rule_of_gpus(lines, monkeypatch, capsys):
    """``orbit --batch --gpus 3`` is launched as 3 processes sharing the lines; without --batch, 3 is refused."""
    from dimensionx.video import parallel

    launched = []
    monkeypatch.setattr(parallel, "torchrun", lambda argv, processes: launched.append(processes) or 0)
    orbit = ["orbit", "--model", "tiny-orbit", "--device", "cpu", "--gpus", "3"]
    assert main([*orbit, "--batch", str(lines)]) == 0 and launched == [3]
    assert main([*orbit, str(lines.parent / "photo.png"), "--out", str(lines.parent / "o.mp4")]) == 2 and launched == [3]
    assert "CFG-parallel splits the two guidance branches, so use --gpus 2" in capsys.readouterr().err
