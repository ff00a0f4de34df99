"""Noise drawn ahead must be the noise the scheduler's own step would draw, whatever way the step asks for it.

Only public behaviour is checked: a scheduler passed through ``prefetch_step_noise`` must step to the very
tensors and leave its generator at the very state that the stock scheduler does, for each form of
``torch.randn`` a scheduler's ``step`` may call (a shape as a tuple, as arguments or as one int, a dtype,
the CPU or another device, another generator, the global generator), across shape changes, generator changes,
``set_timesteps`` and a failing draw. The reference is the same scheduler class, unwrapped. (A step that
draws from the generator by another function than ``randn`` is outside the contract: the thread owns it.)
"""

from __future__ import annotations

import inspect
import threading
import time

import pytest
import torch
from diffusers import DDPMScheduler

from dimensionx.video.noise import prefetch_step_noise


class DrawingScheduler(DDPMScheduler):
    """DDPM whose ``step`` also makes every kind of draw a scheduler may make, added to its output."""

    def step(self, model_output, timestep, sample, generator=None, return_dict=True, form="tuple"):
        shape = tuple(sample.shape)
        if form == "tuple":
            extra = torch.randn(shape, generator=generator)
        elif form == "args":
            extra = torch.randn(*shape, generator=generator)
        elif form == "flat":  # one int: a 1-D draw
            extra = torch.randn(sample.numel(), generator=generator).view(shape)
        elif form == "bf16":
            extra = torch.randn(shape, generator=generator, dtype=torch.bfloat16).float()
        elif form == "device":
            extra = torch.randn(shape, generator=generator, device="cpu")
        elif form == "meta":  # a draw on another device is that device's, and takes nothing from the queue
            extra = torch.zeros(shape) if torch.randn(shape, generator=generator, device="meta").is_meta else None
        elif form in ("rand", "out"):  # other draws from the generator, once a thread had time to draw ahead of it
            time.sleep(0.2)
            extra = torch.rand(shape, generator=generator) if form == "rand" else torch.randn(shape, generator=generator, out=torch.empty(shape))
        elif form == "global":  # the process's generator, not the pipeline's
            extra = torch.randn(shape)
        elif form == "int":  # randn refuses an integer dtype
            extra = torch.randn(shape, generator=generator, dtype=torch.int64)
        else:
            raise ValueError(form)
        out = super().step(model_output, timestep, sample, generator=generator, return_dict=False)[0]
        return (out + extra,)


def schedulers(cls=DrawingScheduler):
    config = dict(num_train_timesteps=100)
    stock = cls(**config)
    return stock, prefetch_step_noise(cls(**config))


def run(scheduler, generator, steps, forms, shapes=((2, 3, 4),)):
    """Steps ``scheduler`` through ``steps`` timesteps with ``generator`` (samples from a generator of their own:
    between steps a pipeline draws from the step's generator only inside ``step``); returns every step's output."""
    scheduler.set_timesteps(steps)
    outputs = []
    for k, t in enumerate(scheduler.timesteps):
        shape = shapes[k % len(shapes)]
        sample = torch.randn(shape, generator=torch.Generator().manual_seed(100 + k))
        kwargs = {} if forms is None else {"form": forms[k % len(forms)]}
        outputs.append(scheduler.step(sample * 0.5, t, sample, generator=generator, **kwargs)[0])
    return outputs


