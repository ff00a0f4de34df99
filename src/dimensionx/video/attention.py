"""CogVideoX attention on the fastest SDPA kernel.

diffusers' ``set_attention_backend`` does not reach CogVideoX: its blocks call
``CogVideoXAttnProcessor2_0``, which calls ``F.scaled_dot_product_attention`` and lets PyTorch
pick the kernel. :class:`CogVideoXSDPAProcessor` is that processor with the kernel chosen:
cuDNN's fused attention first (425 TFLOP/s on an H100 at CogVideoX-5B's shape, 2 x 48 heads of
64 over 17 776 tokens, against 323 for flash and 138 for memory-efficient; PyTorch 2.11 picks
cuDNN there by itself, other versions pick flash), then flash, memory-efficient and the plain
maths, so an input a kernel refuses (a CPU tensor, an odd head size) still runs.
It computes the same function as the stock processor; only the kernel's rounding differs.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0
from torch.nn.attention import SDPBackend, sdpa_kernel

# Tried in this order; the first that accepts the inputs runs.
FASTEST_FIRST = (
    SDPBackend.CUDNN_ATTENTION,
    SDPBackend.FLASH_ATTENTION,
    SDPBackend.EFFICIENT_ATTENTION,
    SDPBackend.MATH,
)


class CogVideoXSDPAProcessor(CogVideoXAttnProcessor2_0):
    """``CogVideoXAttnProcessor2_0`` with SDPA's kernels tried in ``backends`` order."""

    def __init__(self, backends: tuple[SDPBackend, ...] = FASTEST_FIRST):
        super().__init__()
        self.backends = list(backends)

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,  # [B, S_video, C]
        encoder_hidden_states: torch.Tensor,  # [B, S_text, C]
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,  # cos, sin: [S_video, head_dim] each
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with sdpa_kernel(self.backends, set_priority=True):
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)


def use_fastest_attention(transformer: torch.nn.Module) -> None:
    """Gives every attention layer of a CogVideoX transformer the :class:`CogVideoXSDPAProcessor`."""
    transformer.set_attn_processor(CogVideoXSDPAProcessor())
