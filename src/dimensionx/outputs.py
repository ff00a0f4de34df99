"""Where a command may write: the output folder rules and the marker that proves a folder is ours.

A command writes only a new folder or one it made itself (``OUTPUT_MARKER``); ``--overwrite`` never
replaces ``/``, the home folder, the working folder or its parents, and keeps the old output until the
new one is complete (:func:`atomic_dir` for outputs built in one go, :func:`start_output_dir` /
:func:`finish_output_dir` for outputs filled over a long, resumable run).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

from .atomic import atomic_file, new_temp
from .errors import DimensionXError
from .interrupts import signals_deferred


OUTPUT_MARKER = ".dimensionx-output.json"  # written into every output folder: proof that we wrote it


def check_writable(path: Path, overwrite: bool, what: str = "--out") -> None:
    """Refuses a file output that exists (unless ``overwrite``), names a folder, or cannot be written;
    ``what``: the flag or setting that chose ``path``, named in the fix."""
    path = Path(path)
    if path.is_dir():
        raise DimensionXError(f"{path} is a folder, but a file is written here: pass a file name such as {path / 'out.mp4'}")
    if (path.exists() or path.is_symlink()) and not overwrite:  # a link, even one to nowhere, is the user's
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
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yields a temporary folder beside ``path``; moves it onto ``path`` if the block succeeds.

    An existing ``path`` (``overwrite``, and only a folder this tool wrote: see
    :func:`check_replaceable`) is moved aside first and deleted only once the new folder is
    in place; if that rename fails, the old folder is moved back.
    """
    path = Path(path)
    check_output_dir(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_temp(path.parent, path.name, folder=True)
    try:
        yield tmp
        mark_output_dir(tmp)
        _replace_dir(tmp, path, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
