"""SAT (SwissArmyTransformer / DeepSpeed) CogVideoX checkpoints -> diffusers.

The DimensionX 360-degree orbit model and directors trained with CogVideo's SAT tree are
published as ``checkpoints/latest`` + ``checkpoints/<tag>/mp_rank_00_model_states.pt``, the
state dict under ``"module"`` with names prefixed ``model.diffusion_model.``. This module

1. reads such a checkpoint with ``torch.load(weights_only=True)`` (a pickle that needs code is
   refused unless the caller trusts it);
2. renames every tensor to ``CogVideoXTransformer3DModel``'s names (``query_key_value`` split
   in q/k/v, each ``adaLN_modulations.i`` split into the norm1/norm2 modulations, ...);
   SAT LoRA layers (``original.weight`` + ``matrix_A.i`` / ``matrix_B.i``) are merged as
   ``W + alpha / r * B_i @ A_i`` or exported apart as a director file;
3. reads the architecture from the tensor shapes (frames and latent size, which shapes cannot
   tell apart, from the SAT YAML or the orbit model's defaults) and checks every tensor's name
   and shape against that architecture: a missing, extra or mis-shaped tensor is an error
   naming it; tensors that are not transformer weights (T5, VAE, SAT's unused tables) are
   listed in the report as skipped;
4. writes a diffusers folder atomically: ``transformer/`` + ``model_index.json`` (the base
   model's VAE, T5 and scheduler are used at load time) or a full pipeline with ``with_base``.

The learned positional table (``mixins.pos_embed.pos_embedding``, 226 text rows + one row per
latent patch: 22426 x 3072 for 145 frames at 40x60 latents) is kept as is: the config's
``sample_frames`` / ``sample_height`` / ``sample_width`` are set to the SAT model's, so diffusers
neither rejects the table nor replaces it with a regenerated sinusoid.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import re
import shutil
from pathlib import Path

import torch

from ..atomic import atomic_file
from ..config import read_mapping
from ..errors import DimensionXError
from ..outputs import atomic_dir, check_output_dir, check_writable
from .hub import BASE_KEY, DEFAULT_MODEL

SAT_PREFIX = "model.diffusion_model."
MODEL_STATES = "mp_rank_00_model_states.pt"
BASE_COMPONENTS = ("scheduler", "text_encoder", "tokenizer", "vae")
# CogVideoX-5B-I2V settings that no tensor shape reveals (THUDM/CogVideoX-5b-I2V transformer config).
FIXED_CONFIG = dict(
    flip_sin_to_cos=True, freq_shift=0, dropout=0.0, attention_bias=True, temporal_compression_ratio=4,
    activation_fn="gelu-approximate", timestep_activation_fn="silu", norm_elementwise_affine=True, norm_eps=1e-5,
    spatial_interpolation_scale=1.875, temporal_interpolation_scale=1.0, use_rotary_positional_embeddings=True,
    use_learned_positional_embeddings=True, patch_bias=True,
)
_QKV = ("to_q", "to_k", "to_v")
logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SatShape:
    """What the SAT YAML says and the tensors cannot: the video the position table was sized for."""

    num_frames: int = 145  # pixel frames (4k + 1); the orbit model's
    latent_height: int = 40  # latent rows (pixels / 8): 320 px
    latent_width: int = 60  # latent columns: 480 px
    text_length: int = 226  # T5 tokens
    lora_alpha: float = 1.0  # SAT LoraMixin's alpha: a LoRA delta is alpha / r * B @ A

    def table_rows(self, patch: int) -> int:
        frames = (self.num_frames - 1) // FIXED_CONFIG["temporal_compression_ratio"] + 1
        return self.text_length + frames * (self.latent_height // patch) * (self.latent_width // patch)


@dataclasses.dataclass
class Renamed:
    state: dict[str, torch.Tensor]  # diffusers names
    lora: dict[str, torch.Tensor]  # director-file names (unprefixed), alpha folded into lora_B; empty if none
    lora_rank: int | None
    skipped: dict[str, str]  # SAT name -> why it is not a transformer weight


def read_sat_shape(path: str | Path | None) -> SatShape:
    """``SatShape`` from a SAT model YAML (``network_config.params`` and the LoRA/pos-embed params), else the orbit's."""
    if path is None:
        return SatShape()
    from omegaconf import OmegaConf

    path = Path(path)
    if not path.is_file():
        raise DimensionXError(f"--sat-config {path} does not exist: pass the SAT model YAML (e.g. configs/cogvideox_5b_i2v_lora_145.yaml)")
    yaml = OmegaConf.to_container(read_mapping(path, "--sat-config"))
    params = _section(yaml, "model", "network_config", "params")
    pos = _section(params, "modules", "pos_embed_config", "params")
    lora = _section(params, "modules", "lora_config", "params")
    if not params:
        raise DimensionXError(f"--sat-config {path} has no model.network_config.params: pass the SAT model YAML, not the inference one")
    default = SatShape()
    try:
        return SatShape(
            num_frames=int(params.get("num_frames", default.num_frames)),
            latent_height=int(params.get("latent_height", default.latent_height)),
            latent_width=int(params.get("latent_width", default.latent_width)),
            text_length=int(pos.get("text_length", default.text_length)),
            lora_alpha=float(lora.get("lora_alpha", default.lora_alpha)),
        )
    except (TypeError, ValueError) as exc:
        raise DimensionXError(f"--sat-config {path}: {exc}; num_frames, latent_height, latent_width, text_length and "
                              "lora_alpha must be numbers: pass the SAT model YAML the checkpoint was trained with") from None


