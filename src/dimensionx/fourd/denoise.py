"""Denoising schedules of the 4D grid on diffusers' own hooks: a shortened schedule, initial latents, a step callback.

Two ways of generating a video close to another one, both on a loaded ``DirectorVideoGenerator``:

- identity-preserving denoising (paper, 4D): a spatial video of time frame m starts from the
  reference's latents noised to an intermediate timestep, ``z = sqrt(a_t) z_ref + sqrt(1 - a_t) eps``,
  and for the early steps each new latent is pulled toward the reference at the same noise level,
  ``z_t <- lambda z_t + (1 - lambda) z_ref,t``, with the same ``eps`` for every row;
- SDEdit: frames are encoded, noised to the timestep ``strength`` of the way up the schedule and
  denoised over the remaining steps only.

The schedule is shortened by :func:`schedule_from`, which gives the pipeline a scheduler of its
own scheduler's class (a subclass, :class:`FromStep`) that cuts the first steps off its timesteps while keeping ``num_inference_steps`` (the DPM step size) of the full
schedule. The pipeline then runs DPM-Solver++(2M) from its first-order start on the remaining
steps: its multistep history (``old_pred_original_sample``) holds only model predictions of this
run. Reference blending happens in ``callback_on_step_end``, after each step, so the history is
untouched and the next step starts from the blended latent.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import numpy as np
import torch

from ..video.config import VideoConfig
from ..video.modes import start_video


@contextlib.contextmanager
def schedule_from(pipe, start_step: int):
    """Within the block, ``pipe`` runs a scheduler of its scheduler's class and config whose
    ``set_timesteps(n)`` keeps timesteps ``start_step ..`` of its ``n`` steps; the scheduler is
    given back on exit."""
    stock = pipe.scheduler
    pipe.scheduler = _from_step_class(type(stock)).from_config(stock.config)
    pipe.scheduler.first_step = start_step
    try:
        yield
    finally:
        pipe.scheduler = stock


class FromStep:
    """Mixin before a diffusers scheduler class: ``set_timesteps(n)`` keeps its timesteps from index
    ``first_step`` on; ``num_inference_steps`` (the DPM step size) stays that of the full schedule."""

    first_step = 0

    def set_timesteps(self, num_inference_steps, *args, **kwargs):
        super().set_timesteps(num_inference_steps, *args, **kwargs)
        self.timesteps = self.timesteps[self.first_step:]


@functools.cache
def _from_step_class(scheduler_class: type) -> type:
    return type(scheduler_class.__name__ + "FromStep", (FromStep, scheduler_class), {"__module__": __name__})


def full_timesteps(scheduler, steps: int) -> torch.Tensor:
    """[steps] int64: the timesteps of a full ``steps``-step schedule, noisiest first."""
    twin = type(scheduler).from_config(scheduler.config)  # leaves the pipeline's scheduler state alone
    twin.set_timesteps(steps)
    return twin.timesteps


def noised(scheduler, clean: torch.Tensor, noise: torch.Tensor, alpha_prod: torch.Tensor) -> torch.Tensor:
    """``sqrt(a) clean + sqrt(1 - a) noise`` for [1, F, C, h, w] latents and a cumulative alpha ``a``."""
    a = alpha_prod.to(clean.device, torch.float32)
    return (a.sqrt() * clean.float() + (1 - a).sqrt() * noise.to(clean.device).float()).to(clean.dtype)


def alpha_after(scheduler, timestep: torch.Tensor) -> torch.Tensor:
    """Cumulative alpha of the latents a DPM step from ``timestep`` returns (the scheduler's own rule)."""
    prev = int(timestep) - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    return scheduler.alphas_cumprod[prev] if prev >= 0 else scheduler.final_alpha_cumprod


@dataclass
class ReferenceBlend:
    """``callback_on_step_end`` of identity-preserving denoising: after steps ``< until_step`` of the
    full schedule, ``latents <- (1 - strength) latents + strength z_ref,t`` (strength = 1 - lambda)."""

    reference: torch.Tensor  # [1, F, C, h, w] clean latents of the reference video
    noise: torch.Tensor  # [1, F, C, h, w] the shared eps
    strength: float  # in [0, 1]
    start_step: int  # index in the full schedule of the run's first step
    until_step: int  # index in the full schedule of the first step left unblended

    def __call__(self, pipe, i: int, t: torch.Tensor, tensors: dict) -> dict:
        latents = tensors["latents"]
        if self.strength <= 0 or self.start_step + i >= self.until_step:
            return {"latents": latents}
        target = noised(pipe.scheduler, self.reference, self.noise, alpha_after(pipe.scheduler, t))
        blended = (1 - self.strength) * latents.float() + self.strength * target.float()
        return {"latents": blended.to(latents.dtype)}


def text_inputs(generator, prompt: str) -> dict[str, torch.Tensor]:
    """The pipeline's text inputs for ``prompt``, encoded once: the prompt and "" (the unguided branch),
    each [1, L, D]; every video of a scene shares them instead of running T5 per call."""
    embeds, negative = generator.pipe.encode_prompt(prompt, do_classifier_free_guidance=True, device=generator.device,
                                                    dtype=generator.dtype)
    return {"prompt_embeds": embeds, "negative_prompt_embeds": negative}


def denoise(
    generator,  # video.generator.DirectorVideoGenerator with the wanted directors fused
    image,  # PIL image at the model's size (the first frame), or a list of B of them: one video each
    prompt,  # str, or text_inputs() of it
    config: VideoConfig,  # steps, frames, guidance, dynamic_cfg
    init: torch.Tensor,  # [B, F, C, h, w] latents at the noise level of ``start_step``
    start_step: int,  # first step run, of ``config.steps``
    rng: torch.Generator,  # the scheduler's per-step noise (the SDE sampler draws some every step)
    callback=None,  # callback_on_step_end
) -> torch.Tensor:
    """Runs steps ``start_step ..`` of the schedule from ``init``; returns [B, F, C, h, w] clean latents.

    B videos run as one batch through the transformer (B x 2 with guidance). Each gets its own copy
    of ``rng``, so each is the video its own call would make (diffusers draws per-video noise from a
    list of generators)."""
    pipe = generator.pipe
    height, width = generator.size
    images = image if isinstance(image, list) else [image]
    text = prompt if isinstance(prompt, dict) else text_inputs(generator, prompt)
    text = {name: embeds.expand(len(images), -1, -1) for name, embeds in text.items()}
    rngs = [torch.Generator(rng.device).set_state(rng.get_state()) for _ in images]
    start_video(pipe)
    with schedule_from(pipe, start_step):
        return pipe(
            image=images if len(images) > 1 else images[0], height=height, width=width, num_frames=config.frames,
            num_inference_steps=config.steps, guidance_scale=config.guidance, use_dynamic_cfg=config.dynamic_cfg,
            latents=init.expand(len(images), -1, -1, -1, -1).to(generator.device, generator.dtype).contiguous(),
            generator=rngs if len(rngs) > 1 else rngs[0],
            callback_on_step_end=callback, output_type="latent", **text,
        ).frames


def initial_noise(generator, frames: int, seed: int) -> torch.Tensor:
    """[1, F, C, h, w] standard normal latents of a ``frames``-frame video, from a CPU generator (same on every device)."""
    transformer = generator.pipe.transformer.config
    shape = (1, (frames - 1) // generator.pipe.vae_scale_factor_temporal + 1, transformer.out_channels,
             transformer.sample_height, transformer.sample_width)
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)


