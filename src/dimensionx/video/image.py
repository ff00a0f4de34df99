"""The input photo: opened with Pillow (any bit depth, huge ones reduced), EXIF orientation applied,
alpha flattened, fitted to the model."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps

from ..errors import DimensionXError
from ..imagefiles import open_image

MIN_SIDE_PX = 64
FITS = ("crop", "pad")


def load_image(path: str | Path) -> Image.Image:
    """Opens ``path`` as an RGB image, upright, transparent areas on white, 8 bits per channel
    (16-bit scaled), at most ``WORK_IMAGE_PIXELS`` (larger photos reduced). Checked, not yet fitted."""
    image = ImageOps.exif_transpose(open_image(path))
    check_size(path, *image.size)
    if image.mode in ("RGBA", "LA", "P", "PA"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def check_size(path: str | Path, width: int, height: int) -> None:
    if min(width, height) < MIN_SIDE_PX:
        raise DimensionXError(
            f"input image {path} is {width}x{height} px; the smallest side must be at least {MIN_SIDE_PX} px: pass a larger photo"
        )


def fit_image(image: Image.Image, width: int, height: int, fit: str = "crop") -> Image.Image:
    """Resizes to ``width`` x ``height`` px keeping the aspect ratio.

    ``crop`` fills the frame and cuts the overflow evenly from both sides (centre crop);
    ``pad`` fits the whole photo inside and fills the borders with black.
    """
    if fit == "crop":
        return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS)
    if fit == "pad":
        return ImageOps.pad(image, (width, height), method=Image.Resampling.LANCZOS, color=(0, 0, 0))
    raise DimensionXError(f"--fit {fit!r} is unknown: use one of {', '.join(FITS)}")
