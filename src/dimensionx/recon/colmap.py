"""pycolmap, imported so that the process keeps its own signal handlers.

Importing pycolmap starts glog, which replaces the SIGTERM handler at the C level with one that
prints a native stack dump (Python's ``signal.getsignal`` still reports the old one). The recon
stage imports pycolmap only from here: the handlers Python knows of are put back right after the
import, so Ctrl-C and ``kill`` behave as they did before (the CLI's one-line ending, or the
default of a program using dimensionx as a library). Off the main thread, where Python cannot
set handlers, the import is left as it is.
"""

from __future__ import annotations

import signal
import threading

_GLOG_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # those of glog's failure signals that Python handles
_before = {s: signal.getsignal(s) for s in _GLOG_SIGNALS}

import pycolmap  # noqa: E402  (between the two halves of the restore)

if threading.current_thread() is threading.main_thread():
    for _signum, _handler in _before.items():
        if _handler is not None:  # None: set outside Python, which cannot put it back
            signal.signal(_signum, _handler)

__all__ = ["pycolmap"]