def _section(mapping: dict, *keys: str) -> dict:
    """``mapping[keys[0]][keys[1]]...``, or {} where a level is missing or not a mapping."""
    for key in keys:
        mapping = mapping.get(key) if isinstance(mapping, dict) else None
    return mapping if isinstance(mapping, dict) else {}


def find_model_states(source: str | Path) -> Path:
    """The ``.pt`` of a SAT checkpoint: a folder with ``latest`` (or its parent), a tag folder, or the file."""
    source = Path(source).expanduser()
    if source.is_file():
        return source
    if not source.is_dir():
        raise DimensionXError(f"{source} does not exist: pass the SAT checkpoint folder (holding `latest`) or its {MODEL_STATES}")
    for folder in (source, source / "checkpoints"):
        if (folder / "latest").is_file():
            tag = (folder / "latest").read_text().strip()
            states = folder / tag / MODEL_STATES
            if not states.is_file():
                raise DimensionXError(f"{folder / 'latest'} names tag {tag!r} but {states} is missing: the download is incomplete")
            return states
    if (source / MODEL_STATES).is_file():
        return source / MODEL_STATES
    raise DimensionXError(f"{source} holds neither `latest` nor {MODEL_STATES}: pass the SAT checkpoint folder or the .pt file")


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6: a zip archive
PICKLE_PROTO = b"\x80"  # the legacy format (and a bare pickle) opens with the pickle protocol opcode


def load_sat_state(source: str | Path, trust_pickle: bool = False) -> tuple[Path, dict[str, torch.Tensor]]:
    """Tensors of a SAT/DeepSpeed checkpoint (the ``"module"`` dict); loaded without running pickled code
    unless ``trust_pickle``."""
    path = find_model_states(source)
    logger.info("reading %s (%.1f GB)", path, path.stat().st_size / 1e9)
    with open(path, "rb") as file:
        head = file.read(len(ZIP_MAGIC))
    if not head:
        raise DimensionXError(f"{path} is empty (0 bytes): the download is incomplete; download it again")
    if head != ZIP_MAGIC and head[:1] != PICKLE_PROTO:
        raise DimensionXError(f"{path} is not a PyTorch checkpoint: it is neither torch.save's zip archive nor a pickle "
                              f"(it starts with {head!r}); download it again, or pass the SAT folder holding `latest`")
    try:
        saved = _torch_load(path, trust_pickle)
    except pickle.UnpicklingError as exc:
        raise DimensionXError(
            f"{path} holds Python objects beyond tensors, which torch.load only rebuilds by running code from the file "
            f"({str(exc).splitlines()[0][:200]}). If you trust where it came from, pass --trust-pickle"
        ) from None
    except (RuntimeError, OSError, EOFError) as exc:
        raise DimensionXError(f"{path} is not a readable PyTorch checkpoint ({exc}): re-download it") from None
    state = saved.get("module", saved) if isinstance(saved, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DimensionXError(f"{path} has no state dict of tensors under 'module' (the DeepSpeed layout): is it a SAT checkpoint?")
    return path, state


def _torch_load(path: Path, trust_pickle: bool):
    """Memory-mapped when the file is in torch's zip format (DeepSpeed's), else read whole (legacy format)."""
    try:
        return torch.load(path, map_location="cpu", mmap=True, weights_only=not trust_pickle)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)


