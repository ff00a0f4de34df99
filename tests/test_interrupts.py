"""Signal handlers belong to the CLI: importing the recon stage installs none, and works off the main thread."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import signal, threading
errors = []
def load():
    try:
        import dimensionx.recon.pipeline  # pycolmap inside: the app imports it in a worker thread
    except Exception as exc:
        errors.append(repr(exc))
worker = threading.Thread(target=load)
worker.start(); worker.join()
assert not errors, errors
handler = signal.getsignal(signal.SIGTERM)
assert getattr(handler, "__module__", "") != "dimensionx.interrupts", handler
print("ok")
"""


def test_recon_imports_in_a_worker_thread_without_touching_signal_handlers():
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
