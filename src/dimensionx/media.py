"""Files that stages exchange: mp4 videos, frame folders and JSON sidecars, written atomically.

Every writer here builds its output under a temporary name in the destination folder and
renames it into place, so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import DimensionXError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def check_writable(path: Path, overwrite: bool) -> None:
    """Refuses to replace an existing output unless ``overwrite`` is set."""
    if path.exists() and not overwrite:
        raise DimensionXError(f"{path} already exists: pass --overwrite to replace it, or choose another --out")


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yields a temporary folder beside ``path``; moves it onto ``path`` if the block succeeds."""
    path = Path(path)
    check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(data: dict, path: str | Path) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_video(frames: np.ndarray, path: str | Path, fps: float) -> None:
    """Writes ``frames`` ([T, H, W, 3] uint8) as an H.264 mp4 that every player opens."""
    import imageio.v3 as iio

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3] uint8, got {frames.shape} {frames.dtype}")
    with atomic_file(path) as tmp:
        iio.imwrite(tmp, frames, extension=".mp4", fps=fps, codec="libx264", macro_block_size=1,
                    output_params=["-crf", "12"], pixelformat="yuv420p" if _even(frames) else "yuv444p")


def _even(frames: np.ndarray) -> bool:
    return frames.shape[1] % 2 == 0 and frames.shape[2] % 2 == 0


def read_frames(path: str | Path) -> tuple[np.ndarray, float | None]:
    """Reads a video file or a folder of images as ([T, H, W, 3] uint8, fps or None)."""
    import imageio.v3 as iio

    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DimensionXError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)}): pass a video or a folder of frames")
        frames = [np.asarray(_rgb(iio.imread(f))) for f in files]
        if len({f.shape for f in frames}) != 1:
            raise DimensionXError(f"the frames in {path} differ in size: resize them to one size first")
        return np.stack(frames), None
    if not path.is_file():
        raise DimensionXError(f"{path} does not exist: pass a video file (mp4, mov, ...) or a folder of frames")
    try:
        frames = iio.imread(path, plugin="pyav") if _has_pyav() else iio.imread(path)
        meta = iio.immeta(path)
    except Exception as exc:
        raise DimensionXError(f"{path} could not be read as a video ({exc}): pass an mp4/mov file or a folder of frames") from None
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    return np.stack([_rgb(f) for f in frames]), meta.get("fps")


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _rgb(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=-1)
    return frame[..., :3].astype(np.uint8)