# SAT name (after model.diffusion_model.) -> diffusers name; {i} is the layer, {wb} weight or bias.
_RENAMES = [
    (r"time_embed\.0\.(?P<wb>weight|bias)", "time_embedding.linear_1.{wb}"),
    (r"time_embed\.2\.(?P<wb>weight|bias)", "time_embedding.linear_2.{wb}"),
    (r"mixins\.patch_embed\.proj\.(?P<wb>weight|bias)", "patch_embed.proj.{wb}"),
    (r"mixins\.patch_embed\.text_proj\.(?P<wb>weight|bias)", "patch_embed.text_proj.{wb}"),
    (r"mixins\.pos_embed\.pos_embedding", "patch_embed.pos_embedding"),
    (r"mixins\.final_layer\.norm_final\.(?P<wb>weight|bias)", "norm_out.norm.{wb}"),
    (r"mixins\.final_layer\.linear\.(?P<wb>weight|bias)", "proj_out.{wb}"),
    (r"mixins\.final_layer\.adaLN_modulation\.1\.(?P<wb>weight|bias)", "norm_out.linear.{wb}"),
    (r"transformer\.final_layernorm\.(?P<wb>weight|bias)", "norm_final.{wb}"),
    (r"mixins\.adaln_layer\.query_layernorm_list\.(?P<i>\d+)\.(?P<wb>weight|bias)", "transformer_blocks.{i}.attn1.norm_q.{wb}"),
    (r"mixins\.adaln_layer\.key_layernorm_list\.(?P<i>\d+)\.(?P<wb>weight|bias)", "transformer_blocks.{i}.attn1.norm_k.{wb}"),
    (r"transformer\.layers\.(?P<i>\d+)\.input_layernorm\.(?P<wb>weight|bias)", "transformer_blocks.{i}.norm1.norm.{wb}"),
    (r"transformer\.layers\.(?P<i>\d+)\.post_attention_layernorm\.(?P<wb>weight|bias)", "transformer_blocks.{i}.norm2.norm.{wb}"),
    (r"transformer\.layers\.(?P<i>\d+)\.attention\.dense(\.original)?\.(?P<wb>weight|bias)", "transformer_blocks.{i}.attn1.to_out.0.{wb}"),
    (r"transformer\.layers\.(?P<i>\d+)\.mlp\.dense_h_to_4h\.(?P<wb>weight|bias)", "transformer_blocks.{i}.ff.net.0.proj.{wb}"),
    (r"transformer\.layers\.(?P<i>\d+)\.mlp\.dense_4h_to_h\.(?P<wb>weight|bias)", "transformer_blocks.{i}.ff.net.2.{wb}"),
]
_QKV_NAME = re.compile(r"transformer\.layers\.(?P<i>\d+)\.attention\.query_key_value(\.original)?\.(?P<wb>weight|bias)")
_ADALN_NAME = re.compile(r"mixins\.adaln_layer\.adaLN_modulations\.(?P<i>\d+)\.1\.(?P<wb>weight|bias)")
_LORA_NAME = re.compile(r"transformer\.layers\.(?P<i>\d+)\.attention\.(?P<layer>query_key_value|dense)\.matrix_(?P<ab>[AB])\.(?P<part>\d)")
_SKIPPED = [  # SAT names that are not transformer weights, and why
    (re.compile(r"(model\.)?conditioner\..*"), "T5 text encoder of the SAT engine: the base model's T5 is used"),
    (re.compile(r"(model\.)?first_stage_model\..*"), "VAE of the SAT engine: the base model's VAE is used"),
    (re.compile(re.escape(SAT_PREFIX) + r"transformer\.(position_embeddings|word_embeddings)\.weight"),
     "SAT's token/position tables, replaced by the patch embedding and mixins.pos_embed in CogVideoX"),
    (re.compile(re.escape(SAT_PREFIX) + r"mixins\.pos_embed\.freqs_(sin|cos)"), "rotary tables, recomputed by diffusers"),
]


