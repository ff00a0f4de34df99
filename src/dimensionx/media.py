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
from fractions import Fraction
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
    """Writes ``frames`` ([T, H, W, 3] uint8) as an H.264 mp4 that every player opens.

    libx264 at CRF 12, 4:2:0 chroma when the frame size is even (what players expect), else
    4:4:4. Encoded by imageio-ffmpeg's ffmpeg; where that binary is missing (a slim install,
    a machine it could not be carried to), by PyAV's libx264, which gives the same kind of
    file but is not bit-reproducible at 4:2:0 (its encodes of equal frames can differ slightly).
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3] uint8, got {frames.shape} {frames.dtype}")
    pixel_format = "yuv420p" if _even(frames) else "yuv444p"
    encoder = video_encoder()
    if encoder is None:
        raise DimensionXError("no H.264 encoder: pip install imageio-ffmpeg (or PyAV built with libx264)")
    with atomic_file(path) as tmp:
        if encoder == "imageio-ffmpeg":
            import imageio.v3 as iio

            iio.imwrite(tmp, frames, extension=".mp4", fps=fps, codec="libx264", macro_block_size=1,
                        output_params=["-crf", "12"], pixelformat=pixel_format)
        else:
            _write_video_pyav(frames, tmp, fps, pixel_format)


def video_encoder() -> str | None:
    """What :func:`write_video` encodes with here: "imageio-ffmpeg", else "pyav", else None."""
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
        return "imageio-ffmpeg"
    except (ImportError, RuntimeError):
        pass
    try:
        import av
    except ImportError:
        return None
    return "pyav" if "libx264" in av.codecs_available else None


def _write_video_pyav(frames: np.ndarray, path: Path, fps: float, pixel_format: str) -> None:
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pixel_format
        stream.options = {"crf": "12"}
        for index, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = index  # in the stream's time base, 1 / fps
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())  # flush the encoder


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
        frames = iio.imread(path, plugin="pyav")
        meta = iio.immeta(path, plugin="pyav")
    except Exception as exc:
        raise DimensionXError(f"{path} could not be read as a video ({exc}): pass an mp4/mov file or a folder of frames") from None
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    return np.stack([_rgb(f) for f in frames]), meta.get("fps")


def _rgb(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=-1)
    return frame[..., :3].astype(np.uint8)
