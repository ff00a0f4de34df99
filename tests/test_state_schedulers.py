"""Shortened schedules and prefetched noise come from subclasses of the scheduler's class: no method of a
diffusers object is assigned over, and the pipeline gets its own scheduler back."""

from __future__ import annotations

import torch
from diffusers import CogVideoXDPMScheduler

from dimensionx.fourd.denoise import FromStep, schedule_from
from dimensionx.video.noise import PrefetchedNoise, prefetch_step_noise


class Pipe:
    """What schedule_from touches of a pipeline: its ``scheduler``."""

    def __init__(self, scheduler):
        self.scheduler = scheduler


def test_schedule_from_runs_a_subclass_and_gives_the_stock_scheduler_back():
    stock = CogVideoXDPMScheduler(timestep_spacing="trailing")
    full = CogVideoXDPMScheduler.from_config(stock.config)
    full.set_timesteps(10)
    pipe = Pipe(prefetch_step_noise(stock))
    prefetching = pipe.scheduler
    with schedule_from(pipe, 3):
        running = pipe.scheduler
        assert isinstance(running, FromStep) and isinstance(running, PrefetchedNoise)  # still draws noise ahead
        running.set_timesteps(10)
        assert torch.equal(running.timesteps, full.timesteps[3:]) and running.num_inference_steps == 10
    assert pipe.scheduler is prefetching
    prefetching.set_timesteps(10)
    assert torch.equal(prefetching.timesteps, full.timesteps)
    for scheduler in (stock, prefetching, running):
        assert not {"step", "set_timesteps"} & set(vars(scheduler)), type(scheduler)


def test_a_dropped_prefetching_scheduler_stops_its_thread():
    scheduler = prefetch_step_noise(CogVideoXDPMScheduler())
    generator = torch.Generator().manual_seed(0)
    scheduler.noise_prefetcher.draw(generator, (2, 3), None)
    thread = scheduler.noise_prefetcher.stream.thread
    assert thread.is_alive()
    del scheduler
    assert not thread.is_alive()


def test_the_sidecar_names_the_diffusers_class_of_a_prefetching_scheduler():
    """A sidecar names a class diffusers can load again (``diffusers.<name>.from_config``), not our subclass."""
    import diffusers

    from dimensionx.video.generator import scheduler_row

    stock = CogVideoXDPMScheduler.from_config(CogVideoXDPMScheduler().config, timestep_spacing="trailing")
    prefetching = prefetch_step_noise(stock)
    assert type(prefetching) is not CogVideoXDPMScheduler  # the subclass this test is about
    row = scheduler_row(prefetching)
    loaded = getattr(diffusers, row.pop("class")).from_config(row)
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert type(loaded) is CogVideoXDPMScheduler and public(loaded.config) == public(stock.config)