def rename_sat_state(state: dict[str, torch.Tensor], lora_alpha: float = 1.0) -> Renamed:
    """Diffusers-named transformer tensors of a SAT state dict; LoRA pairs come back apart (see :func:`merge_lora`).

    Raises naming every tensor that is neither a transformer weight nor a known non-weight.
    """
    out, lora, skipped, unknown = {}, {}, {}, []
    for name, tensor in state.items():
        reason = next((why for pattern, why in _SKIPPED if pattern.fullmatch(name)), None)
        if reason:
            skipped[name] = reason
            continue
        if not name.startswith(SAT_PREFIX):
            unknown.append(name)
            continue
        key = name[len(SAT_PREFIX):]
        if not _rename_one(key, tensor, out, lora):
            unknown.append(name)
    if unknown:
        raise DimensionXError(
            f"{len(unknown)} tensor(s) of the SAT checkpoint have no place in CogVideoXTransformer3DModel: "
            f"{', '.join(sorted(unknown)[:8])}{' ...' if len(unknown) > 8 else ''}. "
            "Is it a CogVideoX 1.0 (5B-I2V family) SAT checkpoint? CogVideoX 1.5 and other models are not supported"
        )
    modules = {k.rsplit(".lora_", 1)[0] for k in lora}
    unpaired = sorted(m for m in modules if f"{m}.lora_A.weight" not in lora or f"{m}.lora_B.weight" not in lora)
    if unpaired:
        raise DimensionXError(f"SAT LoRA of {', '.join(unpaired[:5])} has matrix_A or matrix_B but not both: the checkpoint is damaged")
    ranks = {t.shape[0] for k, t in lora.items() if k.endswith("lora_A.weight")}
    if len(ranks) > 1:
        raise DimensionXError(f"the SAT LoRA mixes ranks {sorted(ranks)}: a SAT LoraMixin has one rank r")
    rank = ranks.pop() if ranks else None
    if rank is not None and lora_alpha != 1.0:  # fold alpha in: a director file is fused at 1 / rank
        lora = {k: v * lora_alpha if k.endswith("lora_B.weight") else v for k, v in lora.items()}
    return Renamed(state=out, lora=lora, lora_rank=rank, skipped=skipped)


def _rename_one(key: str, tensor: torch.Tensor, out: dict, lora: dict) -> bool:
    if match := _QKV_NAME.fullmatch(key):
        for target, part in zip(_QKV, _split(tensor, 3, key)):
            out[f"transformer_blocks.{match['i']}.attn1.{target}.{match['wb']}"] = part
        return True
    if match := _ADALN_NAME.fullmatch(key):
        # SAT's 12 chunks: shift, scale, gate (msa), shift, scale, gate (mlp), then the same six for text.
        chunks = _split(tensor, 12, key)
        out[f"transformer_blocks.{match['i']}.norm1.linear.{match['wb']}"] = torch.cat(chunks[0:3] + chunks[6:9])
        out[f"transformer_blocks.{match['i']}.norm2.linear.{match['wb']}"] = torch.cat(chunks[3:6] + chunks[9:12])
        return True
    if match := _LORA_NAME.fullmatch(key):
        part = int(match["part"])
        targets = _QKV if match["layer"] == "query_key_value" else ("to_out.0",)
        if part >= len(targets):
            return False
        lora[f"transformer_blocks.{match['i']}.attn1.{targets[part]}.lora_{match['ab']}.weight"] = tensor
        return True
    for pattern, template in _RENAMES:
        if match := re.fullmatch(pattern, key):
            out[template.format(**match.groupdict())] = tensor
            return True
    return False


def _split(tensor: torch.Tensor, parts: int, name: str) -> list[torch.Tensor]:
    if tensor.shape[0] % parts:
        raise DimensionXError(f"{SAT_PREFIX}{name} has {tensor.shape[0]} rows, not a multiple of {parts}: the checkpoint is damaged")
    return list(torch.chunk(tensor, parts, dim=0))


