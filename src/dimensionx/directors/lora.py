"""Director LoRAs: reading the official files, checking them against the model, fusing them.

The official DimensionX files come from CogVideo's SAT exporter. Their keys name the
transformer's modules without the ``transformer.`` prefix that diffusers expects
(``transformer_blocks.0.attn1.to_q.lora_A.weight``); diffusers >= 0.33 silently skips such
keys, so a video comes out without its camera motion. Here both key styles are accepted,
and after loading every tensor is checked to have landed in the model.

A LoRA file holds no alpha: its delta is ``B @ A`` and it is fused at ``scale = 1 / rank``
(1/256 for the official rank-256 files), as the original inference script does. With
several directors each delta is multiplied by its weight::

    W' = W + sum_i weight_i * scale_i * B_i @ A_i
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import DimensionXError

# The attention projections of every transformer block, as named by diffusers.
LORA_TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0")
_PREFIX = "transformer."
_SUFFIXES = (".lora_A.weight", ".lora_B.weight")


@dataclasses.dataclass
class LoraFile:
    path: Path
    tensors: dict[str, torch.Tensor]  # unprefixed keys, e.g. "transformer_blocks.0.attn1.to_q.lora_A.weight"
    rank: int
    sha256: str

    @property
    def modules(self) -> list[str]:
        return sorted({k[: -len(_SUFFIXES[0])] for k in self.tensors if k.endswith(_SUFFIXES[0])})


def read_lora(path: str | Path) -> LoraFile:
    """Reads a LoRA safetensors file in the SAT-exporter (unprefixed) or diffusers (prefixed) style."""
    path = Path(path)
    if not path.is_file():
        raise DimensionXError(f"LoRA file {path} does not exist: check --lora, or run `dimensionx motions` to see where directors are looked for")
    try:
        raw = load_file(path)
    except Exception as exc:
        if _is_pickle(path):
            raise DimensionXError(
                f"{path} is a PyTorch pickle (torch.save), not a safetensors file. Pickles can run code when loaded, so "
                "dimensionx does not load them. If you trust its source, convert it once: python -c \"import torch; "
                "from safetensors.torch import save_file; "
                f"save_file(torch.load('{path}', weights_only=True), '{path.with_suffix('.safetensors')}')\" "
                "and pass the .safetensors file") from None
        raise DimensionXError(f"{path} is not a readable safetensors LoRA file ({exc}): re-download it") from None
    tensors = {k[len(_PREFIX):] if k.startswith(_PREFIX) else k: v for k, v in raw.items()}
    foreign = sorted(k for k in tensors if not k.endswith(_SUFFIXES) or not k.startswith("transformer_blocks."))
    if foreign:
        raise DimensionXError(
            f"{path} has {len(foreign)} keys that are not transformer LoRA tensors (e.g. {', '.join(foreign[:3])}): "
            "a director LoRA holds only `transformer_blocks.N.<module>.lora_A/lora_B.weight` tensors"
        )
    if not tensors:
        raise DimensionXError(f"{path} holds no tensors: re-download it")
    _check_tensors(path, tensors)
    lora = LoraFile(path, tensors, rank=0, sha256=_sha256(path))
    unpaired = [m for m in lora.modules if f"{m}.lora_B.weight" not in tensors]
    unpaired += sorted({k[: -len(_SUFFIXES[1])] for k in tensors if k.endswith(_SUFFIXES[1])} - set(lora.modules))
    if unpaired:
        raise DimensionXError(f"{path} has modules with lora_A but no lora_B or the reverse: {', '.join(unpaired[:5])}; the file is damaged")
    ranks = {tensors[f"{m}.lora_A.weight"].shape[0] for m in lora.modules}
    if len(ranks) != 1:
        raise DimensionXError(f"{path} mixes LoRA ranks {sorted(ranks)}: a director LoRA has one rank for all its layers")
    lora.rank = ranks.pop()
    return lora


def _check_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Every LoRA tensor is a finite matrix; a NaN, an inf or another shape means a damaged file."""
    not_2d = sorted(k for k, v in tensors.items() if v.ndim != 2)
    if not_2d:
        raise DimensionXError(
            f"{path} is damaged: {len(not_2d)} tensor(s) are not matrices (e.g. {not_2d[0]} has shape "
            f"{list(tensors[not_2d[0]].shape)}); LoRA tensors are [rank, in] and [out, rank]: re-download it")
    bad = sorted(k for k, v in tensors.items() if not bool(torch.isfinite(v).all()))
    if bad:
        raise DimensionXError(
            f"{path} is damaged: {len(bad)} tensor(s) hold NaN or infinite values ({', '.join(bad[:3])}"
            f"{' ...' if len(bad) > 3 else ''}); re-download it or retrain the LoRA")


