"""Identity-preserving denoising and SDEdit on the tiny model, checked against plain diffusers calls."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dimensionx.video.config import VideoConfig

STEPS, FRAMES = 4, 9


@pytest.fixture(scope="module")
def generator(tiny_model_dir):
    from dimensionx.models import resolve_model
    from dimensionx.video.generator import DirectorVideoGenerator, resolve_directors

    gen = DirectorVideoGenerator(resolve_model("tiny"), torch.device("cpu"), torch.float32, reusable=True)
    gen.set_directors(resolve_directors(VideoConfig(model="tiny", motion="orbit_left"), tiny=True), None)
    return gen


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return Image.fromarray((rng.random((64, 96, 3)) * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def config():
    return VideoConfig(model="tiny", steps=STEPS, frames=FRAMES, seed=3, motion="orbit_left")


@pytest.fixture(scope="module")
def reference(generator, image, config):
    from dimensionx.fourd.denoise import denoise, initial_noise

    return denoise(generator, image, "a", config, initial_noise(generator, FRAMES, 99), 0, torch.Generator().manual_seed(7))


def plain_generation(generator, image, config, latents, seed):
    """The stock diffusers call: full schedule from ``latents``, no callback."""
    return generator.pipe(image=image, prompt="a", height=64, width=96, num_frames=FRAMES, num_inference_steps=STEPS,
                          guidance_scale=config.guidance, use_dynamic_cfg=config.dynamic_cfg, latents=latents,
                          generator=torch.Generator().manual_seed(seed), output_type="latent").frames


def test_strength_zero_is_an_independent_generation(generator, image, config, reference):
    from dimensionx.fourd.denoise import identity_preserving, initial_noise

    noise = initial_noise(generator, FRAMES, 5)
    row = identity_preserving(generator, image, "a", config, reference, noise, start=0.0, strength=0.0, until=1.0)
    independent = plain_generation(generator, image, config, noise, config.seed)
    # the schedule's first timestep has zero signal (zero-SNR betas), so the reference adds nothing
    torch.testing.assert_close(row, independent, rtol=0, atol=1e-5)
    assert (row - reference).abs().mean() > 0.1


def test_strength_one_over_all_steps_is_the_reference(generator, image, config, reference):
    from dimensionx.fourd.denoise import identity_preserving, initial_noise

    row = identity_preserving(generator, image, "a", config, reference, initial_noise(generator, FRAMES, 5),
                              start=0.0, strength=1.0, until=1.0)
    torch.testing.assert_close(row, reference, rtol=0, atol=1e-6)


def test_distance_to_reference_falls_with_strength(generator, image, config, reference):
    from dimensionx.fourd.denoise import identity_preserving, initial_noise

    noise = initial_noise(generator, FRAMES, 5)
    distances = [float((identity_preserving(generator, image, "a", config, reference, noise, 0.0, s, 1.0) - reference).norm())
                 for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert all(a > b for a, b in zip(distances, distances[1:])), distances


def test_same_seed_same_row(generator, image, config, reference):
    from dimensionx.fourd.denoise import identity_preserving, initial_noise

    rows = [identity_preserving(generator, image, "a", config, reference, initial_noise(generator, FRAMES, 5), 0.25, 0.5, 0.5)
            for _ in range(2)]
    assert torch.equal(rows[0], rows[1])


def test_shortened_schedule_runs_only_the_last_steps(generator, image, config):
    """SDEdit at strength 0.5 of 4 trailing steps: the transformer sees timesteps 499 and 249 (1000 / 4 apart)."""
    from dimensionx.fourd.denoise import initial_noise, sdedit

    seen = []
    hook = generator.pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(int(kwargs["timestep"][0])), with_kwargs=True)
    try:
        sdedit(generator, image, "a", config, initial_noise(generator, FRAMES, 1), strength=0.5)
    finally:
        hook.remove()
    assert seen == [499, 249]
    generator.pipe.scheduler.set_timesteps(STEPS)  # the shortening ended with the call
    assert generator.pipe.scheduler.timesteps.tolist() == [999, 749, 499, 249]


def test_sdedit_full_strength_is_a_generation_from_noise(generator, image, config):
    """At strength 1 the clean latents are noised to the zero-signal timestep: a plain generation from that noise."""
    from dimensionx.fourd.denoise import initial_noise, sdedit

    clean = initial_noise(generator, FRAMES, 1)
    torch.testing.assert_close(sdedit(generator, image, "a", config, clean, strength=1.0),
                               plain_generation(generator, image, config, initial_noise(generator, FRAMES, config.seed),
                                                config.seed + 1), rtol=0, atol=1e-5)


def test_sdedit_strength_zero_is_the_identity(generator, image, config):
    from dimensionx.fourd.denoise import initial_noise, sdedit

    clean = initial_noise(generator, FRAMES, 1)
    assert torch.equal(sdedit(generator, image, "a", config, clean, strength=0.0), clean)


def test_a_batch_of_videos_is_each_video_made_alone(generator, image, config):
    """Rows and refinement passes run B videos through the transformer at once, with the prompt encoded once:
    each must be the video its own call makes (the scheduler's noise aside: DPM-Solver++ 2M here adds none)."""
    from dimensionx.fourd.denoise import denoise, initial_noise, text_inputs

    other = Image.fromarray(np.asarray(image)[::-1].copy())  # a second, different first frame
    init = torch.cat([initial_noise(generator, FRAMES, 1), initial_noise(generator, FRAMES, 2)])  # [2, F, C, h, w]
    together = denoise(generator, [image, other], text_inputs(generator, "a"), config, init, 1, torch.Generator().manual_seed(7))
    alone = [plain_generation_from(generator, one, config, init[i:i + 1], 1) for i, one in enumerate((image, other))]
    assert together.shape == init.shape
    for i in range(2):
        torch.testing.assert_close(together[i:i + 1], alone[i], rtol=1e-4, atol=1e-4)
    assert (together[0] - together[1]).abs().mean() > 1e-3  # the two first frames made two videos


def plain_generation_from(generator, image, config, latents, start_step):
    """The stock diffusers call with the prompt as text, from step ``start_step`` of the schedule."""
    from dimensionx.fourd.denoise import schedule_from

    with schedule_from(generator.pipe, start_step):
        return plain_generation(generator, image, config, latents.clone(), 7)
