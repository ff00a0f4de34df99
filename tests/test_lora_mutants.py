"""A damaged director LoRA file is refused by the rule it breaks, named in its own words."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from dimensionx.directors.lora import director_multipliers, read_lora
from dimensionx.errors import DimensionXError


def lora_file(tmp_path, damage: dict[str, torch.Tensor] | None = None, blocks: int = 4, rank: int = 2):
    """A rank-``rank`` LoRA on ``to_q`` of ``blocks`` blocks, with tensors replaced by ``damage``."""
    tensors = {}
    for b in range(blocks):
        tensors[f"transformer_blocks.{b}.attn1.to_q.lora_A.weight"] = torch.ones(rank, 8)
        tensors[f"transformer_blocks.{b}.attn1.to_q.lora_B.weight"] = torch.ones(8, rank)
    tensors.update(damage or {})
    save_file(tensors, tmp_path / "director.safetensors")
    return tmp_path / "director.safetensors"


def a_key(block: int) -> str:
    return f"transformer_blocks.{block}.attn1.to_q.lora_A.weight"


def test_a_tensor_that_is_not_a_matrix_is_named_with_its_shape(tmp_path):
    path = lora_file(tmp_path, {a_key(1): torch.ones(2, 8, 1)})
    with pytest.raises(DimensionXError, match=r"1 tensor\(s\) are not matrices \(e\.g\. transformer_blocks\.1\.attn1\.to_q"
                                              r"\.lora_A\.weight has shape \[2, 8, 1\]\)"):
        read_lora(path)


def test_non_finite_values_name_up_to_three_tensors(tmp_path):
    three = {a_key(b): torch.full((2, 8), float("nan")) for b in range(3)}
    with pytest.raises(DimensionXError, match=r"3 tensor\(s\) hold NaN or infinite values \([^)]*lora_A\.weight\); "):
        read_lora(lora_file(tmp_path, three))
    four = {**three, a_key(3): torch.full((2, 8), float("inf"))}
    with pytest.raises(DimensionXError, match=r"4 tensor\(s\) hold NaN or infinite values \([^)]* \.\.\.\); "):
        read_lora(lora_file(tmp_path, four))


def test_a_sound_file_reads_with_its_rank_and_modules(tmp_path):
    lora = read_lora(lora_file(tmp_path, blocks=2, rank=3))
    assert lora.rank == 3
    assert lora.modules == [f"transformer_blocks.{b}.attn1.to_q" for b in range(2)]


def test_a_given_scale_replaces_one_over_rank_even_at_zero(tmp_path):
    """W' = W + weight scale B A, scale 1/rank unless --lora-scale gives it; --lora-scale 0 turns the director off."""
    lora = read_lora(lora_file(tmp_path, rank=4))
    assert director_multipliers([(lora, 0.5)]) == [0.5 / 4]
    assert director_multipliers([(lora, 0.5)], scale=0.1) == [pytest.approx(0.05)]
    assert director_multipliers([(lora, 0.5), (lora, 1.0)], scale=0.0) == [0.0, 0.0]
