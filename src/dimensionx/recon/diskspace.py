"""A full disk ends a recon run in one line, with nothing written.

pycolmap writes its feature database from C++ threads and aborts the whole process when the disk
fills (SQLite "database or disk is full"), which Python cannot catch: the room SfM needs is
estimated and checked before it starts (:func:`check_free_space`). A Python writer that meets a
full disk later (the PLY, the renders) raises ``OSError`` ENOSPC, which :func:`disk_space_checked`
turns into the same message once the temporary scene folder is gone.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from pathlib import Path
from typing import Iterator

from ..errors import DimensionXError

SIFT_BYTES = 128 + 24  # per keypoint in the database: a uint8 descriptor and 6 float32 of its frame
MATCH_BYTES = 2 * 8  # per match of a pair, stored twice (raw and verified), two uint32 indices each


def sfm_bytes(frames: int, pairs: int, width: int, height: int, max_features: int) -> int:
    """An upper bound of what SfM writes for ``frames`` images of ``width`` x ``height`` px matched in ``pairs``:
    the frames as PNG (at most raw RGB), every keypoint and every match it may keep."""
    return frames * (3 * width * height + max_features * SIFT_BYTES) + pairs * max_features * MATCH_BYTES


def check_free_space(folder: Path, needed: int, out: str) -> None:
    """Refuses to start writing ``needed`` bytes into ``folder`` (of the output ``out``) where they do not fit."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise disk_full(out or folder, f"{free / 1e6:.0f} MB free, structure from motion needs up to "
                        f"{needed / 1e6:.0f} MB")


@contextlib.contextmanager
def disk_space_checked(out: str) -> Iterator[None]:
    """Turns a full disk met inside the block (whose temporary files are already removed) into the one line."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise disk_full(out, exc.strerror) from None


def disk_full(out: str | Path, detail: str) -> DimensionXError:
    folder = Path(out).absolute().parent
    return DimensionXError(f"the disk of {folder} is full for the scene {out} ({detail}): nothing was written; "
                           "free some space there or pass --out on another disk")
