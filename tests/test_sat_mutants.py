"""SAT checkpoint conversion, the parts a plausible bug turns wrong silently or unhelpfully: where the
checkpoint is found, what the SAT YAML sizes, LoRA alpha and pairing, and each refusal by its own rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dimensionx.errors import DimensionXError
from dimensionx.models.sat import (
    MODEL_STATES,
    SatShape,
    build_transformer,
    export_sat_lora,
    find_model_states,
    infer_config,
    load_sat_state,
    merge_lora,
    read_sat_shape,
    rename_sat_state,
)
from test_sat_convert import HEAD_DIM, HEADS, P, SAT_YAML, reference_transformer, sat_names, save_deepspeed, with_sat_lora

HIDDEN = HEADS * HEAD_DIM


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return sat_names(reference_transformer())


def test_the_orbit_table_has_22426_rows():
    """226 text tokens + (145 - 1) / 4 + 1 = 37 latent frames of 20 x 30 patches (40 x 60 latents, patch 2)."""
    assert SatShape().table_rows(2) == 226 + 37 * 20 * 30 == 22426
    assert SatShape(num_frames=9, latent_height=4, latent_width=8, text_length=6).table_rows(2) == 6 + 3 * 2 * 4


def test_the_sat_yaml_sizes_the_table_and_alpha(tmp_path):
    path = tmp_path / "sat.yaml"
    path.write_text(SAT_YAML.replace("pos_embed_config:", "lora_config:\n          params: {lora_alpha: 4}\n        pos_embed_config:"))
    assert read_sat_shape(path) == SatShape(num_frames=9, latent_height=4, latent_width=8, text_length=6, lora_alpha=4.0)
    assert read_sat_shape(None) == SatShape()


@pytest.mark.parametrize("text, rule", [
    (None, "does not exist: pass the SAT model YAML"),
    ("sampling:\n  steps: 50\n", "has no model.network_config.params: pass the SAT model YAML, not the inference one"),
    ("model:\n  network_config:\n    params:\n      num_frames: many\n", "must be numbers"),
])
def test_a_bad_sat_yaml_is_refused_by_its_rule(tmp_path, text, rule):
    path = tmp_path / "sat.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(DimensionXError, match=rule):
        read_sat_shape(path)


def test_the_checkpoint_is_found_from_the_run_its_checkpoints_folder_a_tag_or_the_file(tmp_path, state):
    folder = save_deepspeed({"x": torch.zeros(1)}, tmp_path / "run")
    states = folder / "1" / MODEL_STATES
    for source in (tmp_path / "run", folder, folder / "1", states):
        assert find_model_states(source) == states
    (folder / "latest").write_text("7\n")
    with pytest.raises(DimensionXError, match="names tag '7' but .* is missing: the download is incomplete"):
        find_model_states(folder)
    with pytest.raises(DimensionXError, match="holds neither `latest` nor"):
        find_model_states(tmp_path)
    with pytest.raises(DimensionXError, match="does not exist: pass the SAT checkpoint folder"):
        find_model_states(tmp_path / "nowhere")


def test_lora_alpha_scales_the_merged_delta(state):
    """SAT's LoraMixin adds alpha / r * B @ A to the weight."""
    rank, alpha = 2, 3.0
    full, lora = with_sat_lora(dict(state), rank)
    conversion = rename_sat_state(full, lora_alpha=alpha)
    merge_lora(conversion)
    s = f"{P}transformer.layers.0.attention."
    qkv = full[s + "query_key_value.original.weight"]
    want_v = qkv[2 * HIDDEN:] + alpha / rank * lora[s + "query_key_value.matrix_B.2"] @ lora[s + "query_key_value.matrix_A.2"]
    torch.testing.assert_close(conversion.state["transformer_blocks.0.attn1.to_v.weight"], want_v, rtol=0, atol=1e-5)
    assert conversion.lora_rank == rank
    assert torch.equal(conversion.lora["transformer_blocks.0.attn1.to_v.lora_A.weight"], lora[s + "query_key_value.matrix_A.2"])


def test_lora_damage_is_refused_by_its_own_rule(state):
    full, _ = with_sat_lora(dict(state), 2)
    s = f"{P}transformer.layers.1.attention."
    unpaired = {k: v for k, v in full.items() if k != s + "dense.matrix_B.0"}
    with pytest.raises(DimensionXError, match=r"SAT LoRA of transformer_blocks\.1\.attn1\.to_out\.0 has matrix_A or matrix_B but not both"):
        rename_sat_state(unpaired)
    mixed = {**full, s + "dense.matrix_A.0": torch.zeros(3, HIDDEN), s + "dense.matrix_B.0": torch.zeros(HIDDEN, 3)}
    with pytest.raises(DimensionXError, match=r"the SAT LoRA mixes ranks \[2, 3\]"):
        rename_sat_state(mixed)
    with pytest.raises(DimensionXError, match=r"1 tensor\(s\) of the SAT checkpoint have no place .*dense\.matrix_A\.1"):
        rename_sat_state({**full, s + "dense.matrix_A.1": torch.zeros(2, HIDDEN)})  # dense has one part, not two
    lora_only = {k: v for k, v in full.items() if "matrix_" in k}
    with pytest.raises(DimensionXError, match="holds LoRA tensors but not the model they adapt: export them with --lora-only"):
        merge_lora(rename_sat_state(lora_only))