def identity_preserving(
    generator, image, prompt, config: VideoConfig,  # image: one PIL image or a list (one row each); prompt: str or text_inputs()
    reference: torch.Tensor,  # [1, F, C, h, w] clean latents of the reference spatial video
    noise: torch.Tensor,  # [1, F, C, h, w] eps shared by every row
    start: float,  # fraction of the schedule skipped
    strength: float,  # 1 - lambda
    until: float,  # fraction of the schedule blended
) -> torch.Tensor:
    """A spatial video of each ``image`` that keeps the reference's identity; [B, F, C, h, w] clean latents."""
    scheduler = generator.pipe.scheduler
    start_step = min(int(round(start * config.steps)), config.steps - 1)
    first = full_timesteps(scheduler, config.steps)[start_step]
    init = noised(scheduler, reference, noise, scheduler.alphas_cumprod[first])
    blend = ReferenceBlend(reference, noise.to(reference.device), strength, start_step,
                           int(round(until * config.steps)))
    rng = torch.Generator("cpu").manual_seed(config.seed)
    return denoise(generator, image, prompt, config, init, start_step, rng, blend)


def sdedit(
    generator, image, prompt, config: VideoConfig,  # image: one PIL image or B of them; prompt: str or text_inputs()
    clean: torch.Tensor,  # [B, F, C, h, w] latents of the videos to refine
    strength: float,  # fraction of the schedule re-run; 0 returns ``clean``
) -> torch.Tensor:
    """SDEdit (Meng et al. 2022): ``clean`` noised to the timestep ``strength`` up the schedule, then denoised."""
    run = int(round(strength * config.steps))
    if run <= 0:
        return clean
    start_step = config.steps - run
    scheduler = generator.pipe.scheduler
    noise = initial_noise(generator, config.frames, config.seed).to(clean.device)
    init = noised(scheduler, clean, noise, scheduler.alphas_cumprod[full_timesteps(scheduler, config.steps)[start_step]])
    rng = torch.Generator("cpu").manual_seed(config.seed + 1)
    return denoise(generator, image, prompt, config, init, start_step, rng)


@torch.no_grad()
def encode(generator, frames: np.ndarray) -> torch.Tensor:
    """[T, H, W, 3] uint8 -> [1, F, C, h, w] latents scaled as the transformer sees them (the posterior mean)."""
    pipe = generator.pipe
    video = torch.as_tensor(frames).to(generator.device, generator.dtype).permute(3, 0, 1, 2)[None] / 127.5 - 1
    latents = pipe.vae.encode(video).latent_dist.mode()  # [1, C, F, h, w]
    return (latents * pipe.vae.config.scaling_factor).permute(0, 2, 1, 3, 4)
