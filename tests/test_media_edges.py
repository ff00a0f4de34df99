"""The file modules at their edges: the fps range and NTSC frame rates through PyAV, the size where images start being reduced,
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


@pytest.mark.parametrize("fps, whole, allowed", [
    (1, True, True), (240, True, True), (0, True, False), (0.5, True, False), (241, True, False),  # --fps, render_fps
    (1e-3, False, True), (29.97, False, True), (240.0, False, True), (0.0, False, False), (-1.0, False, False),
    (240.01, False, False), (float("nan"), False, False), (float("nan"), True, False), (float("inf"), False, False),
])
def test_check_fps_at_its_edges(fps, whole, allowed):
    """Whole-number settings (``--fps``, ``render_fps``) start at 1, recon's float ``orbit_fps`` above 0; both end at 240."""
    assert videofiles.MAX_FPS == 240
    if allowed:
        videofiles.check_fps(fps, "orbit_fps", whole=whole)
    else:
        with pytest.raises(DimensionXError, match=rf"^orbit_fps {fps}: frames per second must be "):
            videofiles.check_fps(fps, "orbit_fps", whole=whole)


def test_check_fps_names_the_setting_and_its_default():
    with pytest.raises(DimensionXError) as refused:
        videofiles.check_fps(0, "render_fps", default=12)
    assert str(refused.value) == "render_fps 0: frames per second must be from 1 to 240 (default 12)"
    with pytest.raises(DimensionXError) as refused:
        videofiles.check_fps(0.0, "orbit_fps", whole=False, default=30.0)
    assert str(refused.value) == "orbit_fps 0.0: frames per second must be more than 0 and at most 240 (default 30)"


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


def test_a_seed_is_taken_from_0_to_the_largest_64_bit_one_torch_takes():
    import torch

    from dimensionx.config import MAX_SEED, check_seed

    for seed in (0, MAX_SEED):
        check_seed(seed)
        torch.Generator().manual_seed(seed)  # the reference: what every stage seeds with
    for seed in (-1, MAX_SEED + 1):
        with pytest.raises(DimensionXError, match=rf"^--seed {seed}: use 0 to {MAX_SEED} "):
            check_seed(seed)
