"""Frames for reconstruction: hard-cut detection, shot choice, uniform sampling, downscaling."""

from __future__ import annotations

import itertools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import DimensionXError
from ..imagefiles import check_image, IMAGE_SUFFIXES, open_image
from .config import ReconConfig

log = logging.getLogger(__name__)

THUMBNAIL_PX = 32  # side of the square thumbnails compared by the cut detector
THUMBNAIL_SOURCE_PX = 64  # side of the frames decoded for thumbnails (swscale, area filter)
DUPLICATE_CHANGE = 0.01  # mean abs change below which a frame repeats the previous one
MIN_FRAMES = 3  # views a reconstruction needs at least
SHORT_VIDEO = 0.9  # a video decoding fewer than this fraction of the frames its header announces is damaged


@dataclass
class Footage:
    """The frames chosen for reconstruction and where they came from."""

    images: np.ndarray  # [T, H, W, 3] uint8, downscaled
    source_ids: np.ndarray  # [T] index of each frame in the input video
    frames_total: int  # frames in the input video
    shots: list[range]  # every shot found in the input, in frame indices
    shot: int  # index into ``shots`` of the reconstructed shot
    reader: "FrameReader"  # reads more frames of the input (denser sampling when SfM needs it)

    def add(self, ids: np.ndarray) -> np.ndarray:
        """Adds the input frames ``ids`` (not yet sampled, inside the shot); returns the new [T'] source ids."""
        ids = np.setdiff1d(ids, self.source_ids)
        if len(ids) == 0:
            return self.source_ids
        merged = np.concatenate([self.source_ids, ids])
        order = np.argsort(merged, kind="stable")
        self.images = np.concatenate([self.images, self.reader.read(ids)])[order]
        self.source_ids = merged[order]
        return self.source_ids


    def keep(self, ids: np.ndarray) -> None:
        """Keeps only the frames whose source ids are ``ids``."""
        kept = np.isin(self.source_ids, ids)
        self.images, self.source_ids = self.images[kept], self.source_ids[kept]


class FrameReader:
    """Frames of a video file (PyAV) or of a folder of images, converted only where asked, at one size.

    A video is decoded once for the cut detector's thumbnails (swscale shrinks each frame straight
    to 64 px: no full-size RGB copy) and once more for the sampled frames, which swscale converts
    to RGB at the target size; decoding stops after the last frame asked for.
    """

    def __init__(self, path: str, max_size: int):
        self.path = Path(path)
        self.frames_expected = None  # frames a video's header announces (None: a folder, or not announced)
        self.decode_failed = False  # decoding stopped at an error (a file cut short or corrupt)
        if self.path.is_dir():
            self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.files:
                raise DimensionXError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)}): pass a video or a "
                                      "folder of frames")
            width, height = check_image(self.files[0], "frame")  # a damaged or oversized first frame: named
        elif self.path.is_file():
            self.files = None
            width, height = self._probe()
        else:
            raise DimensionXError(f"{path} does not exist: pass a video file (mp4, mov, ...) or a folder of frames")
        self.size = target_size(width, height, max_size)  # (width, height) px of the frames read

    def _probe(self) -> tuple[int, int]:
        import av  # only for video files: a folder of frames needs no FFmpeg

        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                self.frames_expected = stream.frames or None
                return stream.codec_context.width, stream.codec_context.height
        except (av.FFmpegError, IndexError) as exc:
            raise DimensionXError(f"{self.path} could not be read as a video ({exc}): pass an mp4/mov file or a "
                                  "folder of frames") from None

    def thumbnails(self) -> torch.Tensor:
        """[T, 3 * 32 * 32] float in [0, 1]: every frame that decodes, as the cut detector compares them."""
        small = [frame for _, frame in self._frames(None, (THUMBNAIL_SOURCE_PX, THUMBNAIL_SOURCE_PX))]
        if self.decode_failed or (self.frames_expected and len(small) < SHORT_VIDEO * self.frames_expected):
            self._report_damage(len(small))
        return thumbnails(np.stack(small)) if small else torch.zeros(0, 3 * THUMBNAIL_PX**2)

    def _report_damage(self, decoded: int) -> None:
        """A video whose decoding stopped early (cut short, corrupt) is used as far as it decodes, with
        a warning; with fewer than ``MIN_FRAMES`` frames it is refused."""
        of = f" of ~{self.frames_expected}" if self.frames_expected else ""
        damage = f"{self.path} is damaged: {decoded}{of} frames decode"
        if decoded < MIN_FRAMES:
            raise DimensionXError(f"{damage}, too few to reconstruct (at least {MIN_FRAMES}): re-encode or "
                                  "re-download the video, or pass a folder of its frames")
        log.warning("%s; reconstructing from those (re-encode or re-download it for the rest)", damage)

    def read(self, ids: np.ndarray) -> np.ndarray:
        """[len(ids), H, W, 3] uint8: the frames ``ids`` (ascending) at the target size."""
        frames = dict(self._frames(set(int(i) for i in ids), self.size))
        return np.stack([frames[int(i)] for i in ids])

    def _frames(self, wanted: set[int] | None, size: tuple[int, int]) -> Iterator[tuple[int, np.ndarray]]:
        """(index, [h, w, 3] uint8) of the ``wanted`` frames (None: all) at ``size`` (width, height) px."""
        last = max(wanted) if wanted else None
        if self.files is not None:  # decoded a few at a time in threads (PIL's decoders release the GIL)
            ids = [i for i in range(len(self.files)) if wanted is None or i in wanted]
            with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
                yield from zip(ids, pool.map(lambda i: _resized(self.files[i], size), ids))
            return
        import av

        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            decoded = iter(container.decode(stream))
            for i in itertools.count():
                try:
                    frame = next(decoded)
                except StopIteration:
                    return
                except av.FFmpegError:  # cut short or corrupt from here on: the frames before it are kept
                    self.decode_failed = True
                    return
                if wanted is None or i in wanted:
                    yield i, frame.to_ndarray(format="rgb24", width=size[0], height=size[1], interpolation="AREA")
                if last is not None and i >= last:
                    return


