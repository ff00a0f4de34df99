"""Per-session output folders under the app's share folder, removed after a time to live.

The share folder holds only what the app made: its root carries the marker file ``ROOT_MARKER``
and each session folder ``SESSION_MARKER``. A browser session owns ``<root>/<session id>/``
(mode 0700); each job writes a numbered folder inside it (``video-001``, ``scene-002``). The
sweep removes only folders that carry the session marker, never follows a link, and nothing is
ever written or read outside ``root``. A folder that already holds other files is refused as a
root, so that no user's files can be swept.
"""

from __future__ import annotations

import re
import shutil
import stat
import threading
import time
from pathlib import Path

from ..errors import DimensionXError

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{6,64}")
ROOT_MARKER = ".dimensionx-app-root"  # in the share folder: the app made it and may sweep in it
SESSION_MARKER = ".dimensionx-session"  # in a session folder: the app made it; its mtime is the session's last use
PRIVATE = 0o700  # session folders: the server's user only


def claim_root(root: Path) -> Path:
    """``root`` created or adopted as the app's share folder (marked); a non-empty folder the app did not mark is refused."""
    marker = root / ROOT_MARKER
    if root.is_dir() and not marker.is_file() and any(root.iterdir()):
        raise DimensionXError(f"--share-dir {root} already holds files the app did not make, and the app deletes expired "
                              "sessions there: pass a new or empty folder (e.g. a subfolder of it)")
    root.mkdir(mode=PRIVATE, parents=True, exist_ok=True)
    marker.touch()
    return root


def is_session_folder(path: Path) -> bool:
    """A real folder (not a link) holding the app's session marker as a plain file (not a link)."""
    try:
        return stat.S_ISDIR(path.lstat().st_mode) and stat.S_ISREG((path / SESSION_MARKER).lstat().st_mode)
    except FileNotFoundError:
        return False


class Sessions:
    def __init__(self, root: str | Path, ttl_seconds: float):
        self.root = claim_root(Path(root).expanduser().resolve())
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()

    def folder(self, session_id: str) -> Path:
        """The session's folder (created, and its clock restarted); refuses ids that are not plain names."""
        if not SESSION_ID.fullmatch(session_id or ""):
            raise DimensionXError(f"session id {session_id!r} is not a plain name: reload the page to start a new session")
        folder = self.root / session_id
        try:
            folder.mkdir(mode=PRIVATE)
            (folder / SESSION_MARKER).touch()
        except FileExistsError:
            pass
        if not is_session_folder(folder):  # a name the app did not make: never written into, never swept
            raise DimensionXError(f"session {session_id!r} is not one of this app's sessions: reload the page to start a new one")
        (folder / SESSION_MARKER).touch()
        return folder

    def new_job(self, session_id: str, kind: str) -> Path:
        """A fresh, not yet existing path ``<session>/<kind>-NNN`` for one job's output."""
        folder = self.folder(session_id)
        with self._lock:
            number = 1 + sum(1 for p in folder.iterdir() if p.name.startswith(f"{kind}-"))
            return folder / f"{kind}-{number:03d}"

    def resolve(self, session_id: str, relative: str) -> Path:
        """``relative`` inside the session's folder; a path leading out of it (``..``, absolute, a link) is refused."""
        folder = self.folder(session_id)
        path = (folder / relative).resolve()
        if not path.is_relative_to(folder):
            raise DimensionXError(f"{relative!r} is outside this session's folder: only files the app wrote for you can be opened")
        return path

    def sweep(self, now: float | None = None) -> list[Path]:
        """Removes the app's session folders unused for longer than the time to live; returns them."""
        deadline = (time.time() if now is None else now) - self.ttl_seconds
        removed = []
        with self._lock:
            for folder in self.root.iterdir():
                if is_session_folder(folder) and (folder / SESSION_MARKER).stat().st_mtime < deadline:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
        return removed
