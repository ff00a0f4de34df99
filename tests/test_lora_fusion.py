"""Director LoRAs fuse as W + weight * scale * B @ A, in both official key styles, and are checked."""

from __future__ import annotations

import pytest
import torch
from diffusers import CogVideoXImageToVideoPipeline

from dimensionx import DimensionXError
from dimensionx.directors.lora import LORA_TARGETS, fuse_directors, read_lora, save_lora

RANK = 3


def random_lora(transformer, seed: int, prefixed: bool, zero_b: bool = False, blocks=None) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in transformer.named_modules():
        if not (name.startswith("transformer_blocks.") and name.endswith(LORA_TARGETS)):
            continue
        if blocks is not None and int(name.split(".")[1]) not in blocks:
            continue
        out_features, in_features = module.weight.shape
        key = ("transformer." if prefixed else "") + name
        tensors[f"{key}.lora_A.weight"] = torch.randn(RANK, in_features, generator=generator)
        tensors[f"{key}.lora_B.weight"] = torch.zeros(out_features, RANK) if zero_b else torch.randn(out_features, RANK, generator=generator)
    return tensors


@pytest.fixture
def pipe(tiny_model_dir):
    return CogVideoXImageToVideoPipeline.from_pretrained(tiny_model_dir)


def delta(tensors: dict[str, torch.Tensor], module: str, prefixed: bool) -> torch.Tensor:
    key = ("transformer." if prefixed else "") + module
    return tensors[f"{key}.lora_B.weight"] @ tensors[f"{key}.lora_A.weight"]


@pytest.mark.parametrize("prefixed", [False, True], ids=["sat-exporter-unprefixed", "diffusers-prefixed"])
def test_fused_weight_is_w_plus_scaled_b_at_a(pipe, tmp_path, prefixed):
    tensors = random_lora(pipe.transformer, seed=1, prefixed=prefixed)
    save_lora(tensors, tmp_path / "d.safetensors")
    lora = read_lora(tmp_path / "d.safetensors")
    assert lora.rank == RANK
    modules = lora.modules
    assert len(modules) == len(LORA_TARGETS) * pipe.transformer.config.num_layers
    before = {m: pipe.transformer.get_submodule(m).weight.detach().clone() for m in modules}
    untouched = pipe.transformer.get_submodule("transformer_blocks.0.ff.net.0.proj").weight.detach().clone()

    (multiplier,) = fuse_directors(pipe, [(lora, 1.0)])

    assert multiplier == pytest.approx(1 / RANK)
    for m in modules:
        expected = before[m] + delta(tensors, m, prefixed) / RANK
        torch.testing.assert_close(pipe.transformer.get_submodule(m).weight, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(pipe.transformer.get_submodule("transformer_blocks.0.ff.net.0.proj").weight, untouched)
    assert not any("lora" in name for name, _ in pipe.transformer.named_modules()), "LoRA layers must be removed after fusing"


def test_mixing_two_directors_is_weighted_sum_of_deltas(pipe, tmp_path):
    first, second = random_lora(pipe.transformer, 2, False), random_lora(pipe.transformer, 3, False)
    save_lora(first, tmp_path / "a.safetensors")
    save_lora(second, tmp_path / "b.safetensors")
    module = "transformer_blocks.1.attn1.to_v"
    before = pipe.transformer.get_submodule(module).weight.detach().clone()

    fuse_directors(pipe, [(read_lora(tmp_path / "a.safetensors"), 0.7), (read_lora(tmp_path / "b.safetensors"), 0.3)])

    expected = before + (0.7 * delta(first, module, False) + 0.3 * delta(second, module, False)) / RANK
    torch.testing.assert_close(pipe.transformer.get_submodule(module).weight, expected, rtol=1e-5, atol=1e-5)


def test_explicit_scale_overrides_one_over_rank(pipe, tmp_path):
    tensors = random_lora(pipe.transformer, 4, False)
    save_lora(tensors, tmp_path / "d.safetensors")
    module = "transformer_blocks.0.attn1.to_out.0"
    before = pipe.transformer.get_submodule(module).weight.detach().clone()
    fuse_directors(pipe, [(read_lora(tmp_path / "d.safetensors"), 1.0)], scale=0.01)
    torch.testing.assert_close(pipe.transformer.get_submodule(module).weight, before + 0.01 * delta(tensors, module, False))


def test_lora_for_other_shapes_names_the_base_model(pipe, tmp_path):
    tensors = random_lora(pipe.transformer, 5, False)
    key = "transformer_blocks.0.attn1.to_q.lora_A.weight"
    tensors[key] = torch.randn(RANK, 3072)  # CogVideoX-5B width, not the tiny model's
    save_lora(tensors, tmp_path / "other.safetensors")
    with pytest.raises(DimensionXError, match="transformer_blocks.0.attn1.to_q.*made for another base model"):
        fuse_directors(pipe, [(read_lora(tmp_path / "other.safetensors"), 1.0)])


def test_lora_for_missing_layers_is_an_error(pipe, tmp_path):
    tensors = random_lora(pipe.transformer, 6, False)
    tensors["transformer_blocks.41.attn1.to_q.lora_A.weight"] = torch.randn(RANK, 32)
    tensors["transformer_blocks.41.attn1.to_q.lora_B.weight"] = torch.randn(32, RANK)
    save_lora(tensors, tmp_path / "deep.safetensors")
    with pytest.raises(DimensionXError, match="transformer_blocks.41.attn1.to_q.*another base model"):
        fuse_directors(pipe, [(read_lora(tmp_path / "deep.safetensors"), 1.0)])


def test_foreign_and_unpaired_keys_are_named(pipe, tmp_path):
    tensors = random_lora(pipe.transformer, 7, False)
    tensors["text_encoder.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"] = torch.randn(RANK, 32)
    save_lora(tensors, tmp_path / "te.safetensors")
    with pytest.raises(DimensionXError, match="text_encoder.encoder.block.0"):
        read_lora(tmp_path / "te.safetensors")

    tensors = random_lora(pipe.transformer, 8, False)
    del tensors["transformer_blocks.1.attn1.to_k.lora_B.weight"]
    save_lora(tensors, tmp_path / "unpaired.safetensors")
    with pytest.raises(DimensionXError, match="transformer_blocks.1.attn1.to_k"):
        read_lora(tmp_path / "unpaired.safetensors")


def test_lora_covering_some_blocks_touches_only_those(pipe, tmp_path):
    tensors = random_lora(pipe.transformer, 9, False, blocks={1})
    save_lora(tensors, tmp_path / "partial.safetensors")
    block0 = pipe.transformer.get_submodule("transformer_blocks.0.attn1.to_q").weight.detach().clone()
    fuse_directors(pipe, [(read_lora(tmp_path / "partial.safetensors"), 1.0)])
    assert torch.equal(pipe.transformer.get_submodule("transformer_blocks.0.attn1.to_q").weight, block0)
