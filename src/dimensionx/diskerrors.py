"""The machine's refusals to write (a full disk, a quota, a read-only disk, the file-size limit): how to recognise
them behind a library's own exception types, and the one line that names them (the CLI's handler, checkpoints)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import resource
from pathlib import Path
from typing import Iterator

FREE_SPACE = "free some space or choose an output folder on another disk"
DISK_FULL = {  # OSErrors of the machine, not of the command: what happened, and the fix
    errno.ENOSPC: ("no space left on the device", FREE_SPACE),
    errno.EDQUOT: ("the disk quota is used up", FREE_SPACE),
    errno.EROFS: ("the file system is read-only", "choose an output folder on a writable disk"),
    errno.EFBIG: ("the file reached this process's file-size limit (`ulimit -f`)", "raise the limit (`ulimit -f unlimited`)"),
}
RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")  # the end of a Rust std::io::Error's message (safetensors, tokenizers)


def cannot_write(where: str | Path, code: int, then: str = "run the command again (its temporary files were removed)") -> str:
    """The one line for a write to ``where`` that the machine refused with ``code`` (a key of :data:`DISK_FULL`):
    what happened, the fix, then what to do next (``then``)."""
    problem, fix = DISK_FULL[code]
    return f"cannot write {where}: {problem}; {fix}, then {then}"


def machine_errno(exc: BaseException) -> int | None:
    """The errno of the machine's error behind ``exc``: an ``OSError``'s, or the one that libraries written in Rust
    (safetensors, tokenizers) leave only in the message of their own exception types."""
    if isinstance(exc, OSError):
        return exc.errno
    found = RUST_OS_ERROR.search(str(exc))
    return int(found.group(1)) if found else None


def reached_size_limit(*files: Path) -> bool:
    """Whether one of ``files`` is as large as this process's file-size limit (`ulimit -f`): where a writer that
    reports no errno (ffmpeg, torch.save) stopped, the machine refused it EFBIG."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return limit != resource.RLIM_INFINITY and any(f.is_file() and f.stat().st_size >= limit for f in files)


@contextlib.contextmanager
def as_os_errors(path: str | Path) -> Iterator[None]:
    """Raises a library's own exception that carries the machine's write error as that ``OSError`` of ``path``,
    for the CLI's one handler to name (a file-size limit met by safetensors or tokenizers)."""
    try:
        yield
    except Exception as exc:
        code = machine_errno(exc)
        if isinstance(exc, OSError) or code is None:
            raise
        raise OSError(code, os.strerror(code), str(path)) from exc
