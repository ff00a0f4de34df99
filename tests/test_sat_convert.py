"""`dimensionx convert-sat` on a tiny SAT checkpoint written by hand with SAT's own names.

The reference is a tiny diffusers CogVideoX transformer with random weights. The test writes
the same weights under the names SAT's CogVideoX uses (``model.diffusion_model.`` +
``transformer.layers.N.attention.query_key_value``, ``mixins.adaln_layer.adaLN_modulations.N.1``
with SAT's 12-chunk order, ...) in the DeepSpeed layout, converts, loads the result through
``from_pretrained`` and compares the transformer's output with the reference's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from dimensionx.cli import main

P = "model.diffusion_model."
LAYERS, HEADS, HEAD_DIM, TEXT_DIM, TEXT_LEN = 2, 2, 8, 24, 6
FRAMES, LATENT_H, LATENT_W = 9, 4, 8  # 3 latent frames of 2x4 patches: 6 + 24 = 30 table rows
SAT_YAML = f"""
model:
  network_config:
    params:
      num_frames: {FRAMES}
      latent_height: {LATENT_H}
      latent_width: {LATENT_W}
      num_layers: {LAYERS}
      modules:
        pos_embed_config:
          params: {{text_length: {TEXT_LEN}, learnable_pos_embed: true}}
