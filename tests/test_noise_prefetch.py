"""The scheduler's noise drawn ahead on a thread must be the very noise stock diffusers draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import CogVideoXDPMScheduler, CogVideoXImageToVideoPipeline
from PIL import Image

from dimensionx.video.noise import prefetch_step_noise


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return Image.fromarray((np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8))


def _pipeline(model_dir) -> CogVideoXImageToVideoPipeline:
    pipe = CogVideoXImageToVideoPipeline.from_pretrained(model_dir)
    pipe.scheduler = CogVideoXDPMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _latents(pipe, image, generator: torch.Generator, steps: int = 5) -> torch.Tensor:
    return pipe(image=image, prompt="a red barn", height=64, width=96, num_frames=9, num_inference_steps=steps,
                generator=generator, output_type="latent").frames


def test_prefetched_noise_gives_bit_identical_videos(tiny_model_dir, image):
    stock, prefetched = _pipeline(tiny_model_dir), _pipeline(tiny_model_dir)
    prefetched.scheduler = prefetch_step_noise(prefetched.scheduler)
    for seed in (0, 7):
        expected = _latents(stock, image, torch.Generator().manual_seed(seed))
        assert torch.equal(_latents(prefetched, image, torch.Generator().manual_seed(seed)), expected)
    # the queue really served the steps: its thread holds the last generator, draws kept ready
    stream = prefetched.scheduler.noise_prefetcher.stream
    assert stream is not None and stream.ready.qsize() > 0


def test_a_generator_reused_across_videos_stays_in_step_with_stock(tiny_model_dir, image):
    """The next video's initial latents come from the generator where stock leaves it, not after the draws made ahead."""
    stock, prefetched = _pipeline(tiny_model_dir), _pipeline(tiny_model_dir)
    prefetched.scheduler = prefetch_step_noise(prefetched.scheduler)
    g_stock, g_prefetched = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for _ in range(2):
        assert torch.equal(_latents(prefetched, image, g_prefetched, steps=3), _latents(stock, image, g_stock, steps=3))
    prefetched.scheduler.set_timesteps(3)  # stops the thread and rewinds the generator to its first unused draw
    assert torch.equal(g_prefetched.get_state(), g_stock.get_state())


def test_prefetch_keeps_the_step_signature_and_applies_once(tiny_model_dir):
    import inspect

    pipe = _pipeline(tiny_model_dir)
    stock = pipe.scheduler
    before = inspect.signature(stock.step)
    pipe.scheduler = prefetch_step_noise(stock)
    assert prefetch_step_noise(pipe.scheduler) is pipe.scheduler
    settings = lambda scheduler: {k: v for k, v in scheduler.config.items() if not k.startswith("_")}  # noqa: E731
    assert isinstance(pipe.scheduler, type(stock)) and settings(pipe.scheduler) == settings(stock)
    assert inspect.signature(pipe.scheduler.step) == before  # the pipeline reads it to pass `generator`
    assert "step" not in vars(stock) and "set_timesteps" not in vars(stock)  # the library object is left as it was


def test_a_draw_that_fails_raises_where_it_is_asked_for_instead_of_hanging(tiny_model_dir):
    from dimensionx.video.noise import _ServeNoise

    scheduler = prefetch_step_noise(_pipeline(tiny_model_dir).scheduler)
    generator = torch.Generator().manual_seed(0)
    with _ServeNoise(scheduler.noise_prefetcher, generator):  # what scheduler.step runs inside
        with pytest.raises(RuntimeError):  # randn refuses an integer dtype, on the drawing thread
            torch.randn((1, 2, 4), generator=generator, dtype=torch.int64)
