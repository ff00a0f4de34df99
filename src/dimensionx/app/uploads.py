"""Checks of what a browser uploads, before any model runs: size, type, pixels."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..errors import DimensionXError
from ..imagefiles import IMAGE_SUFFIXES
from ..videofiles import VIDEO_SUFFIXES

MB = 1_000_000


def check_size(path: Path, what: str, max_mb: float) -> None:
    size = path.stat().st_size
    if size > max_mb * MB:
        raise DimensionXError(f"the uploaded {what} {path.name} is {size / MB:.1f} MB; the limit is {max_mb:g} MB: upload a smaller file")


def check_image_upload(path: str | Path | None, max_mb: float, max_megapixels: float) -> Path:
    """An uploaded photo: an existing file of at most ``max_mb`` that Pillow reads as an image of at most ``max_megapixels``."""
    if not path:
        raise DimensionXError("no image: upload a photo (png, jpg, webp) first")
    path = Path(path)
    check_size(path, "image", max_mb)
    try:
        with Image.open(path) as image:  # reads the header only: a huge image is refused before it is decoded
            width, height = image.size
            if width * height > max_megapixels * 1e6:
                raise DimensionXError(f"the uploaded image {path.name} is {width}x{height} px ({width * height / 1e6:.0f} MP); "
                                      f"the limit is {max_megapixels:g} MP: upload a smaller photo")
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        why = ("no image format we read" if isinstance(exc, UnidentifiedImageError) else
               "more pixels than any photo, a decompression bomb" if isinstance(exc, Image.DecompressionBombError) else
               "damaged or cut short")
        raise DimensionXError(f"the uploaded file {path.name} is not an image ({why}): "
                              f"upload a photo ({', '.join(IMAGE_SUFFIXES)})") from None
    return path


def check_video_upload(path: str | Path, max_mb: float) -> Path:
    """An uploaded video to reconstruct: a video file type of at most ``max_mb``."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise DimensionXError(f"the uploaded file {path.name} is not a video: upload one of {', '.join(VIDEO_SUFFIXES)}")
    check_size(path, "video", max_mb)
    return path


def check_sidecar_upload(path: str | Path | None, max_mb: float) -> Path:
    """An uploaded settings file: the JSON sidecar written beside a generated video."""
    if not path:
        raise DimensionXError("no settings file: upload the .json written beside a generated video")
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise DimensionXError(f"the uploaded file {path.name} is not a settings sidecar: upload the .json written beside a video")
    check_size(path, "settings file", max_mb)
    try:
        settings = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        settings = None
    if not (isinstance(settings, dict) and isinstance(settings.get("config"), dict) and "directors" in settings):
        raise DimensionXError(f"the uploaded file {path.name} is not a video's settings: upload the .json written beside a video "
                              "that this app or `dimensionx video` generated")
    return path
