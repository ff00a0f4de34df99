"""``ConvertConfig``: every knob of ``dimensionx convert-sat``, importable without torch."""

from __future__ import annotations

import dataclasses

from .hub import DEFAULT_MODEL


@dataclasses.dataclass
class ConvertConfig:
    """Every knob of ``dimensionx convert-sat``."""

    source: str | None = None  # SAT checkpoint folder (holding `latest`) or its mp_rank_00_model_states.pt
    out: str | None = None  # diffusers folder, or a .safetensors director file with lora_only
    base: str = DEFAULT_MODEL  # pipeline whose VAE, T5 and scheduler the orbit model uses (hub id or folder)
    with_base: str | None = None  # local base pipeline folder: write a full pipeline (its components hard-linked or copied)
    sat_config: str | None = None  # SAT model YAML: frames/latent size of the position table, LoRA alpha (default: the orbit's)
    lora_only: bool = False  # write only the SAT LoRA (matrix_A/matrix_B) as a director file
    trust_pickle: bool = False  # let torch.load run code stored in the checkpoint (only for files you trust)
    overwrite: bool = False  # replace an existing --out written by dimensionx
