"""Files that stages exchange: mp4 videos, frame folders and JSON sidecars, written atomically.

Every writer here builds its output under a temporary name in the destination folder and
renames it into place, so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import secrets
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from .errors import DimensionXError
from .interrupts import signals_deferred

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


OUTPUT_MARKER = ".dimensionx-output.json"  # written into every output folder: proof that we wrote it
TEMP_TAG = ".tmp-"  # in the names of temporary outputs: .NAME.tmp-PID-XXXXXXXX (see remove_leftover_temps)
MAX_IMAGE_PIXELS = 300_000_000  # px; larger images are refused (decoding one takes about 1 GB of memory)
WORK_IMAGE_PIXELS = 16_000_000  # px; larger images are reduced by an integer factor as they are read
MAX_FPS = 240  # frames per second of an mp4 a command writes


def check_writable(path: Path, overwrite: bool, what: str = "--out") -> None:
    """Refuses a file output that exists (unless ``overwrite``), names a folder, or cannot be written;
    ``what``: the flag or setting that chose ``path``, named in the fix."""
    path = Path(path)
    if path.is_dir():
        raise DimensionXError(f"{path} is a folder, but a file is written here: pass a file name such as {path / 'out.mp4'}")
    if path.exists() and not overwrite:
        raise DimensionXError(f"{path} already exists: pass --overwrite to replace it, or choose another --out")
    _check_parent_writable(path, what)


def check_output_dir(path: str | Path, overwrite: bool) -> None:
    """Refuses an output folder that exists (unless ``overwrite``) or that ``--overwrite`` must never replace."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise DimensionXError(f"{path} already exists: pass --overwrite to replace it, or choose another --out")
        check_replaceable(path)
    _check_parent_writable(path)


def check_replaceable(path: Path) -> None:
    """``--overwrite`` replaces only a folder this tool wrote: never ``/``, the home folder, the
    working folder or one of its parents, a file, or a folder of anything else."""
    resolved = Path(path).resolve()
    cwd = Path.cwd().resolve()
    if resolved in {Path(resolved.anchor), Path.home().resolve(), cwd, *cwd.parents}:
        raise DimensionXError(f"--overwrite refuses to replace {path} ({resolved}): it is the root, home or working "
                              "folder or a parent of it; pass a new folder as --out")
    if not resolved.is_dir():
        raise DimensionXError(f"--overwrite refuses to replace {path}: it is not a folder this tool wrote; choose another --out")
    if not _written_by_us(resolved):
        raise DimensionXError(f"--overwrite refuses to replace {path}: it holds files dimensionx did not write "
                              f"(no {OUTPUT_MARKER}); move them away or choose another --out")


