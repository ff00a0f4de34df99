"""`train`, `make-dataset` and the files they read, through the real CLI: a damaged input is named in
one line (exit 2, no traceback) and nothing is left half-written (docs/reliability.md)."""

from __future__ import annotations

import re
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
