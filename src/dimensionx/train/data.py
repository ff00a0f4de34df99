"""Training clips: finding them (CSV or folder form), checking them, and sampling their frames.

Two layouts are read, as the original trainer's:

- CSV form: a ``.csv`` file with a header, one clip per row: the video path (relative to the
  CSV's folder, the data root) and its caption. Columns named ``video`` and ``caption`` are used
  when present, else the first two. ``--data`` may name the file or a folder holding ``metadata.csv``.
- folder form: ``videos/NAME.mp4`` with ``captions/NAME.txt``.

Every row is checked before any model loads: a missing file, an unreadable video, a video cut
short or damaged (fewer frames decode than its header declares), an empty caption or a clip too
short is reported (a warning, and ``data_report.json``) and skipped; zero usable rows is an error.

Frames are sampled as the original: ``skip`` frames are dropped at each end, then ``frames``
indices are taken at a uniform stride; a clip with fewer usable frames is cut to the largest
4k+1 count and padded with its last frame. Each frame is centre-cropped to the model's aspect
and resized to its size.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from pathlib import Path

import numpy as np

from ..errors import DimensionXError
from ..videofiles import count_frames, VIDEO_SUFFIXES

log = logging.getLogger(__name__)

CSV_NAME = "metadata.csv"
MIN_USABLE_FRAMES = 5  # one 4-frame latent group plus the first frame


@dataclasses.dataclass(frozen=True)
class Clip:
    video: Path  # absolute path
    caption: str
    frames: int  # frames in the file


@dataclasses.dataclass(frozen=True)
class BadRow:
    row: str  # "line 3" (CSV) or the file stem (folder form)
    video: str
    reason: str


@dataclasses.dataclass
class ClipList:
    root: Path
    clips: list[Clip]  # pre-encoded data: ``video`` is the clip's safetensors file
    bad: list[BadRow]
    encoded: dict | None = None  # pre-encoded data: {"frames", "height", "width"} the files were encoded at

    def report(self) -> dict:
        return {"root": str(self.root), "usable": len(self.clips), "skipped": len(self.bad),
                "pre_encoded": self.encoded is not None, "bad_rows": [dataclasses.asdict(b) for b in self.bad]}


def find_clips(data: str | Path, skip: int) -> ClipList:
    """Reads and checks every row of ``data``; raises if none is usable."""
    path = Path(data)
    if path.is_file() and path.suffix.lower() == ".csv":
        root, rows = path.parent, _csv_rows(path)
    elif path.is_dir() and (path / CSV_NAME).is_file():
        root, rows = path, _csv_rows(path / CSV_NAME)
    elif path.is_dir() and (path / "videos").is_dir():
        root, rows = path, _folder_rows(path)
    else:
        raise DimensionXError(
            f"--data {data}: not a CSV file, nor a folder with {CSV_NAME} or videos/ + captions/. Pass a CSV "
            "(header `video,caption`, paths relative to its folder) or a folder of videos/NAME.mp4 and captions/NAME.txt"
        )
    clips, bad = [], []
    for row, video, caption in rows:
        reason, frames = _check_row(root, video, caption, skip)
        if reason:
            bad.append(BadRow(row, video, reason))
        else:
            clips.append(Clip((root / video).resolve(), caption.strip(), frames))
    for b in bad:
        log.warning("skipping %s (%s): %s", b.row, b.video, b.reason)
    if not clips:
        raise DimensionXError(f"--data {data}: none of its {len(bad)} rows is usable (see the reasons above); "
                              "fix the paths or captions, or point --data at another dataset")
    if bad:
        log.warning("%d of %d rows skipped; training on %d clips", len(bad), len(bad) + len(clips), len(clips))
    return ClipList(root, clips, bad)


def _csv_rows(path: Path) -> list[tuple[str, str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            table = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DimensionXError(f"--data {path} is not a readable CSV file ({exc})") from None
    if not table or len(table[0]) < 2:
        raise DimensionXError(f"--data {path}: the first line must be a header with at least two columns (video,caption)")
    header = [h.strip().lower() for h in table[0]]
    video_col = header.index("video") if "video" in header else 0
    caption_col = header.index("caption") if "caption" in header else 1
    rows = []
    for number, fields in enumerate(table[1:], start=2):
        if not any(field.strip() for field in fields):
            continue
        get = lambda i: fields[i].strip() if i < len(fields) else ""  # noqa: E731
        rows.append((f"line {number}", get(video_col), get(caption_col)))
    return rows


def _folder_rows(root: Path) -> list[tuple[str, str, str]]:
    rows = []
    for video in sorted(p for p in (root / "videos").iterdir() if p.suffix.lower() in VIDEO_SUFFIXES):
        caption_file = root / "captions" / f"{video.stem}.txt"
        caption = caption_file.read_text(encoding="utf-8") if caption_file.is_file() else ""
        rows.append((video.stem, str(video.relative_to(root)), caption))
    return rows


def _check_row(root: Path, video: str, caption: str, skip: int) -> tuple[str | None, int]:
    if not video:
        return "no video path", 0
    if not caption.strip():
        return "empty caption", 0
    path = root / video
    if not path.is_file():
        return f"file not found ({path})", 0
    try:
        frames = count_frames(path)  # every frame decoded: a clip cut short is refused, not padded with black frames
    except DimensionXError as exc:
        return str(exc), 0
    if frames - 2 * skip < MIN_USABLE_FRAMES:
        return f"too short: {frames} frames, needs at least {2 * skip + MIN_USABLE_FRAMES} ({skip} skipped at each end)", 0
    return None, frames


def frame_indices(available: int, frames: int, skip: int) -> np.ndarray:
    """[frames] indices into a clip of ``available`` frames, as the original sampler picks them."""
    start, end = skip, available - skip
    usable = end - start
    if usable >= frames:
        stride = usable // frames
        return start + stride * np.arange(frames)
    kept = (usable - 1) // 4 * 4 + 1  # the largest 4k + 1 that fits
    indices = start + np.arange(kept)
    return np.concatenate([indices, np.full(frames - kept, indices[-1])])  # padded with the last frame


def load_clip(clip: Clip, frames: int, skip: int, height: int, width: int):
    """[frames, 3, height, width] float32 in [-1, 1]: sampled, centre-cropped and resized."""
    import torch
    import torch.nn.functional as F

    from ..videofiles import read_frames

    video, _ = read_frames(clip.video)  # [T, H, W, 3] uint8
    picked = video[frame_indices(len(video), frames, skip)]
    x = torch.from_numpy(np.ascontiguousarray(picked)).permute(0, 3, 1, 2).float()  # [F, 3, H, W] 0..255
    h, w = x.shape[-2:]
    scale = max(height / h, width / w)
    crop_h, crop_w = round(height / scale), round(width / scale)
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    x = x[..., top : top + crop_h, left : left + crop_w]
    if (crop_h, crop_w) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return (x / 127.5 - 1.0).clamp(-1.0, 1.0)