def start_output_dir(path: str | Path, overwrite: bool, stage: str) -> Path | None:
    """Creates the output folder of a command that fills it in place over a long run and resumes it
    (``scene4d``, ``train``), marked as ours. With ``overwrite``, a folder this tool wrote is first
    moved aside to a hidden sibling, which :func:`finish_output_dir` deletes once the new output is
    complete; an interrupted run leaves it in place. Returns the folder set aside (None if none).

    A folder that was itself an unfinished replacement is deleted (it is this tool's partial work) and
    the complete output it was replacing stays the one set aside: at most one old copy is ever kept."""
    path = Path(path)
    check_output_dir(path, overwrite)
    aside = None
    if path.exists() or path.is_symlink():
        earlier = set_aside_of(path)
        if earlier is not None:
            shutil.rmtree(path)
            aside = earlier
        else:
            aside = path.with_name(f".{path.name}.old-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            with signals_deferred():
                os.replace(path, aside)
    path.mkdir(parents=True)
    mark_output_dir(path, stage, **({"replaces": aside.name} if aside is not None else {}))
    return aside


def mark_output_dir(folder: str | Path, stage: str | None = None, **extra) -> None:
    """Writes the marker that says ``folder`` is this tool's output (of the command ``stage``)."""
    marker = {"tool": "dimensionx", **({"stage": stage} if stage else {}),
              "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
    (Path(folder) / OUTPUT_MARKER).write_text(json.dumps(marker) + "\n")


def set_aside_of(path: str | Path) -> Path | None:
    """The earlier output that ``path`` (an unfinished ``--overwrite`` run) replaces and keeps until it is complete."""
    try:
        name = json.loads((Path(path) / OUTPUT_MARKER).read_text()).get("replaces")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(name, str) or not name.startswith(f".{Path(path).name}.old-") or "/" in name:
        return None
    aside = Path(path).with_name(name)
    return aside if aside.is_dir() and not aside.is_symlink() else None


def finish_output_dir(path: str | Path) -> None:
    """The output in ``path`` is complete: deletes the earlier output it replaced (see :func:`start_output_dir`)."""
    path = Path(path)
    aside = set_aside_of(path)
    marker = path / OUTPUT_MARKER
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(info, dict) or "replaces" not in info:
        return
    with signals_deferred():
        if aside is not None:
            shutil.rmtree(aside)
        del info["replaces"]
        with atomic_file(marker) as tmp:
            tmp.write_text(json.dumps(info) + "\n")


def is_output_dir(folder: str | Path, stage: str | None = None) -> bool:
    """Whether ``folder`` was made by this tool (by the command of ``stage``, if given)."""
    if not _written_by_us(Path(folder)):
        return False
    if stage is None:
        return True
    try:
        return json.loads((Path(folder) / OUTPUT_MARKER).read_text()).get("stage") == stage
    except (OSError, ValueError, AttributeError):
        return False


def _written_by_us(folder: Path) -> bool:
    if (folder / OUTPUT_MARKER).is_file():
        return True
    try:  # scene folders written before the marker existed: their metrics.json carries the run's config
        return "config" in json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def _check_parent_writable(path: Path, what: str = "--out") -> None:
    """Creates and deletes a file in the nearest existing folder of ``path``: what the write will need."""
    parent = Path(path).absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise DimensionXError(f"cannot write {path}: {parent} is a file, not a folder; choose another {what}")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise DimensionXError(f"cannot write {path}: {parent} is not writable ({exc.strerror}); choose another {what}") from None


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp(path.parent, path.name, path.suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_files(paths: list[str | Path]) -> Iterator[list[Path]]:
    """Like :func:`atomic_file` for files that belong together (a video and its sidecar): all of
    them are renamed into place at the end, with signals held back, or none is."""
    for path in paths:  # what a killed run of the same command left
        remove_leftover_temps(path)
    folders = []
    try:
        for p in paths:
            folders.append(_new_temp(_made_parent(p), Path(p).name, folder=True))
        temps = [folder / Path(p).name for folder, p in zip(folders, paths)]
        yield temps
        with signals_deferred():
            for tmp, path in zip(temps, paths):
                os.replace(tmp, path)
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def _new_temp(parent: Path, name: str, suffix: str = "", folder: bool = False) -> Path:
    """A new hidden ``.NAME.tmp-PID-XXXXXXXX`` file or folder in ``parent``, created as ``open`` and ``mkdir``
    create them (mode 0666 / 0777 less the process umask, which is read by no one). The PID lets
    :func:`remove_leftover_temps` tell a killed run's temporary from a running one's."""
    while True:
        path = parent / f".{name}{TEMP_TAG}{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        try:
            if folder:
                os.mkdir(path, 0o777)
            else:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return path
        except FileExistsError:
            continue


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


def move_no_clobber(source: str | Path, target: str | Path) -> None:
    """Renames ``source`` to ``target`` in the same folder; raises FileExistsError, moving nothing, if ``target`` exists."""
    try:
        os.link(source, target)  # atomic: fails where the name is taken
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(target):
            raise FileExistsError(target) from None
        os.replace(source, target)
        return
    os.unlink(source)


def _made_parent(path: str | Path) -> Path:
    parent = Path(path).parent
    parent.mkdir(parents=True, exist_ok=True)
    return parent


@contextlib.contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yields a temporary folder beside ``path``; moves it onto ``path`` if the block succeeds.

    An existing ``path`` (``overwrite``, and only a folder this tool wrote: see
    :func:`check_replaceable`) is moved aside first and deleted only once the new folder is
    in place; if that rename fails, the old folder is moved back.
    """
    path = Path(path)
    check_output_dir(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp(path.parent, path.name, folder=True)
    try:
        yield tmp
        mark_output_dir(tmp)
        _replace_dir(tmp, path, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_leftover_temps(path: str | Path) -> None:
    """Removes the temporary files and folders that :func:`atomic_dir`, :func:`atomic_file` and
    :func:`atomic_files` left beside ``path`` in a process killed outright (SIGKILL, a power cut), where
    its own cleanup could not run: only names they make (``.NAME.tmp-PID-...``), and only those of a
    process that is no longer running. A copy moved aside (``.NAME.old-...``) is kept: it may be the
    only one left."""
    path = Path(path)
    for tmp in path.parent.glob(f".{glob.escape(path.name)}{TEMP_TAG}*"):
        pid = tmp.name.split(TEMP_TAG, 1)[1].split("-", 1)[0]
        if not pid.isdigit() or _running(int(pid)) or tmp.is_symlink():
            continue
        if tmp.is_dir():
            shutil.rmtree(tmp)
        else:
            tmp.unlink()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _replace_dir(new: Path, path: Path, overwrite: bool) -> None:
    if not (path.exists() or path.is_symlink()):
        os.replace(new, path)
        return
    check_output_dir(path, overwrite)  # again: the folder may have changed during the run
    aside = path.with_name(f".{path.name}.old-{os.getpid()}-{time.monotonic_ns()}")
    with signals_deferred():
        os.replace(path, aside)
        try:
            os.replace(new, path)
        except BaseException:
            os.replace(aside, path)
            raise
        if aside.is_symlink():
            aside.unlink()
        else:
            shutil.rmtree(aside)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of the file's bytes: what a sidecar or a checkpoint records to detect a file changed since."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    encoder = check_video_encoder(str(path))
    with atomic_file(path) as tmp:
        if encoder == "imageio-ffmpeg":
            import imageio.v3 as iio

            iio.imwrite(tmp, frames, extension=".mp4", fps=fps, codec="libx264", macro_block_size=1,
                        output_params=["-crf", "12"], pixelformat=pixel_format)
        else:
            _write_video_pyav(frames, tmp, fps, pixel_format)


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
    from PIL import Image

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # MAX_IMAGE_PIXELS above replaces Pillow's check
    try:
        return Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = limit


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
