"""``mode_settings.attention``: SageAttention answers the transformer's attention calls in ``fast`` mode.

The kernel itself needs CUDA (benchmarks/bench_video.py measures its speed and drift); on a CPU these
tests check the routing around it: every attention call of every block reaches the kernel it is given,
a call the kernel does not take stays on SDPA, and a bad setting is refused by name before a model loads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dimensionx.errors import DimensionXError
from dimensionx.video.attention import AnswerAttention, CogVideoXSageProcessor, CogVideoXSDPAProcessor, sage_fits
from dimensionx.video.config import ModeConfig


@pytest.fixture(scope="module")
def transformer():
    from dimensionx.models.tiny import build_tiny_pipeline

    return build_tiny_pipeline(frames=9).transformer.eval()


def forward(transformer, seed: int = 0) -> torch.Tensor:
    config = transformer.config
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, 3, config.in_channels, config.sample_height, config.sample_width, generator=g)
    text = torch.randn(1, config.max_text_seq_length, config.text_embed_dim, generator=g)
    with torch.no_grad():
        return transformer(hidden_states=latents, encoder_hidden_states=text, timestep=torch.tensor([500]),
                           return_dict=False)[0]


def test_every_attention_call_reaches_the_kernel(transformer):
    calls = []

    def reference(q, k, v):  # [B, H, S, D]: the function SageAttention approximates
        calls.append(q.shape)
        return F.scaled_dot_product_attention(q, k, v)

    transformer.set_attn_processor(CogVideoXSDPAProcessor())
    expected = forward(transformer)
    transformer.set_attn_processor(CogVideoXSageProcessor(kernel=reference, fits=lambda *a, **k: True))
    got = forward(transformer)
    assert len(calls) == transformer.config.num_layers
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)

    transformer.set_attn_processor(CogVideoXSageProcessor(kernel=lambda q, k, v: torch.zeros_like(q), fits=lambda *a, **k: True))
    assert not torch.allclose(forward(transformer), expected, atol=1e-3)  # the kernel's answer is the one used
    transformer.set_attn_processor(CogVideoXSDPAProcessor())


def test_calls_the_kernel_does_not_take_stay_on_sdpa():
    q = torch.randn(1, 2, 16, 64)
    with AnswerAttention(kernel=lambda q, k, v: torch.zeros_like(q)):
        out = F.scaled_dot_product_attention(q, q, q)  # a CPU float32 call: SageAttention does not take it
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, q, q))


@pytest.mark.parametrize("change, fits", [
    ({}, True), ({"attn_mask": torch.ones(1)}, False), ({"dropout_p": 0.1}, False), ({"is_causal": True}, False),
    ({"scale": 0.5}, False), ({"scale": 64 ** -0.5}, True), ({"enable_gqa": True}, False),
])
def test_sage_takes_only_plain_half_precision_cuda_attention(change, fits, monkeypatch):
    q = torch.randn(1, 2, 16, 64, dtype=torch.bfloat16)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))  # its rules, without a GPU
    assert sage_fits(q, q, q, **change) is fits
    assert not sage_fits(q.float(), q.float(), q.float())
    assert not sage_fits(q[..., :48], q[..., :48], q[..., :48])  # a head size its kernels lack


def test_unknown_kernel_and_missing_package_are_refused_by_name(monkeypatch):
    with pytest.raises(DimensionXError, match=r"mode_settings.attention 'flash': use one of sdpa, sage"):
        ModeConfig(attention="flash")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None if name == "sageattention" else object())
    with pytest.raises(DimensionXError, match=r"SageAttention, which is not installed: pip install 'sageattention"):
        ModeConfig(attention="sage").check_packages("fast")
    ModeConfig(attention="sage").check_packages("exact")  # exact never uses it
