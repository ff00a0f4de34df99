"""Images of any bit depth and size are read as the 8-bit pixels they mean (hand-computed values)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dimensionx.errors import DimensionXError
from dimensionx.imagefiles import open_image
from dimensionx.video.image import load_image
from dimensionx.videofiles import read_frames
from test_reliability import png


def test_16bit_grey_png_is_scaled_not_clipped(tmp_path):
    # 16-bit values 0, 0x4000, 0x8000, 0xFFFF mean 0, 1/4, 1/2 and 1 of full scale: 0, 64, 128, 255 in 8 bits
    grey = np.repeat(np.array([[0, 0x4000, 0x8000, 0xFFFF]], np.uint16), 16, axis=1).repeat(64, axis=0)
    pixels = np.asarray(load_image(png(tmp_path / "grey16.png", grey)))
    assert pixels.shape == (64, 64, 3)
    assert pixels[0, ::16, 0].tolist() == [0, 64, 128, 255]
    assert (pixels[..., 0] == pixels[..., 2]).all()


def test_16bit_rgb_png_keeps_its_colours(tmp_path):
    rgb = np.zeros((64, 64, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 0xFFFF, 0x8000, 0x2000  # 1, 1/2, 1/8 of full scale
    assert np.asarray(load_image(png(tmp_path / "rgb16.png", rgb)))[5, 5].tolist() == [255, 128, 32]


def test_float_tiff_maps_zero_one_to_the_8bit_range(tmp_path):
    values = np.repeat(np.array([[0.0, 0.25, 0.5, 1.0]], np.float32), 16, axis=1).repeat(64, axis=0)
    Image.fromarray(values).save(tmp_path / "float.tif")
    assert np.asarray(load_image(tmp_path / "float.tif"))[0, ::16, 1].tolist() == [0, 64, 128, 255]


def test_frame_folder_of_16bit_pngs_is_scaled(tmp_path):
    for i, value in enumerate([0x1000, 0x8000, 0xF000]):
        png(tmp_path / f"frame_{i}.png", np.full((8, 12), value, np.uint16))
    frames, fps = read_frames(tmp_path)
    assert frames.shape == (3, 8, 12, 3) and frames.dtype == np.uint8 and fps is None
    assert frames[:, 0, 0, 0].tolist() == [16, 128, 240]


def test_large_photo_is_reduced_by_an_integer_factor(tmp_path):
    # 8000 x 4000 px = 32 Mpx > 16 Mpx: factor 2 gives 4000 x 2000 (8 Mpx); a box filter keeps the halves' colours
    image = Image.new("RGB", (8000, 4000), (200, 10, 10))
    image.paste((10, 10, 200), (4000, 0, 8000, 4000))
    image.save(tmp_path / "wide.png", compress_level=1)
    loaded = load_image(tmp_path / "wide.png")
    assert loaded.size == (4000, 2000)
    assert loaded.getpixel((100, 100)) == (200, 10, 10) and loaded.getpixel((3900, 1900)) == (10, 10, 200)


def test_truncated_image_is_named(tmp_path):
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "good.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "good.png").read_bytes()[:60])
    with pytest.raises(DimensionXError, match="input image .*cut.png cannot be read as an image"):
        load_image(tmp_path / "cut.png")


@pytest.mark.parametrize("mode", ["P", "1"])
def test_large_palette_and_one_bit_images_keep_their_colours_when_reduced(tmp_path, mode):
    # 4200 x 4200 px (17.6 Mpx > 16 Mpx): reduced by 2 after conversion; left half one colour, right half the other
    left, right = ((200, 30, 30), (20, 40, 220)) if mode == "P" else ((0, 0, 0), (255, 255, 255))
    pixels = np.zeros((4200, 4200, 3), np.uint8)
    pixels[:, :2100], pixels[:, 2100:] = left, right
    image = Image.fromarray(pixels)
    (image.quantize(2) if mode == "P" else image.convert("1")).save(tmp_path / "big.png")
    reduced = np.asarray(open_image(tmp_path / "big.png").convert("RGB"))
    assert reduced.shape == (2100, 2100, 3)
    assert reduced[5, 5].tolist() == list(left) and reduced[5, -5].tolist() == list(right)
