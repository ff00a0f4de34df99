"""Test helper: ``dimensionx app`` started as a user starts it, on the tiny model, in a subprocess."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

TINY_VIDEO = "model: tiny\nsteps: 2\nframes: 9\nprompt: a red barn in a field\n"  # seconds on a CPU
TINY_RECON = "max_size: 128\niterations: 10\norbit_frames: 6\nholdout: 8\n"  # the synthetic clip in ~10 s on a CPU


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(folder: Path, *flags: str, timeout: float = 120.0) -> Iterator[tuple[str, Path]]:
    """Yields (the app's URL, its log file) once it answers; stops it afterwards. Its process id is in
    ``folder/app.pid`` (``slowed``)."""
    (folder / "video.yaml").write_text(TINY_VIDEO)
    (folder / "recon.yaml").write_text(TINY_RECON)
    port = free_port()
    log = folder / "app.log"
    command = [sys.executable, "-m", "dimensionx.cli", "app", "--model", "tiny", "--device", "cpu", "--port", str(port),
               "--share-dir", str(folder / "share"), "--video-config", str(folder / "video.yaml"),
               "--recon-config", str(folder / "recon.yaml"), *flags]
    with open(log, "w") as out:
        # one torch thread: on a 2-core machine the browser and the tests share the cores, and two torch threads
        # spinning against them made a tiny-model step 30x slower under load
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    (folder / "app.pid").write_text(str(process.pid))
    try:
        deadline = time.monotonic() + timeout
        while not re.search(r"Running on local URL:\s+(http://\S+)", log.read_text()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dimensionx app did not start (exit {process.poll()}):\n{log.read_text()}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def slowed(folder: Path, share: float = 0.1, period: float = 0.05) -> Iterator[None]:
    """The app of ``running_app(folder)`` gets only ``share`` of the time (SIGSTOP and SIGCONT in turn), as on a machine
    ten times slower: a tiny-model Generate of 1000 steps lasts about a minute instead of seconds, so a browser has time
    to reload or press Cancel while it runs (a real one takes minutes). The browser itself is not slowed."""
    pid = int((folder / "app.pid").read_text())
    done = threading.Event()

    def cycle():
        while not done.is_set():
            os.kill(pid, signal.SIGSTOP)
            done.wait(period * (1 - share))
            os.kill(pid, signal.SIGCONT)
            done.wait(period * share)

    thread = threading.Thread(target=cycle, name="slowed-app", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        os.kill(pid, signal.SIGCONT)