"""


def reference_transformer():
    from diffusers import CogVideoXTransformer3DModel

    torch.manual_seed(0)
    model = CogVideoXTransformer3DModel(
        num_attention_heads=HEADS, attention_head_dim=HEAD_DIM, in_channels=8, out_channels=4, time_embed_dim=12,
        text_embed_dim=TEXT_DIM, num_layers=LAYERS, sample_width=LATENT_W, sample_height=LATENT_H, sample_frames=FRAMES,
        patch_size=2, max_text_seq_length=TEXT_LEN, use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
    ).eval()
    with torch.no_grad():  # every tensor random (norms and the position table too), so a swapped name changes the output
        for tensor in model.state_dict().values():
            tensor.copy_(torch.randn_like(tensor) * 0.3)
    return model


def sat_names(model) -> dict[str, torch.Tensor]:
    """The SAT CogVideoX state dict of ``model``'s weights, written from SAT's module layout."""
    d = {k: v.clone() for k, v in model.state_dict().items()}
    hidden = model.config.num_attention_heads * model.config.attention_head_dim
    sat = {
        P + "time_embed.0.weight": d["time_embedding.linear_1.weight"], P + "time_embed.0.bias": d["time_embedding.linear_1.bias"],
        P + "time_embed.2.weight": d["time_embedding.linear_2.weight"], P + "time_embed.2.bias": d["time_embedding.linear_2.bias"],
        P + "mixins.patch_embed.proj.weight": d["patch_embed.proj.weight"], P + "mixins.patch_embed.proj.bias": d["patch_embed.proj.bias"],
        P + "mixins.patch_embed.text_proj.weight": d["patch_embed.text_proj.weight"],
        P + "mixins.patch_embed.text_proj.bias": d["patch_embed.text_proj.bias"],
        P + "mixins.pos_embed.pos_embedding": d["patch_embed.pos_embedding"],
        P + "mixins.final_layer.norm_final.weight": d["norm_out.norm.weight"], P + "mixins.final_layer.norm_final.bias": d["norm_out.norm.bias"],
        P + "mixins.final_layer.linear.weight": d["proj_out.weight"], P + "mixins.final_layer.linear.bias": d["proj_out.bias"],
        P + "mixins.final_layer.adaLN_modulation.1.weight": d["norm_out.linear.weight"],
        P + "mixins.final_layer.adaLN_modulation.1.bias": d["norm_out.linear.bias"],
        P + "transformer.final_layernorm.weight": d["norm_final.weight"], P + "transformer.final_layernorm.bias": d["norm_final.bias"],
        # SAT's own token tables, present in every SAT CogVideoX checkpoint and unused by the model:
        P + "transformer.position_embeddings.weight": torch.randn(64, hidden),
    }
    for i in range(model.config.num_layers):
        b, s = f"transformer_blocks.{i}.", f"{P}transformer.layers.{i}."
        for wb in ("weight", "bias"):
            sat[s + f"input_layernorm.{wb}"] = d[b + f"norm1.norm.{wb}"]
            sat[s + f"post_attention_layernorm.{wb}"] = d[b + f"norm2.norm.{wb}"]
            sat[s + f"attention.query_key_value.{wb}"] = torch.cat([d[b + f"attn1.to_{x}.{wb}"] for x in "qkv"])
            sat[s + f"attention.dense.{wb}"] = d[b + f"attn1.to_out.0.{wb}"]
            sat[s + f"mlp.dense_h_to_4h.{wb}"] = d[b + f"ff.net.0.proj.{wb}"]
            sat[s + f"mlp.dense_4h_to_h.{wb}"] = d[b + f"ff.net.2.{wb}"]
            sat[f"{P}mixins.adaln_layer.query_layernorm_list.{i}.{wb}"] = d[b + f"attn1.norm_q.{wb}"]
            sat[f"{P}mixins.adaln_layer.key_layernorm_list.{i}.{wb}"] = d[b + f"attn1.norm_k.{wb}"]
            # SAT's AdaLN: shift/scale/gate of attention, of the MLP, then the same six for the text tokens;
            # diffusers' norm1 holds (shift, scale, gate, text shift, text scale, text gate) of attention, norm2 of the MLP.
            n1, n2 = d[b + f"norm1.linear.{wb}"].chunk(6), d[b + f"norm2.linear.{wb}"].chunk(6)
            sat[f"{P}mixins.adaln_layer.adaLN_modulations.{i}.1.{wb}"] = torch.cat([*n1[:3], *n2[:3], *n1[3:], *n2[3:]])
    return sat


def save_deepspeed(state: dict, root: Path, **extra) -> Path:
    """``root/checkpoints/latest`` + ``root/checkpoints/1/mp_rank_00_model_states.pt``, the state under "module"."""
    folder = root / "checkpoints"
    (folder / "1").mkdir(parents=True)
    (folder / "latest").write_text("1\n")
    torch.save({"module": state, "global_steps": 3000, "dp_world_size": 8, **extra}, folder / "1" / "mp_rank_00_model_states.pt")
    return folder


def inputs():
    generator = torch.Generator().manual_seed(1)
    latent_frames = (FRAMES - 1) // 4 + 1
    return dict(hidden_states=torch.randn(2, latent_frames, 8, LATENT_H, LATENT_W, generator=generator),
                encoder_hidden_states=torch.randn(2, TEXT_LEN, TEXT_DIM, generator=generator),
                timestep=torch.tensor([999, 420]))


@pytest.fixture(scope="module")
def reference():
    return reference_transformer()


@pytest.fixture
def sat_yaml(tmp_path) -> Path:
    path = tmp_path / "sat.yaml"
    path.write_text(SAT_YAML)
    return path


def convert(*args) -> int:
    return main(["convert-sat", *map(str, args)])


@torch.no_grad()
def test_converted_sat_checkpoint_gives_the_reference_output(reference, sat_yaml, tmp_path):
    from diffusers import CogVideoXTransformer3DModel

    state = sat_names(reference)
    state["conditioner.embedders.0.transformer.shared.weight"] = torch.randn(5, TEXT_DIM)  # T5 of the SAT engine
    source = save_deepspeed(state, tmp_path / "run")
    out = tmp_path / "orbit"
    assert convert(source, "--out", out, "--sat-config", sat_yaml) == 0

    converted = CogVideoXTransformer3DModel.from_pretrained(out / "transformer").eval()
    assert converted.config.sample_frames == FRAMES and converted.config.num_layers == LAYERS
    assert torch.equal(converted.patch_embed.pos_embedding, state[P + "mixins.pos_embed.pos_embedding"])  # the table as is
    expected = reference(**inputs(), return_dict=False)[0]
    torch.testing.assert_close(converted(**inputs(), return_dict=False)[0], expected, rtol=0, atol=1e-6)

    report = json.loads((out / "conversion.json").read_text())
    assert set(report["skipped"]) == {P + "transformer.position_embeddings.weight", "conditioner.embedders.0.transformer.shared.weight"}
    index = json.loads((out / "model_index.json").read_text())
    assert index["_class_name"] == "CogVideoXImageToVideoPipeline" and index["_dimensionx_base_model"] == "THUDM/CogVideoX-5b-I2V"


def test_the_table_must_match_the_frames_and_size(reference, tmp_path, capsys):
    source = save_deepspeed(sat_names(reference), tmp_path / "run")
    assert convert(source, "--out", tmp_path / "orbit") == 2  # default shape: the orbit's 145 frames at 40x60
    error = capsys.readouterr().err
    assert "pos_embedding has 30 rows" in error and "22426" in error and "--sat-config" in error
    assert not (tmp_path / "orbit").exists()


@pytest.mark.parametrize("damage, named", [
    ("missing", "transformer_blocks.1.ff.net.2.bias"),
    ("extra", P + "mixins.adaln_layer.extra_gate.weight"),
    ("misshaped", "transformer_blocks.1.ff.net.0.proj.weight"),
])
def test_bad_tensors_are_reported_by_name(reference, sat_yaml, tmp_path, capsys, damage, named):
    state = sat_names(reference)
    if damage == "missing":
        del state[P + "transformer.layers.1.mlp.dense_4h_to_h.bias"]
    elif damage == "extra":
        state[named] = torch.zeros(3)
    else:
        state[P + "transformer.layers.1.mlp.dense_h_to_4h.weight"] = torch.zeros(3 * HEADS * HEAD_DIM, HEADS * HEAD_DIM)
    source = save_deepspeed(state, tmp_path / "run")
    assert convert(source, "--out", tmp_path / "orbit", "--sat-config", sat_yaml) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "orbit").exists()


def with_sat_lora(state: dict, rank: int, layers: int = LAYERS, hidden: int = HEADS * HEAD_DIM,
                  std: float = 1.0) -> tuple[dict, dict]:
    """SAT LoraMixin layout: the base weight under ``.original``, ``matrix_A.i`` [r, in] / ``matrix_B.i`` [out/parts, r]."""
    generator = torch.Generator().manual_seed(2)
    dtype = next(iter(state.values())).dtype
    lora = {}
    for i in range(layers):
        s = f"{P}transformer.layers.{i}.attention."
        for layer, parts in (("query_key_value", 3), ("dense", 1)):
            for wb in ("weight", "bias"):
                state[f"{s}{layer}.original.{wb}"] = state.pop(f"{s}{layer}.{wb}")
            for part in range(parts):
                lora[f"{s}{layer}.matrix_A.{part}"] = (torch.randn(rank, hidden, generator=generator) * std).to(dtype)
                lora[f"{s}{layer}.matrix_B.{part}"] = (torch.randn(hidden, rank, generator=generator) * std).to(dtype)
    return {**state, **lora}, lora


def test_sat_lora_merges_to_w_plus_b_a_over_rank_and_exports_apart(reference, sat_yaml, tmp_path):
    from safetensors.torch import load_file

    from dimensionx.directors.lora import read_lora

    rank = 4
    base = sat_names(reference)
    qkv = base[P + "transformer.layers.1.attention.query_key_value.weight"].clone()
    dense = base[P + "transformer.layers.0.attention.dense.weight"].clone()
    state, lora = with_sat_lora(base, rank)
    source = save_deepspeed(state, tmp_path / "run")
    assert convert(source, "--out", tmp_path / "orbit", "--sat-config", sat_yaml) == 0

    merged = load_file(tmp_path / "orbit" / "transformer" / "diffusion_pytorch_model.safetensors")
    hidden = HEADS * HEAD_DIM
    s1, s0 = f"{P}transformer.layers.1.attention.", f"{P}transformer.layers.0.attention."
    want_k = qkv[hidden:2 * hidden] + lora[s1 + "query_key_value.matrix_B.1"] @ lora[s1 + "query_key_value.matrix_A.1"] / rank
    want_out = dense + lora[s0 + "dense.matrix_B.0"] @ lora[s0 + "dense.matrix_A.0"] / rank
    torch.testing.assert_close(merged["transformer_blocks.1.attn1.to_k.weight"], want_k, rtol=0, atol=1e-5)
    torch.testing.assert_close(merged["transformer_blocks.0.attn1.to_out.0.weight"], want_out, rtol=0, atol=1e-5)

    director = tmp_path / "my_director.safetensors"
    assert convert(source, "--lora-only", "--out", director, "--sat-config", sat_yaml) == 0
    file = read_lora(director)
    assert file.rank == rank and len(file.tensors) == LAYERS * 4 * 2
    assert torch.equal(file.tensors["transformer_blocks.1.attn1.to_k.lora_A.weight"], lora[s1 + "query_key_value.matrix_A.1"])
    assert torch.equal(file.tensors["transformer_blocks.0.attn1.to_out.0.lora_B.weight"], lora[s0 + "dense.matrix_B.0"])


def test_pickled_code_is_refused_unless_trusted(reference, sat_yaml, tmp_path, capsys):
    source = save_deepspeed(sat_names(reference), tmp_path / "run", args=argparse.Namespace(lr=1e-3))
    assert convert(source, "--out", tmp_path / "orbit", "--sat-config", sat_yaml) == 2
    assert "--trust-pickle" in capsys.readouterr().err and not (tmp_path / "orbit").exists()
    assert convert(source, "--out", tmp_path / "orbit", "--sat-config", sat_yaml, "--trust-pickle") == 0


def test_with_base_writes_a_full_pipeline_folder(reference, sat_yaml, tmp_path, tiny_model_dir):
    from dimensionx.models import resolve_model

    source = save_deepspeed(sat_names(reference), tmp_path / "run")
    out = tmp_path / "full"
    assert convert(source, "--out", out, "--sat-config", sat_yaml, "--with-base", tiny_model_dir) == 0
    for component in ("vae", "text_encoder", "tokenizer", "scheduler"):
        assert sorted(p.name for p in (out / component).iterdir()) == sorted(p.name for p in (tiny_model_dir / component).iterdir())
    assert json.loads((out / "model_index.json").read_text()) == json.loads((tiny_model_dir / "model_index.json").read_text())
    assert resolve_model(str(out)).base is None  # self-contained: nothing borrowed at load time
