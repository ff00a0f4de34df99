"""One job at a time on the accelerator, and cancellation of the running job at its next step."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator

from ..errors import DimensionXError


CANCELLED = "the job was cancelled; nothing was written. Press the button again to restart it"


class JobCancelled(DimensionXError):
    """The user pressed Cancel; the job stopped at its next progress step and wrote nothing."""


class Jobs:
    """A lock that runs jobs one after another, a cancel flag per session checked at every progress step,
    and what each session's running job is doing (for a page opened while it runs)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._flags: dict[str, threading.Event] = {}
        self._running = threading.local()
        self._status: dict[str, tuple[str, str]] = {}  # session id -> (its running job, what it is doing)

    @contextlib.contextmanager
    def run(self, session_id: str, what: str = "a job") -> Iterator[None]:
        flag = self._flags.setdefault(session_id, threading.Event())
        flag.clear()
        with self._lock:
            self._running.flag, self._running.session = flag, session_id
            self._status[session_id] = (what, "")
            try:
                yield
            finally:
                self._running.flag = self._running.session = None
                self._status.pop(session_id, None)

    def report(self, progress: str) -> None:
        """Records what the job of this thread is doing (its stage, step and ETA)."""
        session = getattr(self._running, "session", None)
        if session in self._status:
            self._status[session] = (self._status[session][0], progress)

    def status(self, session_id: str) -> str:
        """One line on the session's running job ("Generate is running: step 12/50, about 30 s left"), or ""."""
        what, progress = self._status.get(session_id, ("", ""))
        return f"{what} is running{': ' + progress if progress else ''}" if what else ""

    def cancel_all(self, timeout: float) -> None:
        """Cancels every session's job and waits up to ``timeout`` s for the running one to stop (the server is closing)."""
        for flag in list(self._flags.values()):
            flag.set()
        if self._lock.acquire(timeout=timeout):
            self._lock.release()

    def cancel(self, session_id: str, timeout: float = 0.0) -> None:
        """Asks the session's running job to stop at its next step; waits up to ``timeout`` s until it has."""
        if session_id in self._flags:
            self._flags[session_id].set()
        deadline = time.monotonic() + timeout
        while session_id in self._status and time.monotonic() < deadline:
            time.sleep(0.1)

    def check(self) -> None:
        """Raises ``JobCancelled`` in the thread of a job whose session asked to cancel."""
        flag = getattr(self._running, "flag", None)
        if flag is not None and flag.is_set():
            raise JobCancelled(CANCELLED)
