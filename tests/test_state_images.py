"""Reading an image's header leaves Pillow's process-wide pixel limit alone (the app decodes on worker threads)."""

from __future__ import annotations

import pytest
from PIL import Image

from dimensionx.errors import DimensionXError
from dimensionx.imagefiles import MAX_IMAGE_PIXELS, check_image

from test_reliability import huge_png_header


class PillowLimitWatch:
    """Records every value PIL.Image.MAX_IMAGE_PIXELS takes while installed (Pillow reads it as a module global)."""

    def __init__(self, monkeypatch):
        self.seen = []
        monkeypatch.setattr(Image, "__class__", _watching(type(Image), self.seen))


def _watching(module_type, seen):
    class Watched(module_type):
        def __setattr__(self, name, value):
            if name == "MAX_IMAGE_PIXELS":
                seen.append(value)
            super().__setattr__(name, value)

    return Watched


def test_a_huge_header_is_refused_by_our_limit_without_touching_pillows(tmp_path, monkeypatch):
    huge = huge_png_header(tmp_path / "huge.png", 20000)
    before = Image.MAX_IMAGE_PIXELS
    watch = PillowLimitWatch(monkeypatch)
    with pytest.raises(DimensionXError, match=rf"huge.png is 20000x20000 px \(400 Mpx\), more than the "
                                              rf"{MAX_IMAGE_PIXELS / 1e6:.0f} Mpx limit"):
        check_image(huge)
    assert watch.seen == [] and Image.MAX_IMAGE_PIXELS == before


def test_sizes_between_pillows_limit_and_ours_are_read(tmp_path, monkeypatch):
    """Pillow alone refuses more than 2 x its limit (179 Mpx); ours is MAX_IMAGE_PIXELS (300 Mpx)."""
    side = 16000  # 256 Mpx
    assert 2 * Image.MAX_IMAGE_PIXELS < side * side <= MAX_IMAGE_PIXELS
    big = huge_png_header(tmp_path / "big.png", side)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(big)
    watch = PillowLimitWatch(monkeypatch)
    assert check_image(big) == (side, side)
    assert watch.seen == []

