"""mp4 writing: imageio-ffmpeg's ffmpeg, or PyAV's libx264 where that binary is missing."""

from __future__ import annotations

import numpy as np
import pytest

import dimensionx.videofiles as videofiles
from dimensionx.errors import DimensionXError


def _smooth_frames(t: int = 6, h: int = 48, w: int = 80) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([np.stack([x * 2 + 5 * i, y * 4, x + y + 5 * i], -1) for i in range(t)]).astype(np.uint8)


@pytest.mark.parametrize("encoder", ["imageio-ffmpeg", "pyav"])
def test_both_encoders_write_an_mp4_that_reads_back(encoder, monkeypatch, tmp_path):
    monkeypatch.setattr(videofiles, "video_encoder", lambda: encoder)
    frames = _smooth_frames()
    videofiles.write_video(frames, tmp_path / "clip.mp4", fps=8)
    back, fps = videofiles.read_frames(tmp_path / "clip.mp4")
    assert back.shape == frames.shape and fps == pytest.approx(8)
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 2.0  # CRF 12 on a smooth picture; a broken encode is off by tens
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temporary file left


def test_odd_sizes_are_kept_with_full_chroma(monkeypatch, tmp_path):
    monkeypatch.setattr(videofiles, "video_encoder", lambda: "pyav")
    frames = _smooth_frames(h=47, w=81)
    videofiles.write_video(frames, tmp_path / "odd.mp4", fps=10)
    assert videofiles.read_frames(tmp_path / "odd.mp4")[0].shape == frames.shape


def test_no_encoder_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(videofiles, "video_encoder", lambda: None)
    with pytest.raises(DimensionXError, match="no H.264 encoder"):
        videofiles.write_video(_smooth_frames(), tmp_path / "clip.mp4", fps=8)
    assert not any(tmp_path.iterdir())
