"""The input photo is oriented, flattened and fitted the way a user expects."""

from __future__ import annotations

import numpy as np
from PIL import Image

from dimensionx.video.image import fit_image, load_image


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (200, 100), (255, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").size == (100, 200)


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((80, 80, 4), np.uint8)
    rgba[:40, :, :] = (0, 0, 255, 255)  # opaque blue top half, transparent bottom half
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    pixels = np.asarray(load_image(tmp_path / "alpha.png"))
    assert tuple(pixels[10, 10]) == (0, 0, 255) and tuple(pixels[70, 70]) == (255, 255, 255)


def test_crop_keeps_centre_and_pad_keeps_everything():
    wide = np.zeros((100, 400, 3), np.uint8)
    wide[:, 150:250] = 255  # white centre stripe
    image = Image.fromarray(wide)
    cropped = np.asarray(fit_image(image, 96, 64, "crop"))
    assert cropped.shape == (64, 96, 3) and cropped[:, 48].mean() > 250 and cropped[:, 2].mean() < 5
    padded = np.asarray(fit_image(image, 96, 64, "pad"))
    assert padded.shape == (64, 96, 3) and padded[:10].mean() == 0  # letterbox bars on top