def test_a_qkv_whose_rows_do_not_split_in_three_is_named(state):
    s = f"{P}transformer.layers.0.attention.query_key_value.weight"
    with pytest.raises(DimensionXError, match=rf"{s} has {3 * HIDDEN - 1} rows, not a multiple of 3"):
        rename_sat_state({**state, s: torch.zeros(3 * HIDDEN - 1, HIDDEN)})


def test_many_unknown_tensors_are_listed_up_to_eight(state):
    extra = {f"{P}mixins.unknown.{k}": torch.zeros(1) for k in range(9)}
    with pytest.raises(DimensionXError) as error:
        rename_sat_state({**state, **extra, "stray": torch.zeros(1)})
    message = str(error.value)
    assert message.startswith("10 tensor(s) of the SAT checkpoint") and message.count("mixins.unknown.") == 8
    assert " ..." in message and "stray" not in message  # sorted: 'model.…' names before 'stray'


def test_lora_export_refuses_a_wrong_suffix_and_a_checkpoint_without_lora(tmp_path, state):
    source = save_deepspeed(state, tmp_path / "run")
    with pytest.raises(DimensionXError, match=r"a director LoRA is a \.safetensors file \(e\.g\. .*out\.safetensors\)"):
        export_sat_lora(source, tmp_path / "out.pt")
    with pytest.raises(DimensionXError, match="holds no SAT LoRA tensors .*convert it without --lora-only"):
        export_sat_lora(source, tmp_path / "out.safetensors")
    assert not Path(tmp_path / "out.safetensors").exists()


def test_a_tensor_under_another_prefix_is_not_taken_for_a_transformer_weight(state):
    """Only names under ``model.diffusion_model.`` are the transformer's; a name of the same length under
    another prefix (an EMA copy, another module) is refused by name, not converted."""
    key = "time_embed.0.weight"
    other = "model.diffusion_ema00." + key
    assert len(other) == len(P + key)
    with pytest.raises(DimensionXError, match=rf"1 tensor\(s\) of the SAT checkpoint have no place .*{other}"):
        rename_sat_state({**state, other: state[P + key]})


@pytest.mark.parametrize("saved", [{"module": {}}, {"module": {"a": torch.zeros(1), "step": 3}}, [torch.zeros(1)]])
def test_a_checkpoint_without_a_state_dict_of_tensors_is_refused(tmp_path, saved):
    path = tmp_path / MODEL_STATES
    torch.save(saved, path)
    with pytest.raises(DimensionXError, match="has no state dict of tensors under 'module' \\(the DeepSpeed layout\\)"):
        load_sat_state(path)


@pytest.mark.parametrize("dropped", [6, 7])
def test_missing_tensors_are_named_up_to_six_then_an_ellipsis(state, dropped):
    conversion = rename_sat_state(state)
    config = infer_config(conversion.state, SatShape(num_frames=9, latent_height=4, latent_width=8, text_length=6))
    names = sorted(k for k in conversion.state if k.startswith("transformer_blocks.1."))[:dropped]
    with pytest.raises(DimensionXError) as error:
        build_transformer(config, {k: v for k, v in conversion.state.items() if k not in names})
    listed = ", ".join(names[:6]) + (" ..." if dropped > 6 else "")
    assert f"(missing: {listed}). The names are diffusers'" in str(error.value)


@pytest.mark.parametrize("content, message", [
    (b"", r"is empty \(0 bytes\): the download is incomplete"),
    (bytes(range(7, 200)), r"is not a PyTorch checkpoint: it is neither torch.save's zip archive nor a pickle \(it starts with b'\\x07"),
])
def test_an_empty_or_foreign_file_is_named_for_what_it_is(tmp_path, content, message):
    """Not "holds Python objects beyond tensors" (the pickle refusal) for bytes that are no pickle at all."""
    path = tmp_path / MODEL_STATES
    path.write_bytes(content)
    with pytest.raises(DimensionXError, match=message):
        load_sat_state(path)
    torch.save({"module": {"w": torch.zeros(2)}}, path)  # both formats' openings pass the check
    assert load_sat_state(path)[1]["w"].shape == (2,)
    torch.save({"module": {"w": torch.zeros(2)}}, path, _use_new_zipfile_serialization=False)
    assert load_sat_state(path)[1]["w"].shape == (2,)
