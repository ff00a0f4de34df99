"""The file modules at their edges: NTSC frame rates through PyAV, the size where images start being reduced,
and atomic_dir's default of never replacing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import dimensionx.imagefiles as imagefiles
import dimensionx.outputs as outputs
import dimensionx.videofiles as videofiles
from dimensionx.errors import DimensionXError


def test_pyav_keeps_an_ntsc_frame_rate_exactly(monkeypatch, tmp_path):
    monkeypatch.setattr(videofiles, "video_encoder", lambda: "pyav")
    frames = np.zeros((3, 16, 16, 3), dtype=np.uint8)
    videofiles.write_video(frames, tmp_path / "ntsc.mp4", fps=30000 / 1001)
    _, fps = videofiles.read_frames(tmp_path / "ntsc.mp4")
    assert fps == pytest.approx(30000 / 1001, abs=1e-9)  # 29.97002997..., not 29.97


@pytest.mark.parametrize("width, height, reduced", [(4000, 4000, (4000, 4000)), (4001, 4000, (2001, 2000))])
def test_images_are_reduced_only_above_the_working_size(tmp_path, width, height, reduced):
    assert width * height - imagefiles.WORK_IMAGE_PIXELS in (0, 4000)  # exactly at the limit, then one column over
    Image.new("L", (width, height), 128).save(tmp_path / "photo.png")
    assert imagefiles.open_image(tmp_path / "photo.png").size == reduced


def test_atomic_dir_without_overwrite_never_replaces(tmp_path):
    with outputs.atomic_dir(tmp_path / "scene") as tmp:
        (tmp / "v1.txt").write_text("first")
    with pytest.raises(DimensionXError, match="already exists: pass --overwrite to replace it"):
        with outputs.atomic_dir(tmp_path / "scene"):
            raise AssertionError("the block must not run")
    assert (tmp_path / "scene" / "v1.txt").read_text() == "first"


def test_32bit_integer_pixels_above_16_bits_saturate_at_white():
    pixels = np.array([[0, 255, 256, 65535, 65536, 1 << 20, -5]], dtype=np.int32)
    assert imagefiles.to_uint8(pixels).tolist() == [[0, 0, 1, 255, 255, 255, 0]]
