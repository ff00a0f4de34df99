"""Importing the recon stage (pycolmap inside) leaves the process's signal handlers as they were."""

from __future__ import annotations

import signal
import subprocess
import sys

KILLED_AFTER_IMPORT = """
import os, signal, sys
{before}
import dimensionx.recon.sfm  # imports pycolmap, whose glog replaces SIGTERM's handler
os.kill(os.getpid(), signal.SIGTERM)
signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a bytecode boundary for a Python handler to run
print("alive")
"""


def run(before: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", KILLED_AFTER_IMPORT.format(before=before)], capture_output=True,
                          text=True, timeout=120)


def test_a_library_user_is_killed_by_sigterm_without_a_native_stack_dump():
    result = run("")
    assert result.returncode == -signal.SIGTERM, result.stderr[-2000:]
    assert "***" not in result.stderr and "stack trace" not in result.stderr


def test_a_handler_set_before_the_import_still_answers_sigterm():
    result = run("signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))")
    assert result.returncode == 7, result.stderr[-2000:]
    assert "***" not in result.stderr