def merge_lora(conversion: Renamed) -> None:
    """``W += B @ A / rank`` for every LoRA pair (alpha already folded into B), in float32."""
    if conversion.lora and "patch_embed.proj.weight" not in conversion.state:
        raise DimensionXError("the SAT checkpoint holds LoRA tensors but not the model they adapt: export them with --lora-only")
    for module in sorted({k.rsplit(".lora_", 1)[0] for k in conversion.lora}):
        a, b = conversion.lora[f"{module}.lora_A.weight"], conversion.lora[f"{module}.lora_B.weight"]
        weight = conversion.state.get(f"{module}.weight")
        if weight is None:
            raise DimensionXError(f"SAT LoRA of {module} has no base weight (…original.weight) to merge into: convert it with --lora-only")
        if b.shape[1] != a.shape[0] or (b.shape[0], a.shape[1]) != tuple(weight.shape):
            raise DimensionXError(f"SAT LoRA of {module}: matrix_B {list(b.shape)} @ matrix_A {list(a.shape)} does not fit the weight {list(weight.shape)}")
        delta = b.float() @ a.float() / conversion.lora_rank
        conversion.state[f"{module}.weight"] = (weight.float() + delta).to(weight.dtype)


def infer_config(state: dict[str, torch.Tensor], shape: SatShape) -> dict:
    """``CogVideoXTransformer3DModel`` arguments read from the renamed tensors' shapes (plus ``shape``)."""
    def need(name: str) -> torch.Tensor:
        if name not in state:
            raise DimensionXError(f"the SAT checkpoint lacks the tensor behind {name}, so its architecture cannot be read: is it a CogVideoX I2V transformer?")
        return state[name]

    proj = need("patch_embed.proj.weight")
    if proj.ndim != 4:
        raise DimensionXError(f"patch embedding of shape {list(proj.shape)}: only CogVideoX 1.0 checkpoints (a 2D convolution patch embedding) are supported")
    hidden, in_channels, patch, _ = proj.shape
    head_dim = need("transformer_blocks.0.attn1.norm_q.weight").shape[0]
    layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("transformer_blocks."))
    rows = need("patch_embed.pos_embedding").shape[1]
    if rows != shape.table_rows(patch):
        raise DimensionXError(
            f"mixins.pos_embed.pos_embedding has {rows} rows, but {shape.num_frames} frames at {shape.latent_height}x{shape.latent_width} "
            f"latents with {shape.text_length} text tokens need {shape.table_rows(patch)}: pass the SAT model YAML the checkpoint was "
            "trained with as --sat-config (its num_frames, latent_height, latent_width and text_length size the table)"
        )
    return dict(
        num_attention_heads=hidden // head_dim, attention_head_dim=head_dim, in_channels=in_channels,
        out_channels=need("proj_out.weight").shape[0] // patch**2, time_embed_dim=need("time_embedding.linear_1.weight").shape[0],
        text_embed_dim=need("patch_embed.text_proj.weight").shape[1], num_layers=layers, sample_width=shape.latent_width,
        sample_height=shape.latent_height, sample_frames=shape.num_frames, patch_size=patch,
        max_text_seq_length=shape.text_length, **FIXED_CONFIG,
    )