def returned_within(seconds: float, work):
    """``work()``, run on a thread: a step that waits for noise no thread draws fails here instead of hanging."""
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(work()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"the steps did not return within {seconds} s (or raised: see the thread's traceback above)"
    return outcome[0]


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


@pytest.mark.parametrize("forms", [["tuple"], ["args"], ["flat"], ["bf16"], ["device"], ["meta", "tuple"], ["tuple", "bf16", "args"],
                                   ["out", "tuple"], ["tuple", "rand", "tuple"]])
def test_every_form_of_draw_gives_the_stock_noise(forms):
    stock, prefetched = schedulers()
    expected = run(stock, torch.Generator().manual_seed(3), 6, forms)
    assert_same(run(prefetched, torch.Generator().manual_seed(3), 6, forms), expected)


def test_the_global_generator_is_left_alone():
    stock, prefetched = schedulers()
    torch.manual_seed(11)
    expected = run(stock, torch.Generator().manual_seed(3), 4, ["global", "tuple"])
    torch.manual_seed(11)
    assert_same(run(prefetched, torch.Generator().manual_seed(3), 4, ["global", "tuple"]), expected)


def test_a_change_of_shape_between_steps_gives_the_stock_noise():
    stock, prefetched = schedulers()
    shapes = ((2, 3, 4), (5, 2), (2, 3, 4))
    expected = run(stock, torch.Generator().manual_seed(1), 6, ["tuple"], shapes)
    assert_same(run(prefetched, torch.Generator().manual_seed(1), 6, ["tuple"], shapes), expected)


def test_a_stock_scheduler_steps_as_stock_and_keeps_generator_in_its_signature():
    """The pipeline passes ``generator`` only to a step whose signature names it."""
    stock, prefetched = schedulers(DDPMScheduler)
    assert "generator" in inspect.signature(prefetched.step).parameters
    expected = run(stock, torch.Generator().manual_seed(5), 8, None)
    assert_same(run(prefetched, torch.Generator().manual_seed(5), 8, None), expected)


def test_a_step_without_a_generator_draws_from_the_global_one_as_stock():
    stock, prefetched = schedulers(DDPMScheduler)
    torch.manual_seed(8)
    expected = run(stock, None, 4, None)
    torch.manual_seed(8)
    assert_same(returned_within(60, lambda: run(prefetched, None, 4, None)), expected)


def test_generators_taking_turns_each_give_their_stock_noise():
    stock, prefetched = schedulers()

    def alternate(scheduler):
        a, b = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
        scheduler.set_timesteps(6)
        sample = torch.zeros(3, 4)
        out = []
        for k, t in enumerate(scheduler.timesteps):
            out.append(scheduler.step(sample, t, sample, generator=(a, b, a)[k % 3])[0])
        scheduler.set_timesteps(6)
        return out, a.get_state(), b.get_state()

    (expected, a0, b0), (got, a1, b1) = alternate(stock), alternate(prefetched)
    assert_same(got, expected)
    assert torch.equal(a0, a1) and torch.equal(b0, b1)


@pytest.mark.parametrize("depth", [1, 3])
def test_a_generator_reused_after_set_timesteps_continues_where_stock_leaves_it(depth):
    """A second video from the same generator: its initial latents are drawn after ``set_timesteps``, where
    the stock generator stands, not after the draws made ahead."""
    config = dict(num_train_timesteps=100)
    stock, prefetched = DrawingScheduler(**config), prefetch_step_noise(DrawingScheduler(**config), depth=depth)
    g_stock, g_prefetched = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    for steps in (3, 5, 2):
        assert_same(run(prefetched, g_prefetched, steps, ["tuple"]), run(stock, g_stock, steps, ["tuple"]))
    prefetched.set_timesteps(2)
    assert torch.equal(g_prefetched.get_state(), g_stock.get_state())
    assert torch.equal(torch.randn(4, generator=g_prefetched), torch.randn(4, generator=g_stock))


def test_wrapping_twice_draws_like_wrapping_once():
    stock, prefetched = schedulers()
    prefetched = prefetch_step_noise(prefetched)
    expected = run(stock, torch.Generator().manual_seed(4), 5, ["tuple"])
    assert_same(run(prefetched, torch.Generator().manual_seed(4), 5, ["tuple"]), expected)


def test_a_draw_that_fails_raises_in_the_step_instead_of_hanging():
    stock, prefetched = schedulers()
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(RuntimeError) as expected:
        run(stock, torch.Generator().manual_seed(0), 2, ["int"])
    with pytest.raises(RuntimeError) as error:
        run(prefetched, generator, 2, ["int"])
    assert str(error.value) == str(expected.value)
