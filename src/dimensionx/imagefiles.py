"""Image files: photos and frames of any mode and bit depth decoded to 8-bit RGB, huge ones reduced as
they are read or refused before they are decoded.
"""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import numpy as np

from .errors import DimensionXError


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MAX_IMAGE_PIXELS = 300_000_000  # px; larger images are refused (decoding one takes about 1 GB of memory)
WORK_IMAGE_PIXELS = 16_000_000  # px; larger images are reduced by an integer factor as they are read


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """8-bit copy of ``pixels`` scaled, not clipped: 16-bit and 32-bit integers keep their high
    byte (as Pillow reads 16-bit RGB), floats map [0, 1] to [0, 255]."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype.kind == "f":
        return (np.clip(np.nan_to_num(pixels), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return (np.clip(pixels, 0, 65535).astype(np.uint16) >> 8).astype(np.uint8)


def check_image(path: str | Path, what: str = "input image") -> tuple[int, int]:
    """(width, height) px of an image file, from its header: refuses a file that is missing, is
    no image, or has more than ``MAX_IMAGE_PIXELS`` (before anything is decoded)."""
    path = Path(path)
    if not path.is_file():
        raise DimensionXError(f"{what} {path} does not exist: pass the path of an image (png, jpg, webp, ...)")
    with _opened(path, what) as image:
        image.close()
        return image.size


def open_image(path: str | Path, what: str = "input image"):
    """Opens an image file as an 8-bit PIL image, reduced below ``WORK_IMAGE_PIXELS``.

    Any bit depth (16-bit PNG/TIFF, 32-bit float TIFF) is scaled to 8 bits, never clipped; an
    image of more than ``MAX_IMAGE_PIXELS`` is refused before it is decoded. Errors name the
    file (``what`` says which role it plays, e.g. "frame").
    """
    with _opened(path, what) as image:
        factor = _reduce_factor(image.width * image.height)
        if factor > 1:
            image.draft(image.mode, (image.width // factor, image.height // factor))  # JPEG: decodes at 1/2..1/8
        image.load()
    image = _eight_bit(image)
    factor = _reduce_factor(image.width * image.height)
    return image.reduce(factor) if factor > 1 else image


@contextlib.contextmanager
def _opened(path: Path, what: str):
    """The image's header opened, its size within ``MAX_IMAGE_PIXELS``; read errors name the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = _open_unchecked(Path(path))
        pixels = image.width * image.height
        if pixels > MAX_IMAGE_PIXELS:
            raise DimensionXError(
                f"{what} {path} is {image.width}x{image.height} px ({pixels / 1e6:.0f} Mpx), more than the "
                f"{MAX_IMAGE_PIXELS / 1e6:.0f} Mpx limit this tool decodes: shrink it first (it is resized to the "
                "model's size anyway)")
        yield image
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DimensionXError(f"{what} {path} cannot be read as an image ({exc.__class__.__name__}: {exc}): "
                              "replace or remove it (png, jpg, webp, tiff)") from None


def _open_unchecked(path: Path):
    """The image's header read by the first of Pillow's openers that accepts the file, in Pillow's own
    order, as ``Image.open`` does, minus Pillow's pixel limit (``MAX_IMAGE_PIXELS`` here replaces it).

    ``PIL.Image.MAX_IMAGE_PIXELS`` is process-wide: lowering or lifting it around a call would race
    with the app's worker threads, so it is never touched.
    """
    from PIL import Image, UnidentifiedImageError

    Image.init()  # registers every format's opener
    with path.open("rb") as file:
        prefix = file.read(16)
    if not prefix:
        raise UnidentifiedImageError("the file is empty (0 bytes)")
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        try:
            accepted = accept is None or accept(prefix)
        except (struct.error, IndexError):  # some checks read past a prefix this short: not that format
            continue
        if not accepted or isinstance(accepted, str):  # a str is Pillow's "looks like X but unsupported"
            continue
        try:
            return factory(str(path))  # reads the header only; the file stays open until load() or close()
        except (SyntaxError, IndexError, TypeError, struct.error):  # not this format after all (as Image.open)
            continue
    raise UnidentifiedImageError(f"cannot identify image file {str(path)!r}")


def _reduce_factor(pixels: int) -> int:
    factor = 1
    while pixels / factor**2 > WORK_IMAGE_PIXELS:
        factor += 1
    return factor


def _eight_bit(image):
    """Greyscale of more than 8 bits (modes I;16*, I, F) -> mode L, scaled; palette and 1-bit images -> RGB(A)
    and L, which (unlike modes P and 1) can be reduced."""
    from PIL import Image

    if image.mode.startswith("I") or image.mode == "F":
        return Image.fromarray(to_uint8(np.asarray(image)))
    if image.mode in ("P", "PA"):
        return image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB")
    if image.mode == "1":
        return image.convert("L")
    return image