def _is_pickle(path: Path) -> bool:
    """torch.save writes a zip archive (PK) or, in the legacy format, a pickle (protocol byte 0x80)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def save_lora(tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """Writes ``tensors`` in the official (unprefixed) layout."""
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_fits(lora: LoraFile, transformer: torch.nn.Module) -> None:
    """Raises if ``lora`` targets modules the transformer lacks or has shapes made for another model."""
    modules = dict(transformer.named_modules())
    missing = [m for m in lora.modules if not isinstance(modules.get(m), torch.nn.Linear)]
    if missing:
        raise DimensionXError(
            f"LoRA {lora.path.name} targets {len(missing)} layers this model does not have (e.g. {', '.join(missing[:3])}): "
            "it was made for another base model; directors need CogVideoX-5B-I2V"
        )
    for name in lora.modules:
        out_features, in_features = modules[name].weight.shape
        a, b = lora.tensors[f"{name}.lora_A.weight"], lora.tensors[f"{name}.lora_B.weight"]
        if a.shape[1] != in_features or b.shape[0] != out_features or b.shape[1] != a.shape[0]:
            raise DimensionXError(
                f"LoRA {lora.path.name} does not fit this model: {name} has lora_A {list(a.shape)} and lora_B {list(b.shape)} "
                f"but the model's layer is [{out_features}, {in_features}]. It was made for another base model; "
                "directors need CogVideoX-5B-I2V"
            )


def fuse_directors(pipe, loras: list[tuple[LoraFile, float]], scale: float | None = None) -> list[float]:
    """Fuses ``(lora, weight)`` pairs into ``pipe.transformer`` and removes the LoRA layers.

    Each delta is multiplied by ``weight * scale`` where ``scale`` defaults to ``1 / rank``.
    Returns the effective multiplier of each LoRA. Raises if any tensor did not land.
    """
    for lora, _ in loras:
        check_fits(lora, pipe.transformer)
    names = [f"director_{i}" for i in range(len(loras))]
    for name, (lora, _) in zip(names, loras):
        state = {_PREFIX + k: v for k, v in lora.tensors.items()}
        with warnings.catch_warnings():  # peft warns on every adapter after the first; several are the point here
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            pipe.load_lora_weights(state, adapter_name=name)
        _check_loaded(pipe.transformer, lora, name)
    multipliers = [weight * (scale if scale is not None else 1.0 / lora.rank) for lora, weight in loras]
    pipe.set_adapters(names, multipliers)
    pipe.fuse_lora(components=["transformer"], lora_scale=1.0, adapter_names=names)
    pipe.unload_lora_weights()
    return multipliers


def _check_loaded(transformer: torch.nn.Module, lora: LoraFile, adapter: str) -> None:
    """Every tensor of ``lora`` sits in its module under ``adapter``, and no other module got one."""
    received = {
        name for name, module in transformer.named_modules()
        if adapter in getattr(module, "lora_A", {})
    }
    expected = set(lora.modules)
    not_applied = sorted(expected - received)
    unexpected = sorted(received - expected)
    wrong = [
        m for m in sorted(expected & received)
        if not _same(transformer.get_submodule(m).lora_A[adapter].weight, lora.tensors[f"{m}.lora_A.weight"])
        or not _same(transformer.get_submodule(m).lora_B[adapter].weight, lora.tensors[f"{m}.lora_B.weight"])
    ]
    if not_applied or unexpected or wrong:
        raise DimensionXError(
            f"LoRA {lora.path.name} was not applied as written: "
            + "; ".join(
                f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                for label, keys in (("not applied", not_applied), ("unexpected", unexpected), ("altered", wrong))
                if keys
            )
            + ". Report this with your diffusers and peft versions."
        )


def _same(loaded: torch.Tensor, written: torch.Tensor) -> bool:
    return torch.equal(loaded.detach().cpu(), written.to(loaded.dtype))


def snapshot_weights(transformer: torch.nn.Module, loras: list[LoraFile]) -> dict[str, torch.Tensor]:
    """CPU copies of the weights that ``loras`` will change, for :func:`restore_weights`."""
    modules = sorted({m for lora in loras for m in lora.modules})
    return {m: transformer.get_submodule(m).weight.detach().to("cpu", copy=True) for m in modules}


def restore_weights(transformer: torch.nn.Module, saved: dict[str, torch.Tensor]) -> None:
    """Undoes a fusion bit-exactly (unfusing by subtraction would not, in bf16)."""
    with torch.no_grad():
        for name, weight in saved.items():
            transformer.get_submodule(name).weight.copy_(weight)
