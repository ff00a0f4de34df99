"""The pieces of CogVideoX-5B-I2V that training touches: loading, encoding, the LoRA, the loss.

Training objective (the original SAT recipe): for clean video latents ``x0`` and noise ``e`` at
a timestep ``t`` drawn uniformly from the 1000 training steps, with ``a = alpha_bar_t``::

    x_t   = sqrt(a) x0 + sqrt(1 - a) e
    v_hat = transformer([x_t, image condition], caption, t)       # v-prediction
    x0_hat = sqrt(a) x_t - sqrt(1 - a) v_hat
    loss  = mean( (x0_hat - x0)^2 / (1 - a) )

which equals the plain MSE between ``v_hat`` and the true velocity ``sqrt(a) e - sqrt(1 - a) x0``.
The image condition is the first frame, noised in pixels with sigma = exp(N(-3, 0.5)), encoded
by the VAE and followed by zero latents for the other frames (dropped to zeros with p = 0.05);
the caption embedding is zeroed with p = 0.1.
"""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import torch

from ..directors.lora import LORA_TARGETS


@dataclasses.dataclass
class Components:
    transformer: torch.nn.Module
    scheduler: object  # CogVideoXDPMScheduler: alphas_cumprod of the 1000 training steps
    vae: torch.nn.Module | None  # None when every clip is pre-encoded
    tokenizer: object | None
    text_encoder: torch.nn.Module | None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) px the transformer was built for."""
        config = self.transformer.config
        return config.sample_height * 8, config.sample_width * 8


def load_components(model_path: Path, encoders: bool, dtype: torch.dtype) -> Components:
    """The transformer (frozen, in ``dtype``), the scheduler and, if ``encoders``, the VAE and T5."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler, CogVideoXTransformer3DModel
    from transformers import AutoTokenizer, T5EncoderModel

    transformer = CogVideoXTransformer3DModel.from_pretrained(model_path, subfolder="transformer", torch_dtype=dtype)
    transformer.requires_grad_(False)
    scheduler = CogVideoXDPMScheduler.from_pretrained(model_path, subfolder="scheduler")
    vae = tokenizer = text_encoder = None
    if encoders:
        vae = AutoencoderKLCogVideoX.from_pretrained(model_path, subfolder="vae", torch_dtype=dtype).requires_grad_(False)
        vae.enable_slicing()
        tokenizer = AutoTokenizer.from_pretrained(model_path, subfolder="tokenizer")
        text_encoder = T5EncoderModel.from_pretrained(model_path, subfolder="text_encoder", torch_dtype=dtype)
        text_encoder.requires_grad_(False)
    return Components(transformer, scheduler, vae, tokenizer, text_encoder)


def add_lora(transformer: torch.nn.Module, rank: int) -> None:
    """A peft LoRA of ``rank`` on the attention projections, at scale alpha / rank = 1 / rank (alpha = 1)."""
    from peft import LoraConfig

    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=1, init_lora_weights=True, target_modules=list(LORA_TARGETS)))
    for parameter in transformer.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()  # LoRA weights train in fp32 under bf16 autocast


def lora_state(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA tensors in the official unprefixed layout (``transformer_blocks.N.attn1.to_q.lora_A.weight``)."""
    from peft.utils import get_peft_model_state_dict

    return {k: v.detach().to("cpu", copy=True) for k, v in get_peft_model_state_dict(transformer).items()}


def load_lora_state(transformer: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    from peft.utils import set_peft_model_state_dict

    result = set_peft_model_state_dict(transformer, tensors)
    if getattr(result, "unexpected_keys", None):
        raise RuntimeError(f"checkpoint LoRA keys not in the model: {result.unexpected_keys[:3]}")


@torch.no_grad()
def encode_video(vae, video: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """[B, F, 3, H, W] in [-1, 1] -> scaled latents [B, F', 16, H/8, W/8] (F' = (F - 1) / 4 + 1)."""
    x = video.to(vae.device, vae.dtype).permute(0, 2, 1, 3, 4)  # [B, 3, F, H, W]
    latents = vae.encode(x).latent_dist.sample(generator) * vae.config.scaling_factor
    return latents.permute(0, 2, 1, 3, 4).float()


@torch.no_grad()
def encode_first_frame(vae, frame: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor,
                       generator: torch.Generator) -> torch.Tensor:
    """First frames [B, 3, H, W] in [-1, 1] plus ``sigma`` [B] x ``noise`` [B, 3, H, W] -> [B, 1, 16, h, w]."""
    noisy = frame + sigma[:, None, None, None] * noise
    return encode_video(vae, noisy[:, None], generator)


@torch.no_grad()
def encode_text(tokenizer, text_encoder, captions: list[str], max_length: int) -> torch.Tensor:
    """Captions -> T5 embeddings [B, max_length, D]."""
    ids = tokenizer(captions, padding="max_length", max_length=max_length, truncation=True,
                    add_special_tokens=True, return_tensors="pt").input_ids
    return text_encoder(ids.to(text_encoder.device))[0].float()


def image_condition(first_latents: torch.Tensor, latent_frames: int) -> torch.Tensor:
    """[B, 1, C, h, w] first-frame latents -> [B, F', C, h, w], zeros after the first frame."""
    pad = first_latents.new_zeros(first_latents.shape[0], latent_frames - 1, *first_latents.shape[2:])
    return torch.cat([first_latents, pad], dim=1)


def rotary_embedding(transformer, height: int, width: int, latent_frames: int, device: torch.device):
    """The rotary position embedding the I2V pipeline gives the transformer (None if the model has none)."""
    from diffusers import CogVideoXImageToVideoPipeline

    if not transformer.config.use_rotary_positional_embeddings:
        return None
    holder = types.SimpleNamespace(transformer=transformer, vae_scale_factor_spatial=8)
    return CogVideoXImageToVideoPipeline._prepare_rotary_positional_embeddings(holder, height, width, latent_frames, device)


def diffusion_loss(
    transformer,
    alphas_cumprod: torch.Tensor,  # [1000]
    latents: torch.Tensor,  # [B, F', C, h, w] clean video latents
    condition: torch.Tensor,  # [B, F', C, h, w] image-condition latents
    prompt_embeds: torch.Tensor,  # [B, L, D]
    timesteps: torch.Tensor,  # [B] int64 in [0, 1000)
    noise: torch.Tensor,  # [B, F', C, h, w]
    rotary,
    inputs_dtype: torch.dtype | None = None,  # cast the transformer's inputs to this (DeepSpeed's bf16 module)
) -> torch.Tensor:
    """Per-sample loss [B]: x0 error weighted by 1 / (1 - alpha_bar_t) (see the module docstring)."""
    a = alphas_cumprod.to(latents.device)[timesteps].float().view(-1, 1, 1, 1, 1)
    noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
    inputs, text = torch.cat([noisy, condition], dim=2), prompt_embeds
    if inputs_dtype is not None:
        inputs, text = inputs.to(inputs_dtype), text.to(inputs_dtype)
    velocity = transformer(
        hidden_states=inputs,
        encoder_hidden_states=text,
        timestep=timesteps,
        image_rotary_emb=rotary,
        return_dict=False,
    )[0].float()
    x0 = a.sqrt() * noisy - (1 - a).sqrt() * velocity
    return ((x0 - latents) ** 2 / (1 - a)).flatten(1).mean(dim=1)
