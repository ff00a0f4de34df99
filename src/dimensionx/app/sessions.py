"""Per-session output folders under the app's share folder, removed after a time to live.

A browser session owns ``<root>/<session id>/``; each job writes a numbered folder inside it
(``video-001``, ``scene-002``). Nothing is ever written or read outside ``root``.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

from ..errors import DimensionXError

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{6,64}")


class Sessions:
    def __init__(self, root: str | Path, ttl_seconds: float):
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()

    def folder(self, session_id: str) -> Path:
        """The session's folder (created, and its clock restarted); refuses ids that are not plain names."""
        if not SESSION_ID.fullmatch(session_id or ""):
            raise DimensionXError(f"session id {session_id!r} is not a plain name: reload the page to start a new session")
        folder = self.root / session_id
        folder.mkdir(exist_ok=True)
        folder.touch()
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
        """Removes session folders untouched for longer than the time to live; returns them."""
        deadline = (time.time() if now is None else now) - self.ttl_seconds
        removed = []
        with self._lock:
            for folder in self.root.iterdir():
                if folder.is_dir() and not folder.is_symlink() and folder.stat().st_mtime < deadline:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
        return removed
