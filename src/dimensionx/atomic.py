"""Files written atomically: each is built under a hidden temporary name beside its destination and
renamed into place, so an interrupted run never leaves a half-written file; a killed run's temporaries
are removed by the next run (:func:`remove_leftover_temps`).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

from .interrupts import signals_deferred


TEMP_TAG = ".tmp-"  # in the names of temporary outputs: .NAME.tmp-PID-XXXXXXXX (see remove_leftover_temps)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_temp(path.parent, path.name, path.suffix)
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
            folders.append(new_temp(_made_parent(p), Path(p).name, folder=True))
        temps = [folder / Path(p).name for folder, p in zip(folders, paths)]
        yield temps
        with signals_deferred():
            for tmp, path in zip(temps, paths):
                os.replace(tmp, path)
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def new_temp(parent: Path, name: str, suffix: str = "", folder: bool = False) -> Path:
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
