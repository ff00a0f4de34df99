"""CogVideoX attention on the fastest SDPA kernel.

diffusers' ``set_attention_backend`` does not reach CogVideoX: its blocks call
``CogVideoXAttnProcessor2_0``, which calls ``F.scaled_dot_product_attention`` and lets PyTorch
pick the kernel. :class:`CogVideoXSDPAProcessor` is that processor with the kernel chosen:
cuDNN's fused attention first (425 TFLOP/s on an H100 at CogVideoX-5B's shape, 2 x 48 heads of
64 over 17 776 tokens, against 323 for flash and 138 for memory-efficient; PyTorch 2.11 picks
cuDNN there by itself, other versions pick flash), then flash, memory-efficient and the plain
maths, so an input a kernel refuses (a CPU tensor, an odd head size) still runs.
It computes the same function as the stock processor; only the kernel's rounding differs.

:class:`CogVideoXSageProcessor` (``mode_settings.attention: sage``, for ``fast``) runs the same
processor with its one attention call answered by SageAttention (Zhang et al., ICLR 2025: INT8
Q K^T with K smoothed, FP16 P V; Triton kernels, ``pip install sageattention``). The call is
intercepted by a ``TorchFunctionMode`` around the processor, so diffusers' code is untouched,
and the kernel is a ``torch.library`` custom op, so ``torch.compile`` keeps each block one graph.
Approximate: its drift against SDPA is measured in benchmarks/bench_video.py (docs/speed.md).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode


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


SAGE_HEAD_DIMS = (64, 96, 128)  # head sizes SageAttention's kernels take


@torch.library.custom_op("dimensionx::sage_attention", mutates_args=())
def sage_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """SageAttention of [B, H, S, D] half-precision CUDA tensors, no mask, not causal; [B, H, S, D]."""
    from sageattention import sageattn

    return sageattn(query, key, value, tensor_layout="HND", is_causal=False)


@sage_attention.register_fake
def _(query, key, value):
    return torch.empty_like(query)


def sage_fits(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask=None, dropout_p: float = 0.0,
              is_causal: bool = False, scale: float | None = None, **unknown) -> bool:
    """Whether an ``F.scaled_dot_product_attention`` call is one SageAttention computes: plain softmax attention
    of [B, H, S, D] half-precision CUDA tensors; anything else stays on SDPA."""
    return (query.is_cuda and query.dtype in (torch.float16, torch.bfloat16) and query.dim() == 4
            and query.dtype == key.dtype == value.dtype and query.shape[-1] in SAGE_HEAD_DIMS
            and attn_mask is None and dropout_p == 0.0 and not is_causal and not unknown
            and (scale is None or scale == query.shape[-1] ** -0.5))


class AnswerAttention(TorchFunctionMode):
    """Answers the ``F.scaled_dot_product_attention`` calls that ``fits`` accepts with ``kernel(q, k, v)``."""

    def __init__(self, kernel: Callable[..., torch.Tensor], fits: Callable[..., bool] = sage_fits):
        super().__init__()
        self.kernel, self.fits = kernel, fits

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention and self.fits(*args, **kwargs):
            return self.kernel(*args[:3])
        return func(*args, **kwargs)


class CogVideoXSageProcessor(CogVideoXSDPAProcessor):
    """``CogVideoXAttnProcessor2_0`` whose attention runs on ``kernel`` (SageAttention) where it fits, else SDPA."""

    def __init__(self, kernel: Callable[..., torch.Tensor] = sage_attention, fits: Callable[..., bool] = sage_fits):
        super().__init__()
        self.kernel, self.fits = kernel, fits

    def __call__(self, attn, hidden_states, encoder_hidden_states, attention_mask=None, image_rotary_emb=None):
        with AnswerAttention(self.kernel, self.fits):
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)


def use_fastest_attention(transformer: torch.nn.Module, kernel: str = "sdpa") -> str:
    """Gives every attention layer of a CogVideoX transformer the processor of ``kernel`` (see
    :data:`.config.ATTENTION_KERNELS`); returns a note for the sidecar."""
    if kernel == "sage":
        transformer.set_attn_processor(CogVideoXSageProcessor())
        return "attention: SageAttention (INT8 QK, FP16 PV) where it fits, else SDPA with cuDNN first"
    transformer.set_attn_processor(CogVideoXSDPAProcessor())
    return "attention: SDPA, cuDNN kernel first"
