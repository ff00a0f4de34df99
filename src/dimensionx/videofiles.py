"""Video files: H.264 mp4 writing (imageio-ffmpeg, else PyAV), frame reading that reports a damaged
video by the frames it holds, and the check that a JSON sidecar describes the mp4 beside it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from .atomic import atomic_file, file_sha256
from .diskerrors import reached_size_limit
from .errors import DimensionXError
from .imagefiles import IMAGE_SUFFIXES, open_image


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".gif")
MAX_FPS = 240  # frames per second of an mp4 a command writes
MAX_RENDER_FRAMES = 3600  # frames of a rendered mp4 (render4d, recon's orbit), held in memory until encoded (720x480: 1 MB each)
FULL_DISK_BYTES = 1 << 20  # free bytes below which an encoder that stopped early is taken to have filled the disk


def check_fps(fps: float, name: str, whole: bool = True, default: float | None = None) -> None:
    """Refuses frames per second above :data:`MAX_FPS` or too low for an mp4. ``name``: the setting as the user
    typed it (``--fps``, ``render_fps``); ``whole``: an int setting, from 1, else a rate above 0 (e.g. 29.97 or
    0.5); ``default``: the setting's default, named in the message. NaN is refused."""
    allowed, rule = (fps >= 1, f"from 1 to {MAX_FPS}") if whole else (fps > 0, f"more than 0 and at most {MAX_FPS}")
    if not (allowed and fps <= MAX_FPS):
        raise DimensionXError(f"{name} {fps}: frames per second must be {rule}"
                              + (f" (default {default:g})" if default is not None else ""))


def check_sidecar(sidecar: str | Path, data) -> None:
    """Refuses a video's JSON sidecar (``data``, read from ``sidecar``) that records another mp4 than the one
    beside it (same stem): a run killed between the two renames of :func:`atomic_files` leaves the new video
    beside the old sidecar. Sidecars from before the checksum was recorded pass."""
    sidecar = Path(sidecar)
    video = sidecar.with_suffix(".mp4")
    recorded = data.get("video", {}).get("sha256") if isinstance(data.get("video"), Mapping) else None
    if recorded and video.is_file() and file_sha256(video) != recorded:
        raise DimensionXError(f"{sidecar} does not describe {video} beside it: the mp4's sha256 is not the one the sidecar "
                              "records, so they come from different runs (one killed between writing them); make the "
                              "video again, or delete the stale sidecar")


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
    encoder = check_video_encoder(str(path))
    with atomic_file(path) as tmp:
        try:
            if encoder == "imageio-ffmpeg":
                import imageio.v3 as iio

                iio.imwrite(tmp, frames, extension=".mp4", fps=fps, codec="libx264", macro_block_size=1,
                            output_params=["-crf", "12"], pixelformat=pixel_format)
            else:
                _write_video_pyav(frames, tmp, fps, pixel_format)
        except OSError as exc:
            if exc.errno is not None:  # the machine's own error (a full disk): the CLI names it
                raise
            _check_encoded(tmp, path, len(frames))  # ffmpeg stopped (its pipe broke): say why, if the file shows it
            raise
        _check_encoded(tmp, path, len(frames))


def _check_encoded(tmp: Path, path: Path, frames: int) -> None:
    """Refuses to publish an mp4 that does not hold all ``frames``: imageio-ffmpeg never reads ffmpeg's exit
    status, so an encoder stopped by a full disk or by the process's file-size limit leaves a cut file behind.
    Those two causes are raised as the ``OSError`` the machine gave ffmpeg (the CLI names them)."""
    try:
        held = count_frames(tmp)
    except DimensionXError:
        held = None
    if held == frames:
        return
    if reached_size_limit(tmp):
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))  # no file name: the CLI names the command's output
    if shutil.disk_usage(tmp.parent).free < FULL_DISK_BYTES:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    holds = "no readable video" if held is None else f"{held} of the {frames} frames"
    raise DimensionXError(f"cannot write {path}: the encoder stopped early and its file holds {holds}; run the "
                          "command again (its temporary files were removed)")


def check_video_encoder(what: str, fix: str = "") -> str:
    """:func:`video_encoder`, or the error that ``what`` (an mp4) cannot be written here. Commands call it
    with their other inputs, before a model loads; ``fix``: a way round it besides installing one."""
    encoder = video_encoder()
    if encoder is None:
        raise DimensionXError(f"{what} is an H.264 mp4 and this Python has no H.264 encoder: "
                              f"pip install imageio-ffmpeg (or PyAV built with libx264){fix}")
    return encoder


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
    """Reads a video file or a folder of images as ([T, H, W, 3] uint8, fps or None); a folder needs no imageio."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DimensionXError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)}): pass a video or a folder of frames")
        frames = [np.asarray(open_image(f, "frame").convert("RGB")) for f in files]
        if len({f.shape for f in frames}) != 1:
            raise DimensionXError(f"the frames in {path} differ in size: resize them to one size first")
        return np.stack(frames), None
    if not path.is_file():
        raise DimensionXError(f"{path} does not exist: pass a video file (mp4, mov, ...) or a folder of frames")
    fps = []
    frames = np.stack(list(_decoded(path, rgb=True, fps=fps)))
    return frames, fps[0]


def count_frames(path: str | Path) -> int:
    """Frames in a video file, all decoded: refuses a video cut short or damaged, as :func:`read_frames` does."""
    return sum(1 for _ in _decoded(Path(path), rgb=False))


def check_decodes(path: str | Path) -> None:
    """Raises ``DimensionXError`` unless the video file ``path`` opens and its first frame decodes (the rest is not read)."""
    with contextlib.closing(_decoded(Path(path), rgb=False)) as frames:
        next(frames)


def _decoded(path: Path, rgb: bool, fps: list | None = None) -> Iterator:
    """Each frame of the video ``path`` ([H, W, 3] uint8 if ``rgb``, else PyAV's frame), in order. Raises if
    the file cannot be opened, or if fewer frames decode than its header declares or decoding fails part way:
    a file cut short while copying otherwise yields black frames (imageio fills the missing ones with zeros)."""
    import av

    decoded, declared = 0, 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            declared = stream.frames  # 0 where the container does not say (mkv, webm)
            if fps is not None:
                fps.append(float(stream.average_rate) if stream.average_rate else None)
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24") if rgb else frame
                decoded += 1
    except (av.FFmpegError, IndexError, ValueError) as exc:
        if not decoded:
            raise DimensionXError(f"{path} could not be read as a video ({exc}): pass an mp4/mov file or a folder of "
                                  "frames") from None
        raise DimensionXError(f"{path} is damaged: {_held(decoded, declared)}, then decoding fails ({exc}); "
                              "replace it or re-encode it from its source") from None
    if decoded < declared:
        raise DimensionXError(f"{path} is cut short: {_held(decoded, declared)}; replace it or re-encode it from its source")
    if not decoded:
        raise DimensionXError(f"{path} holds no video frames: pass an mp4/mov file or a folder of frames")


def _held(decoded: int, declared: int) -> str:
    if not decoded:
        return f"none of the {declared} frames its header declares decode"
    header = f"its header declares {declared} frames but only " if declared > decoded else ""
    return f"{header}frames 0-{decoded - 1} ({decoded}) decode"