def build_transformer(config: dict, state: dict[str, torch.Tensor]):
    """The diffusers transformer holding ``state``; every name and shape checked against ``config``."""
    from diffusers import CogVideoXTransformer3DModel

    with torch.device("meta"):
        model = CogVideoXTransformer3DModel(**config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    misshaped = [f"{k} {list(state[k].shape)} (expected {list(v.shape)})" for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = [f"{label}: {', '.join(names[:6])}{' ...' if len(names) > 6 else ''}"
                for label, names in (("missing", missing), ("unexpected", extra), ("wrong shape", misshaped)) if names]
    if problems:
        raise DimensionXError(
            f"the SAT checkpoint does not fit a CogVideoX transformer of {config['num_layers']} layers, hidden "
            f"{config['num_attention_heads'] * config['attention_head_dim']} ({'; '.join(problems)}). The names are diffusers'; "
            "SAT's are in docs/orbit.md. The checkpoint is damaged or of another architecture"
        )
    model.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True, assign=True)
    return model


def convert_sat(source: str | Path, out: str | Path, base: str = DEFAULT_MODEL, with_base: str | Path | None = None,
                sat_config: str | Path | None = None, trust_pickle: bool = False, overwrite: bool = False,
                max_shard_size: str = "5GB") -> dict:
    """Converts a SAT checkpoint into the diffusers folder ``out``; returns the report written beside it."""
    check_output_dir(out, overwrite)  # before reading gigabytes
    shape = read_sat_shape(sat_config)
    if with_base is not None and not (Path(with_base) / "model_index.json").is_file():
        raise DimensionXError(f"--with-base {with_base} has no model_index.json: pass a CogVideoX-5B-I2V diffusers folder")
    path, state = load_sat_state(source, trust_pickle)
    conversion = rename_sat_state(state, shape.lora_alpha)
    merge_lora(conversion)
    config = infer_config(conversion.state, shape)
    transformer = build_transformer(config, conversion.state)
    report = _report(path, conversion, config, shape, with_base or base)
    logger.info("writing %s", out)
    with atomic_dir(Path(out), overwrite=overwrite) as tmp:
        transformer.save_pretrained(tmp / "transformer", max_shard_size=max_shard_size)
        if with_base is not None:
            _copy_base(Path(with_base), tmp)
        else:
            _write_model_index(tmp, base)
        (tmp / "conversion.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def export_sat_lora(source: str | Path, out: str | Path, sat_config: str | Path | None = None,
                    trust_pickle: bool = False, overwrite: bool = False) -> dict:
    """Writes the SAT LoRA tensors of ``source`` as a director file (official unprefixed layout, fused at 1/rank)."""
    from safetensors.torch import save_file

    out = Path(out)
    if out.suffix != ".safetensors":
        raise DimensionXError(f"--out {out}: a director LoRA is a .safetensors file (e.g. {out.with_suffix('.safetensors')})")
    check_writable(out, overwrite)
    shape = read_sat_shape(sat_config)
    path, state = load_sat_state(source, trust_pickle)
    conversion = rename_sat_state(state, shape.lora_alpha)
    if not conversion.lora:
        raise DimensionXError(f"{path} holds no SAT LoRA tensors (…matrix_A.N / …matrix_B.N): it is a full model; convert it without --lora-only")
    with atomic_file(out) as tmp:
        save_file({k: v.contiguous() for k, v in conversion.lora.items()}, str(tmp))
    return {"source": str(path), "tensors": len(conversion.lora), "rank": conversion.lora_rank, "lora_alpha": shape.lora_alpha}


def _report(path: Path, conversion: Renamed, config: dict, shape: SatShape, base) -> dict:
    return {
        "source": str(path.resolve()), "architecture": config, "sat_shape": dataclasses.asdict(shape),
        "tensors_converted": len(conversion.state), "lora": {"rank": conversion.lora_rank, "merged": bool(conversion.lora),
                                                             "tensors": len(conversion.lora)},
        "skipped": conversion.skipped, "base_model": str(base),
    }


def _write_model_index(folder: Path, base: str) -> None:
    """model_index.json of a CogVideoX I2V pipeline whose VAE, T5 and scheduler come from ``base`` at load time."""
    from diffusers import __version__

    index = {"_class_name": "CogVideoXImageToVideoPipeline", "_diffusers_version": __version__, BASE_KEY: base,
             "scheduler": ["diffusers", "CogVideoXDDIMScheduler"], "text_encoder": ["transformers", "T5EncoderModel"],
             "tokenizer": ["transformers", "T5Tokenizer"], "transformer": ["diffusers", "CogVideoXTransformer3DModel"],
             "vae": ["diffusers", "AutoencoderKLCogVideoX"]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def _copy_base(base: Path, folder: Path) -> None:
    """The base pipeline's other components beside the new transformer (hard links where the disk allows)."""
    for component in BASE_COMPONENTS:
        if (base / component).is_dir():
            shutil.copytree(base / component, folder / component, copy_function=_link_or_copy)
    shutil.copy2(base / "model_index.json", folder / "model_index.json")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)

