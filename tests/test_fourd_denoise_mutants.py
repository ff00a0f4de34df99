"""Identity-preserving denoising at the 4D stage's defaults, which start later than step 0, checked
against the method written out here from its definition with a stock diffusers call."""

from __future__ import annotations

import numpy as np
import torch

from dimensionx.fourd.config import FourDConfig
from dimensionx.video.config import VideoConfig

from test_fourd_denoise import FRAMES, generator, image  # noqa: F401  (module fixtures: the tiny generator, a photo)

STEPS = 10  # the defaults then skip 2 steps and blend after steps 2, 3 and 4


def shortened(scheduler, first: int):
    """A scheduler of the same class whose ``set_timesteps(n)`` keeps the timesteps from index ``first``
    of the full n-step schedule (the DPM step size stays that of n steps)."""

    class Cut(type(scheduler)):
        def set_timesteps(self, num_inference_steps, device=None):
            super().set_timesteps(num_inference_steps, device)
            self.timesteps = self.timesteps[first:]

    return Cut.from_config(scheduler.config)


def expected_row(pipe, image, config, reference, noise, start: float, strength: float, until: float):
    """The paper's identity-preserving denoising: start from the reference noised to timestep ``t_s``
    (s = round(start N)), z = sqrt(a_s) z_ref + sqrt(1 - a_s) eps; after each step n < round(until N)
    of the full schedule, z <- (1 - w) z + w (sqrt(a') z_ref + sqrt(1 - a') eps), a' the cumulative alpha
    of the timestep the step landed on (t - 1000 / N), w = ``strength``."""
    steps = config.steps
    first = round(start * steps)
    blended_until = round(until * steps)
    full = type(pipe.scheduler).from_config(pipe.scheduler.config)
    full.set_timesteps(steps)
    alphas = full.alphas_cumprod
    a = alphas[int(full.timesteps[first])]
    init = a.sqrt() * reference + (1 - a).sqrt() * noise

    def blend(pipe, i, t, tensors):
        if first + i >= blended_until:
            return tensors
        landed = int(t) - 1000 // steps
        a_next = alphas[landed] if landed >= 0 else full.final_alpha_cumprod
        target = a_next.sqrt() * reference + (1 - a_next).sqrt() * noise
        return {"latents": (1 - strength) * tensors["latents"] + strength * target}

    stock = pipe.scheduler
    pipe.scheduler = shortened(stock, first)
    try:
        return pipe(image=image, prompt="a", height=64, width=96, num_frames=FRAMES, num_inference_steps=steps,
                    guidance_scale=config.guidance, use_dynamic_cfg=config.dynamic_cfg, latents=init.clone(),
                    generator=torch.Generator().manual_seed(config.seed), callback_on_step_end=blend,
                    output_type="latent").frames
    finally:
        pipe.scheduler = stock


def test_identity_preserving_at_the_4d_defaults_starts_late_and_blends_early_steps(generator, image):  # noqa: F811
    from dimensionx.fourd.denoise import identity_preserving, initial_noise

    defaults = FourDConfig()
    assert round(defaults.ip_start * STEPS) == 2 and round(defaults.ip_until * STEPS) == 5
    config = VideoConfig(model="tiny", steps=STEPS, frames=FRAMES, seed=3, motion="orbit_left")
    reference = initial_noise(generator, FRAMES, 99)  # any latents will do as the reference's
    noise = initial_noise(generator, FRAMES, 5)
    got = identity_preserving(generator, image, "a", config, reference, noise, defaults.ip_start, defaults.ip_strength,
                              defaults.ip_until)
    want = expected_row(generator.pipe, image, config, reference, noise, defaults.ip_start, defaults.ip_strength,
                        defaults.ip_until)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    from_zero = expected_row(generator.pipe, image, config, reference, noise, 0.0, defaults.ip_strength,
                             defaults.ip_until)
    assert (got - from_zero).abs().max() > 1e-3  # the start offset is visible in the result


def test_encode_is_the_vae_posterior_mean_of_frames_in_minus_one_one_scaled(generator):  # noqa: F811
    from dimensionx.fourd.denoise import encode

    vae = generator.pipe.vae
    frames = (np.random.default_rng(1).random((FRAMES, 64, 96, 3)) * 255).astype(np.uint8)  # [T, H, W, 3]
    video = torch.from_numpy(frames).float().permute(3, 0, 1, 2)[None] * (2 / 255) - 1  # [1, 3, T, H, W] in [-1, 1]
    with torch.no_grad():
        want = vae.encode(video).latent_dist.mean * vae.config.scaling_factor  # [1, C, F, h, w]
    torch.testing.assert_close(encode(generator, frames), want.permute(0, 2, 1, 3, 4), rtol=1e-4, atol=1e-4)


def test_decode_maps_the_vae_output_from_minus_one_one_to_rounded_bytes(generator):  # noqa: F811
    from dimensionx.fourd.denoise import initial_noise

    vae = generator.pipe.vae
    latents = initial_noise(generator, FRAMES, 8)  # [1, F, C, h, w]
    with torch.no_grad():
        video = vae.decode(latents.permute(0, 2, 1, 3, 4) / vae.config.scaling_factor).sample  # [1, 3, T, H, W]
    want = np.round((video[0].permute(1, 2, 3, 0).clamp(-1, 1).numpy() + 1) * 127.5).astype(np.uint8)
    got = generator.decode(latents)  # the one decode of the video runtime, which the 4D grid uses
    assert got.dtype == np.uint8 and got.shape == want.shape
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # float rounding at .5 only
    assert (got != want).mean() < 0.01