def _resized(file: Path, size: tuple[int, int]) -> np.ndarray:
    """[h, w, 3] uint8 of an image file at ``size`` (width, height) px; any bit depth scaled to 8 bits,
    an unreadable file named in the error (imagefiles.open_image)."""
    rgb = open_image(file, "frame").convert("RGB")
    if rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(rgb)


def target_size(width: int, height: int, max_size: int) -> tuple[int, int]:
    """(width, height) px with the longest side at most ``max_size`` (0 keeps the size)."""
    if max_size <= 0 or max(width, height) <= max_size:
        return width, height
    scale = max_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


class ArrayReader:
    """:class:`FrameReader`'s reads from frames already in memory (e.g. a video just generated)."""

    def __init__(self, frames: np.ndarray, max_size: int):
        self.frames = frames  # [T, H, W, 3] uint8
        self.size = target_size(frames.shape[2], frames.shape[1], max_size)  # (width, height) px

    def thumbnails(self) -> torch.Tensor:
        """[T, 3 * 32 * 32] float in [0, 1]."""
        return thumbnails(self.frames)

    def read(self, ids: np.ndarray) -> np.ndarray:
        """[len(ids), H, W, 3] uint8 at the target size."""
        return downscale(self.frames[ids], max(self.size))


def load_footage(config: ReconConfig, frames: np.ndarray | None = None) -> Footage:
    """Finds the cuts of ``config.video`` (or of ``frames`` [T, H, W, 3] uint8 when given), keeps one shot
    and reads ``config.frames`` of its frames, downscaled."""
    reader = FrameReader(config.video, config.max_size) if frames is None else ArrayReader(frames, config.max_size)
    thumbs = reader.thumbnails()  # [T, D]
    if len(thumbs) < MIN_FRAMES:
        raise DimensionXError(f"{config.video} has {len(thumbs)} frame(s): reconstruction needs at least {MIN_FRAMES} views")
    shots = split_shots(len(thumbs), cuts_of_thumbnails(thumbs, config))
    shot = choose_shot(shots, config.shot, config.video)
    ids = sample_ids(shots[shot], config.frames)
    log.info("read %d of %d frames at %dx%d px", len(ids), len(thumbs), *reader.size)
    return Footage(reader.read(ids), ids, len(thumbs), shots, shot, reader)


def thumbnails(video: np.ndarray, px: int = THUMBNAIL_PX) -> torch.Tensor:
    """[T, H, W, 3] uint8 -> [T, 3 * px * px] float in [0, 1]."""
    return resize(video, (px, px)).flatten(1) / 255.0


def resize(images: np.ndarray, size: tuple[int, int], chunk: int = 8) -> torch.Tensor:
    """[T, H, W, 3] uint8 -> [T, 3, h, w] float in [0, 255], antialiased, a few frames at a time."""
    out = []
    for start in range(0, len(images), chunk):
        x = torch.from_numpy(images[start : start + chunk]).permute(0, 3, 1, 2).float()  # [t, 3, H, W]
        out.append(F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False))
    return torch.cat(out)


def find_cuts(video: np.ndarray, config: ReconConfig) -> list[int]:
    """Frame indices that start a new shot after a hard cut.

    Repeated frames (frame-interpolated or paused video) are collapsed first. A jump is a change
    between consecutive distinct frames that is ``cut_ratio`` times larger than the mean change
    of the ``cut_window`` distinct frames on each side, and at least ``cut_min_change``. A jump
    is a cut only if it brings a view the shot has not just shown: the new frame must differ from
    each of the ``cut_memory`` distinct frames before it by at least ``cut_novelty`` times the
    jump (frames of an earlier shot do not count). A generated video whose background pops back
    to an earlier state jumps to a view close to one it showed a few frames before, and stays one
    shot. Clips that all start from one photo restart from the very view the shot opened on: a
    jump back to within ``cut_restart`` times the jump of the shot's first frame (and no nearer to
    any other of its frames), more than ``2 * cut_window`` distinct frames into the shot, is a cut
    however short or slow the clip; a pop lands only near an earlier view.
    """
    return cuts_of_thumbnails(thumbnails(video), config)


