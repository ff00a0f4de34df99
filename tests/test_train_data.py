"""Training data: frame sampling as the original, centre crop, bad rows reported and skipped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from dimensionx.cli import main
from dimensionx.train.data import find_clips, frame_indices, load_clip
from dimensionx.videofiles import write_video

from train_synthetic import write_clips, write_cut_short

ROOT = Path(__file__).resolve().parents[1]


def test_long_clip_is_sampled_at_a_uniform_stride_skipping_the_ends():
    # 100 frames, 3 skipped at each end: 94 usable, stride 94 // 9 = 10
    assert frame_indices(100, 9, 3).tolist() == [3, 13, 23, 33, 43, 53, 63, 73, 83]


def test_short_clip_is_cut_to_4k_plus_1_and_padded_with_its_last_frame():
    # 12 frames, 3 skipped at each end: 6 usable -> 5 kept (4k + 1), then the 5th repeated
    assert frame_indices(12, 9, 3).tolist() == [3, 4, 5, 6, 7, 7, 7, 7, 7]
    assert frame_indices(15, 9, 3).tolist() == [3, 4, 5, 6, 7, 8, 9, 10, 11]  # 9 usable: exactly enough


def test_frames_are_centre_cropped_to_the_model_aspect(tmp_path):
    # 128 x 64 px (2:1) into 96 x 64 (3:2): the central 96 columns (16..111) are kept, unscaled
    x = np.arange(128)
    frame = np.zeros((64, 128, 3), np.uint8)
    frame[..., 0] = np.where((x >= 16) & (x < 112), 200, 0)  # red inside the crop window
    frame[..., 2] = np.where((x < 16) | (x >= 112), 200, 0)  # blue outside it
    write_video(np.repeat(frame[None], 12, 0), tmp_path / "v.mp4", 8)
    (tmp_path / "metadata.csv").write_text("video,caption\nv.mp4,bars\n")
    (clip,) = find_clips(tmp_path, skip=0).clips
    video = load_clip(clip, 5, 0, 64, 96)  # [5, 3, 64, 96] in [-1, 1]
    assert video.shape == (5, 3, 64, 96)
    red, blue = (video[:, 0, :, 4:-4] + 1) * 127.5, (video[:, 2, :, 4:-4] + 1) * 127.5
    assert float(red.mean()) > 180 and float(blue.mean()) < 20


def test_folder_form_reads_videos_and_captions(tmp_path):
    write_clips(tmp_path / "csv")
    root = tmp_path / "folder"
    (root / "videos").mkdir(parents=True)
    (root / "captions").mkdir()
    for k in range(2):
        (root / "videos" / f"c{k}.mp4").write_bytes((tmp_path / "csv" / "videos" / f"clip{k}.mp4").read_bytes())
    (root / "captions" / "c0.txt").write_text("a disc\n")
    (root / "captions" / "c1.txt").write_text("   \n")  # empty caption: skipped
    found = find_clips(root, skip=3)
    assert [c.video.name for c in found.clips] == ["c0.mp4"] and found.clips[0].caption == "a disc"
    assert found.clips[0].frames == 13
    assert [(b.row, b.reason) for b in found.bad] == [("c1", "empty caption")]


@pytest.fixture
def messy(tmp_path) -> Path:
    """Two good clips and five bad rows: missing file, not a video, empty caption, too short, cut short."""
    root = write_clips(tmp_path / "data", frames=25)
    write_cut_short(root / "videos" / "clip1.mp4", root / "videos" / "cut.mp4")
    (root / "videos" / "broken.mp4").write_text("not a video")
    write_video(np.zeros((6, 64, 96, 3), np.uint8), root / "videos" / "short.mp4", 8)
    rows = (root / "metadata.csv").read_text()
    rows += "videos/missing.mp4,a caption\nvideos/broken.mp4,a caption\nvideos/clip0.mp4,\nvideos/short.mp4,a caption\nvideos/cut.mp4,a caption\n"
    (root / "metadata.csv").write_text(rows)
    return root


def test_bad_rows_are_reported_with_reasons(messy):
    found = find_clips(messy, skip=3)
    assert [c.video.name for c in found.clips] == ["clip0.mp4", "clip1.mp4"]
    reasons = {b.row: b.reason for b in found.bad}
    assert list(reasons) == ["line 4", "line 5", "line 6", "line 7", "line 8"]
    assert reasons["line 4"].startswith("file not found")
    assert "broken.mp4 could not be read as a video" in reasons["line 5"]
    assert reasons["line 6"] == "empty caption"
    assert reasons["line 7"].startswith("too short: 6 frames")
    cut = re.search(r"cut\.mp4 is cut short: its header declares 25 frames but only frames 0-(\d+) \((\d+)\) decode; "
                    "replace it or re-encode it from its source$", reasons["line 8"])
    assert cut and 0 < int(cut[2]) == int(cut[1]) + 1 < 25, reasons["line 8"]


def test_training_on_a_messy_dataset_uses_the_good_rows_and_writes_samples(messy, tmp_path, caplog):
    out = tmp_path / "run"
    args = ["train", "--config", str(ROOT / "configs" / "train" / "tiny.yaml"), "--data", str(messy),
            "--output-dir", str(out), "--max-steps", "2", "--sample-every", "2", "--sample-steps", "2"]
    assert main(args) == 0
    report = json.loads((out / "data_report.json").read_text())
    assert report["usable"] == 2 and report["skipped"] == 5
    assert [row["video"] for row in report["bad_rows"]] == ["videos/missing.mp4", "videos/broken.mp4", "videos/clip0.mp4",
                                                            "videos/short.mp4", "videos/cut.mp4"]
    assert "cut short" in report["bad_rows"][-1]["reason"]
    assert "5 of 7 rows skipped; training on 2 clips" in caplog.text
    assert (out / "pytorch_lora_weights.safetensors").is_file()
    from dimensionx.videofiles import read_frames

    sample, _ = read_frames(out / "samples" / "step_000002.mp4")  # a video from the first good clip's first frame
    assert sample.shape == (9, 64, 96, 3)


def test_no_usable_row_fails_before_any_model_loads(tmp_path, monkeypatch, capsys):
    import dimensionx.train.trainer as trainer

    monkeypatch.setattr(trainer, "resolve_model", lambda *_: pytest.fail("the model must not be resolved"))
    (tmp_path / "metadata.csv").write_text("video,caption\nmissing.mp4,a caption\n")
    assert main(["train", "--model", "tiny", "--data", str(tmp_path), "--output-dir", str(tmp_path / "run")]) == 2
    assert "none of its 1 rows is usable" in capsys.readouterr().err
    assert main(["train", "--model", "tiny", "--data", str(tmp_path / "nothing"), "--output-dir", str(tmp_path / "run")]) == 2
    assert "videos/ + captions/" in capsys.readouterr().err
