"""``VideoConfig``: every knob of a generated video, importable without torch (fast ``--help``)."""

from __future__ import annotations

import dataclasses

from ..models.hub import DEFAULT_MODEL


@dataclasses.dataclass
class VideoConfig:
    """Every knob of ``dimensionx video``; defaults are the original DimensionX settings."""

    image: str | None = None  # input photo (any format Pillow opens)
    prompt: str = ""  # caption of the photo; a VLM caption works best
    motion: str | None = None  # "orbit_left", "orbit_left:0.7,z_zoom_in:0.3", or "none" for the base model
    lora: str | None = None  # a LoRA file: replaces --motion's file, or alone is an unnamed director
    lora_dir: str | None = None  # folder searched for director files by name
    lora_scale: float | None = None  # multiplier of B @ A; None means 1 / rank (1/256 for official files)
    model: str = DEFAULT_MODEL  # hub id, local diffusers folder, or "tiny"
    steps: int = 50  # denoising steps
    guidance: float = 6.0  # classifier-free guidance scale
    dynamic_cfg: bool = True  # cosine-scheduled guidance, as the original
    frames: int = 49  # output frames; 4k + 1
    fps: int = 8  # frames per second of the mp4
    seed: int = 42  # seed of the initial noise (CPU generator: same on every device)
    fit: str = "crop"  # "crop" (centre crop) or "pad" (letterbox) to the model's aspect
    out: str | None = None  # output mp4; default outputs/<image>_<motion>.mp4
    overwrite: bool = False  # replace an existing output
    batch: str | None = None  # file of lines `image@@prompt[@@motion]`, one video each
    device: str = "auto"  # "auto", "cuda", "cuda:1", "cpu"
    dtype: str = "auto"  # "auto" (bf16 on CUDA, fp32 on CPU), "bf16", "fp16", "fp32"
    mode: str = "exact"  # "exact", "fast" (FP8 + step cache) or "lowmem" (offload); see modes.py
    gpus: int = 1  # 2 = CFG-parallel: the two guidance branches run on two GPUs (or CPU processes)
    uncond: str = "empty"  # text of the unguided branch: "empty" (embedding of "", diffusers) or "zero" (zero embedding, as SAT)
    loop_frames: int = 0  # > 0: the last N frames cross-fade into the first, so the video loops without a jump (see loop.py)
