"""The scheduler's per-step noise, drawn ahead on a CPU thread: same numbers, off the critical path.

CogVideoX's DPM scheduler draws fresh Gaussian noise of the latents' shape once or twice per
step, from the pipeline's generator. With a CPU generator (the reproducible choice: the same
seed gives the same video on every device) each draw is a single-threaded bf16 ``randn`` of
1.1 M numbers, about 37 ms; a step with its transformer forecast by the step cache (``fast``)
then waits for the CPU far longer than for the GPU.

:func:`prefetch_step_noise` gives the pipeline a subclass of its own scheduler class, built from
the same config (:class:`PrefetchedNoise`); no method of a library object is replaced. Its ``step``
runs the scheduler's own ``step`` inside a torch function mode that answers
``torch.randn(..., generator=g)`` from a queue that a thread fills by calling that very
``torch.randn`` on ``g``, in order, ahead of time. Only the thread
touches ``g`` once it has started, so the draws and their order are those of stock diffusers:
the video is bit-identical. ``set_timesteps``, which a pipeline calls before it draws its
initial latents, stops the thread and rewinds ``g`` to its first unused draw.
"""

from __future__ import annotations

import functools
import queue
import threading
import weakref

import torch
from torch.overrides import TorchFunctionMode

DEPTH = 16  # draws kept ready: a full step (~1.3 s) is time to draw ~35


class _NoiseStream:
    """A thread drawing ``torch.randn(shape, generator=g, dtype, device='cpu')`` ahead, each with the state before it."""

    def __init__(self, generator: torch.Generator, shape: tuple[int, ...], dtype: torch.dtype | None, depth: int):
        self.generator, self.shape, self.dtype = generator, shape, dtype
        self.ready: queue.Queue = queue.Queue(maxsize=depth)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._draw, name="dimensionx-noise", daemon=True)
        self.thread.start()

    def _draw(self) -> None:
        while not self.stopped.is_set():
            state = self.generator.get_state()
            try:
                noise = torch.randn(self.shape, generator=self.generator, dtype=self.dtype)
            except Exception as exc:  # handed to the step that asks, raised there
                self.ready.put((state, exc))
                return
            while not self.stopped.is_set():
                try:
                    self.ready.put((state, noise), timeout=0.05)
                    break
                except queue.Full:
                    continue
            else:  # stopped with a draw in hand: it was never used
                self.generator.set_state(state)

    def next(self) -> torch.Tensor:
        noise = self.ready.get()[1]
        if isinstance(noise, Exception):
            raise noise
        return noise

    def stop(self) -> None:
        """Stops the thread; the generator is left where the first unused draw began, as if none had been made."""
        self.stopped.set()
        self.thread.join()
        try:
            state, _ = self.ready.get_nowait()
            self.generator.set_state(state)
        except queue.Empty:
            pass


class _ServeNoise(TorchFunctionMode):
    def __init__(self, prefetcher: "_Prefetcher", generator: torch.Generator):
        super().__init__()
        self.prefetcher, self.generator = prefetcher, generator

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if kwargs.get("generator") is self.generator:
            if func is torch.randn:
                shape = tuple(args[0]) if len(args) == 1 and not isinstance(args[0], int) else tuple(args)
                device = torch.device(kwargs.get("device") or "cpu")
                if device.type == "cpu" and kwargs.get("layout") in (None, torch.strided) and kwargs.get("out") is None:
                    return self.prefetcher.draw(self.generator, shape, kwargs.get("dtype"))
            self.prefetcher.stop()  # any other draw from the generator: from where the stock one would stand
        return func(*args, **kwargs)


class _Prefetcher:
    def __init__(self, depth: int):
        self.depth = depth
        self.stream: _NoiseStream | None = None

    def draw(self, generator: torch.Generator, shape: tuple[int, ...], dtype: torch.dtype | None) -> torch.Tensor:
        stream = self.stream
        if stream is None or stream.generator is not generator or (stream.shape, stream.dtype) != (shape, dtype):
            self.stop()
            stream = self.stream = _NoiseStream(generator, shape, dtype, self.depth)
        return stream.next()

    def stop(self) -> None:
        if self.stream is not None:
            self.stream.stop()
            self.stream = None


class PrefetchedNoise:
    """Mixin before a diffusers scheduler class: ``step`` takes its CPU-generator noise from a thread
    that draws it ahead; ``set_timesteps`` stops the thread and rewinds the generator (see module doc)."""

    noise_depth = DEPTH  # draws kept ready

    def step(self, *args, **kwargs):
        generator = kwargs.get("generator")
        if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
            return super().step(*args, **kwargs)
        with _ServeNoise(self.noise_prefetcher, generator):
            return super().step(*args, **kwargs)

    def set_timesteps(self, *args, **kwargs):
        self.noise_prefetcher.stop()
        return super().set_timesteps(*args, **kwargs)

    @functools.cached_property
    def noise_prefetcher(self) -> _Prefetcher:
        """Made on first use (``from_config`` builds the scheduler through its own ``__init__``); its thread
        is stopped when the scheduler is dropped."""
        prefetcher = _Prefetcher(self.noise_depth)
        weakref.finalize(self, prefetcher.stop)
        return prefetcher


@functools.cache
def _prefetching_class(scheduler_class: type) -> type:
    """``PrefetchedNoise`` before ``scheduler_class``; ``step`` and ``set_timesteps`` keep the signatures of
    ``scheduler_class`` (the pipeline reads ``step``'s to know whether to pass ``generator``)."""
    namespace = {"__module__": __name__, "__doc__": f"{scheduler_class.__name__} with its step noise drawn ahead."}
    for name in ("step", "set_timesteps"):
        namespace[name] = functools.wraps(getattr(scheduler_class, name))(_calling(getattr(PrefetchedNoise, name)))
    return type(scheduler_class.__name__ + "PrefetchedNoise", (PrefetchedNoise, scheduler_class), namespace)


def _calling(method):
    def call(self, *args, **kwargs):
        return method(self, *args, **kwargs)

    return call


def prefetch_step_noise(scheduler, depth: int = DEPTH):
    """The same scheduler (class and config) whose ``step`` draws its CPU-generator noise ahead on a thread,
    ``depth`` draws kept ready; ``scheduler`` itself is left as it was. Give it to the pipeline:
    ``pipe.scheduler = prefetch_step_noise(pipe.scheduler)``."""
    if isinstance(scheduler, PrefetchedNoise):
        return scheduler
    prefetching = _prefetching_class(type(scheduler)).from_config(scheduler.config)
    prefetching.noise_depth = depth
    return prefetching
