"""The app's own job queue: one worker thread owns the accelerator and runs the jobs first in, first out.

A job belongs to its browser session, not to a page: a page that goes away (reload, tab closed)
while its job waits or runs loses nothing; the job runs and records its result in the session
folder. A session has at most one job waiting or running (a second one is refused in words).
The worker records how long each stage of a job took (the progress bars its code opens, and the
stretches between them, e.g. loading before the denoising steps, decoding and writing after
them); the next job of the same kind gets its ETA from those measured times, scaled by its steps.
Cancel removes the session's waiting job and stops its running one at its next progress step.
The queue remembers each session's newest job, so a job that fails or is cancelled while no page
waits for it is told to the next page of the session that opens or polls, once (``untold``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import logging
import threading
import time
from typing import Any, Callable, ContextManager

from ..errors import DimensionXError

log = logging.getLogger(__name__)

CANCELLED = "the job was cancelled; nothing was written. Press the button again to restart it"
FAILED = "the job failed ({}); the app keeps serving, and its log has the details"  # the error's type name
WAITING, RUNNING, DONE, FAILED_STATE, CANCELLED_STATE = "waiting", "running", "done", "failed", "cancelled"


class JobCancelled(DimensionXError):
    """The user pressed Cancel; the job stopped at its next progress step (or never started) and wrote nothing."""


@dataclasses.dataclass
class Bar:
    """The innermost progress bar open in the running job."""

    key: int  # which bar (a new key: a new bar)
    index: int  # steps done
    length: int | None  # steps in all, if known
    desc: str | None = None


@dataclasses.dataclass
class Piece:
    """One stretch of a job: a progress bar, or the time between bars (``length`` None)."""

    seconds: float = 0.0
    length: int | None = None  # a bar's steps
    key: int | None = None  # the bar's key


@dataclasses.dataclass
class Job:
    id: str
    session: str
    what: str  # "Generate": the button, as the page names it
    run: Callable[[], Any]  # the work, called in the worker thread; returns the result
    steps: int | None  # its denoising steps (scales the measured step time for its ETA); None: as measured
    stages: tuple[str, str]  # names of the stretches before the first bar and after a bar ("loading", "writing")
    state: str = WAITING
    result: Any = None
    error: DimensionXError | None = None
    pieces: list[Piece] = dataclasses.field(default_factory=list)  # measured so far; the last one is under way
    bar: Bar | None = None
    since: float = 0.0  # the queue's clock when it was queued, then when the last piece began
    told: bool = False  # its failure or cancel has been shown in a page
    asked: Any = None  # what it was asked with, as the app records it (``callbacks.Asked``): a reloaded page shows it
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)
    finished: threading.Event = dataclasses.field(default_factory=threading.Event)


@dataclasses.dataclass
class Status:
    """What a page shows of a job."""

    what: str
    state: str
    place: int = 0  # waiting: 1 for the next job to run
    waiting: int = 0  # waiting: how many jobs wait
    stage: str = ""  # running: "step 12/50" or a stretch's name
    index: int | None = None  # running, in a bar: steps done of ``length``
    length: int | None = None
    fraction: float | None = None  # waiting: the share of the wait gone by; running, between bars: of the stretch
    seconds: float | None = None  # waiting: until its result; running: left; None: not measured yet
    unknown: str | None = None  # waiting: the kind of job (its own, or one ahead) never measured, which makes the time unknown
    stage_seconds: float | None = None  # running, a kind never measured: the time left of its open bar only

    def line(self) -> str:
        """"waiting: place 1 of 2, about 40 s" or "running: step 12/50, about 30 s left"."""
        if self.state == WAITING:
            when = f"about {self.seconds:.0f} s" if self.seconds is not None else "time unknown" + (
                f" until a first {self.unknown} has run" if self.unknown else "")
            return f"waiting: place {self.place} of {self.waiting}, {when}"
        if self.seconds is not None:
            return f"running: {self.stage}, about {self.seconds:.0f} s left"
        if self.stage_seconds is not None:
            return f"running: {self.stage}, about {self.stage_seconds:.0f} s left in this stage"
        return f"running: {self.stage}"


class Jobs:
    """The queue and its worker thread. ``track()`` is entered around every job in the worker (the UI's
    progress hook, which calls ``progress`` and ``check`` at every step)."""

    def __init__(self, max_waiting: int = 20, track: Callable[[], ContextManager] = contextlib.nullcontext,
                 clock: Callable[[], float] = time.monotonic):
        self.max_waiting = max_waiting  # more waiting jobs are refused
        self.track = track
        self._clock = clock  # seconds
        self._cond = threading.Condition()
        self._waiting: collections.deque[Job] = collections.deque()
        self._running: Job | None = None
        self._last: dict[str, Job] = {}  # session -> its newest job (a page waiting for it finds it by id)
        self._measured: dict[str, Job] = {}  # kind -> its last finished job (its pieces and steps)
        self._ids = itertools.count(1)
        self._worker: threading.Thread | None = None

    def submit(self, session: str, what: str, run: Callable[[], Any], steps: int | None = None,
               stages: tuple[str, str] = ("starting", "finishing"), asked: Any = None) -> Job:
        """Queues ``run`` for the session; refuses a second job while one of the session waits or runs."""
        with self._cond:
            busy = self._last.get(session)
            if busy is not None and busy.state in (WAITING, RUNNING):
                raise DimensionXError(f"{busy.what} of this browser is still {busy.state}: wait for its result, or press "
                                      "Cancel, before starting another job")
            if len(self._waiting) >= self.max_waiting:
                raise DimensionXError(f"the queue is full ({len(self._waiting)} jobs wait for the accelerator): "
                                      "try again in a few minutes")
            job = Job(f"job-{next(self._ids)}", session, what, run, steps, stages, since=self._clock(), asked=asked)
            self._last[session] = job
            self._waiting.append(job)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="dimensionx-jobs", daemon=True)
                self._worker.start()
            self._cond.notify_all()
        return job

    def find(self, session: str, job_id: str | None) -> Job | None:
        """The session's newest job if its id is ``job_id`` (a page finds only its own session's job)."""
        job = self._last.get(session)
        return job if job is not None and job.id == job_id else None

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting:
                    self._cond.wait()
                job = self._running = self._waiting.popleft()
                job.state, job.since, job.pieces = RUNNING, self._clock(), [Piece()]
            try:
                with self.track():
                    result, error = job.run(), None
            except DimensionXError as exc:
                result, error = None, exc
            except Exception as exc:  # a bug or an environment problem: logged in full, shown in one line
                log.exception("%s failed", job.what)
                result, error = None, DimensionXError(FAILED.format(type(exc).__name__))
            with self._cond:
                self._close_piece(job, self._clock())
                job.result, job.error, self._running = result, error, None
                job.state = DONE if error is None else CANCELLED_STATE if isinstance(error, JobCancelled) else FAILED_STATE
                if error is None:
                    self._measured[job.what] = job
                job.finished.set()
                self._cond.notify_all()

    @staticmethod
    def _close_piece(job: Job, now: float) -> None:
        job.pieces[-1].seconds = now - job.since
        job.since = now

    def progress(self, bar: Bar | None) -> None:
        """From the worker: the innermost open bar of the running job, or None between bars."""
        with self._cond:
            job = self._running
            if job is None or threading.current_thread() is not self._worker:
                return
            if (bar.key if bar else None) != job.pieces[-1].key:  # a bar opened, closed, or another one took over
                self._close_piece(job, self._clock())
                job.pieces.append(Piece(length=bar.length, key=bar.key) if bar else Piece())
            job.bar = bar

    def check(self) -> None:
        """Raises ``JobCancelled`` in the worker when the running job's session pressed Cancel."""
        job = self._running
        if job is not None and job.cancel.is_set() and threading.current_thread() is self._worker:
            raise JobCancelled(CANCELLED)

    def cancel(self, session: str, timeout: float = 0.0) -> bool:
        """Removes the session's waiting job and asks its running job to stop at its next step (waiting up to
        ``timeout`` s until it has); whether the session had a job to cancel."""
        with self._cond:
            job = self._last.get(session)
            if job is None or job.state not in (WAITING, RUNNING):
                return False
            if job.state == WAITING:
                self._waiting.remove(job)
                job.state, job.error = CANCELLED_STATE, JobCancelled(CANCELLED)
                job.finished.set()
                return True
            job.cancel.set()
        job.finished.wait(timeout)
        return True

    def cancel_all(self, timeout: float) -> None:
        """Cancels every waiting and the running job, waiting up to ``timeout`` s for it to stop (the server is closing)."""
        with self._cond:
            sessions = {job.session for job in self._waiting}
            running = self._running
        for session in sessions:
            self.cancel(session)
        if running is not None:
            self.cancel(running.session, timeout)

    def status(self, job: Job) -> Status:
        """Where ``job`` stands: its place and ETA while it waits, its stage and time left while it runs."""
        with self._cond:
            now = self._clock()
            if job.state == WAITING:
                place = self._waiting.index(job) + 1
                ahead = [self._left(self._running, now)] if self._running else []
                ahead += [self._estimate(j) for j in itertools.islice(self._waiting, place)]
                seconds, waited = None if None in ahead else sum(ahead), now - job.since
                fraction = waited / (waited + seconds) if seconds else None
                chain = [job, *([self._running] if self._running else []), *itertools.islice(self._waiting, place - 1)]
                unknown = next((j.what for j in chain if j.what not in self._measured), None)
                return Status(job.what, WAITING, place, len(self._waiting), fraction=fraction, seconds=seconds, unknown=unknown)
            if job.state != RUNNING:
                return Status(job.what, job.state)
            bar, elapsed = job.bar, now - job.since
            status = Status(job.what, RUNNING, seconds=self._left(job, now))
            if job.pieces[-1].key is not None and bar is not None:
                status.stage = f"{bar.desc or 'step'} {bar.index}/{bar.length or '?'}"
                status.index, status.length = bar.index, bar.length
                if status.seconds is None:
                    status.stage_seconds = self._bar_left(job, elapsed)
            else:
                status.stage = job.stages[len(job.pieces) > 1]
                expected = self._expected(job, len(job.pieces) - 1)
                status.fraction = min(elapsed / expected, 0.99) if expected else None
            return status

    def untold(self, session: str) -> Job | None:
        """The session's newest job if it failed or was cancelled and no page has shown that yet; it counts as shown from
        now on (the caller shows it)."""
        with self._cond:
            job = self._last.get(session)
            if job is None or job.state not in (FAILED_STATE, CANCELLED_STATE) or job.told:
                return None
            job.told = True
            return job

    def newest(self, session: str) -> Job | None:
        """The session's newest job, in whatever state."""
        return self._last.get(session)

    def current(self, session: str) -> Job | None:
        """The session's job waiting or running, if any."""
        job = self._last.get(session)
        return job if job is not None and job.state in (WAITING, RUNNING) else None

    def active(self, session: str) -> Status | None:
        """The status of the session's job waiting or running, if any."""
        job = self.current(session)
        return None if job is None else self.status(job)

    def _pieces(self, job: Job) -> list[float] | None:
        """Seconds each piece of ``job`` should take, from the last finished job of its kind: its bar of denoising
        steps (as many steps as that job had) scaled by ``job``'s steps, every other piece as measured (frames
        decoded, iterations trained do not follow the steps); None before a job of its kind has finished."""
        measured = self._measured.get(job.what)
        if measured is None:
            return None
        scale = job.steps / measured.steps if job.steps and measured.steps else 1.0
        return [p.seconds * scale if p.length is not None and p.length == measured.steps else p.seconds
                for p in measured.pieces]

    def _estimate(self, job: Job) -> float | None:
        """Seconds a job not yet started will take."""
        pieces = self._pieces(job)
        return None if pieces is None else sum(pieces)

    def _expected(self, job: Job, n: int) -> float | None:
        """Seconds the running job's ``n``-th piece should take."""
        pieces = self._pieces(job)
        return pieces[n] if pieces and n < len(pieces) else None

    @staticmethod
    def _bar_left(job: Job, elapsed: float) -> float | None:
        """Seconds the running ``job``'s open bar still needs at its own pace (``elapsed`` s since it opened)."""
        bar = job.bar
        if job.pieces[-1].key is not None and bar is not None and bar.index and bar.length:
            return (bar.length - bar.index) * elapsed / bar.index
        return None

    def _left(self, job: Job, now: float) -> float | None:
        """Seconds the running ``job`` still needs: its bar at its own pace, the rest as measured before; None for a
        kind never measured (its later stages are unknown)."""
        n, elapsed = len(job.pieces) - 1, now - job.since
        pieces = self._pieces(job)
        if pieces is None:
            return None
        here = self._bar_left(job, elapsed)
        if here is None:
            expected = self._expected(job, n)
            here = None if expected is None else max(expected - elapsed, 0.0)
        return None if here is None else here + sum(pieces[n + 1:])
