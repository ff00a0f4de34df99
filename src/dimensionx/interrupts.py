"""Ctrl-C (SIGINT) and ``kill`` (SIGTERM) end every command the same way.

The first signal raises :class:`Interrupted` (a ``KeyboardInterrupt``, so no ``except
Exception`` swallows it) wherever Python is: importing torch, loading a model, denoising,
SfM. The ``finally`` blocks of the atomic writers then delete the temporary files and
folders, and the CLI prints one line and exits with 128 + the signal number (130, 143).
Later signals are ignored so that this cleanup finishes.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Raised by the first SIGINT or SIGTERM; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def handle_signals() -> None:
    """Makes SIGINT and SIGTERM raise :class:`Interrupted`.

    Called by the CLI at start, and again after importing a library that installs its own
    handler (pycolmap's glog prints a native stack dump on SIGTERM).
    """
    for signum in SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:  # e.g. SIGINT of a background job, nohup
            signal.signal(signum, _interrupt)


def _interrupt(signum: int, frame) -> None:
    for other in SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Holds SIGINT and SIGTERM back while a few renames commit an output, then delivers them."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