def cuts_of_thumbnails(thumbs: torch.Tensor, config: ReconConfig) -> list[int]:
    """:func:`find_cuts` on [T, D] thumbnails."""
    distinct = [0]
    for t in range(1, len(thumbs)):
        if (thumbs[t] - thumbs[distinct[-1]]).abs().mean() > DUPLICATE_CHANGE:
            distinct.append(t)
    kept = thumbs[distinct]  # [K, D]
    change = (kept[1:] - kept[:-1]).abs().mean(dim=1).numpy()  # [K - 1]; change[i]: distinct i -> i + 1
    cuts, opening = [], 0  # opening: index into ``kept`` of the current shot's first frame
    for i, c in enumerate(change):
        lo, hi = max(0, i - config.cut_window), min(len(change), i + config.cut_window + 1)
        around = np.delete(change[lo:hi], i - lo)
        if c < config.cut_min_change or (len(around) > 0 and c <= config.cut_ratio * around.mean()):
            continue
        shot = (kept[opening : i + 1] - kept[i + 1]).abs().mean(dim=1).numpy()  # [S] distances to the shot's frames
        novelty = shot[-config.cut_memory :].min()  # to the nearest of the frames just shown
        # a new clip restarting from the very view this shot opened on (clips generated from one photo all do)
        restart = len(shot) > 2 * config.cut_window and shot[0] <= min(shot.min() + DUPLICATE_CHANGE,
                                                                        config.cut_restart * c)
        if restart or novelty >= config.cut_novelty * c:
            cuts.append(distinct[i + 1])
            opening = i + 1
    return cuts


def split_shots(n_frames: int, cuts: list[int]) -> list[range]:
    bounds = [0, *cuts, n_frames]
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def choose_shot(shots: list[range], shot: int | None, video: str) -> int:
    """The requested shot, or the longest one; says which was taken when there are several."""
    if shot is not None and not 0 <= shot < len(shots):
        raise DimensionXError(
            f"--shot {shot} does not exist: {video} has {len(shots)} shot(s) "
            f"({_describe(shots)}); pass --shot between 0 and {len(shots) - 1}"
        )
    chosen = shot if shot is not None else max(range(len(shots)), key=lambda k: len(shots[k]))
    if len(shots) > 1:
        log.info(
            "%s has %d shots separated by hard cuts (%s): reconstructing shot %d (frames %d-%d)%s",
            video, len(shots), _describe(shots), chosen, shots[chosen].start, shots[chosen].stop - 1,
            "" if shot is not None else ", the longest; pass --shot K for another",
        )
    if len(shots[chosen]) < MIN_FRAMES:
        raise DimensionXError(
            f"shot {chosen} of {video} has {len(shots[chosen])} frame(s), too few to reconstruct: "
            f"choose a longer shot with --shot ({_describe(shots)})"
        )
    return chosen


def _describe(shots: list[range]) -> str:
    return ", ".join(f"{k}: frames {s.start}-{s.stop - 1}" for k, s in enumerate(shots))


def sample_ids(shot: range, n: int) -> np.ndarray:
    """``n`` frame indices spread uniformly over ``shot`` (every frame if it has fewer)."""
    if n < MIN_FRAMES:
        raise DimensionXError(f"--frames {n} is too few: reconstruction needs at least {MIN_FRAMES} frames")
    if len(shot) <= n:
        return np.arange(shot.start, shot.stop)
    return np.unique(np.linspace(shot.start, shot.stop - 1, n).round().astype(np.int64))


def downscale(images: np.ndarray, max_size: int) -> np.ndarray:
    """[T, H, W, 3] uint8 -> same, with the longest side at most ``max_size`` px."""
    h, w = images.shape[1:3]
    if max_size <= 0 or max(h, w) <= max_size:
        return images
    scale = max_size / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return resize(images, size).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def save_pngs(paths: Sequence[Path], images: Sequence[np.ndarray]) -> None:
    """Writes each [H, W, 3] uint8 image as a PNG, several at once (zlib runs outside the GIL)."""
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda p, image: Image.fromarray(image).save(p, compress_level=1), paths, images))


def frame_names(source_ids: np.ndarray) -> list[str]:
    """The file names recon gives sampled frames: ``frame_<source index, 5 digits>.png``."""
    return [f"frame_{int(i):05d}.png" for i in source_ids]
