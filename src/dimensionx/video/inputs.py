"""Checks of what a user passes to ``video``, light enough to run before torch is imported."""

from __future__ import annotations

import math
from pathlib import Path

from ..config import check_seed
from ..directors.registry import get_director
from ..errors import DimensionXError
from ..imagefiles import check_image
from ..models.hub import MAX_FRAMES
from ..outputs import check_writable
from ..videofiles import check_fps, check_video_encoder
from .config import VideoConfig
from .image import FITS, check_size
from .loop import check_loop

DTYPE_NAMES = ("bf16", "fp16", "fp32")
MAX_STEPS = 1000  # denoising steps: the scheduler's training timesteps
MAX_GUIDANCE = 50.0  # classifier-free guidance scale
MAX_LORA_SCALE = 10.0  # multiplier of a director's B @ A
UNCONDS = ("empty", "zero")  # unguided branch: embedding of the empty prompt (diffusers) or zeros (SAT, the orbit model)


def parse_motion(motion: str) -> list[tuple[str, float]]:
    """``"orbit_left:0.7,z_zoom_in:0.3"`` -> ``[("orbit_left", 0.7), ("z_zoom_in", 0.3)]``."""
    parts = []
    for item in motion.split(","):
        name, _, weight = item.strip().partition(":")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise DimensionXError(f"--motion {motion!r}: weight {weight!r} of {name} is not a number (write name:0.5)") from None
        if not math.isfinite(value) or value < 0:
            raise DimensionXError(f"--motion {motion!r}: weight {weight} of {name} must be a finite number >= 0 (write name:0.5)")
        parts.append((name.strip(), value))
    return parts


def check_inputs(config: VideoConfig) -> None:
    """Everything a user passes that can be checked without torch: run before any heavy import."""
    if config.image is None:
        raise DimensionXError("no input image: pass IMAGE (or --batch FILE)")
    check_size(config.image, *check_image(config.image))
    if config.motion is None and config.lora is None:
        raise DimensionXError("no director chosen: pass --motion NAME (see `dimensionx motions`), --lora FILE, or --motion none for the base model")
    if config.motion not in (None, "none"):
        for name, _ in parse_motion(config.motion):
            get_director(name)
    if config.frames < 1 or (config.frames - 1) % 4:
        raise DimensionXError(f"--frames {config.frames}: CogVideoX makes 4k+1 frames (the VAE packs 4 frames in one latent): use e.g. 49")
    if config.frames > MAX_FRAMES:
        raise DimensionXError(f"--frames {config.frames}: at most {MAX_FRAMES} (49 is the original setting, 145 the orbit's); "
                              "longer videos do not fit a GPU")
    check_sampling(config.steps, config.guidance, config.seed, config.fps)
    if config.lora_scale is not None and not (math.isfinite(config.lora_scale) and 0 <= config.lora_scale <= MAX_LORA_SCALE):
        raise DimensionXError(f"--lora-scale {config.lora_scale}: a multiplier of B@A from 0 to {MAX_LORA_SCALE:g} (the default "
                              "1/rank is 1/256 for official files; larger values overwhelm the base model)")
    check_gpus(config.gpus)
    if config.fit not in FITS:
        raise DimensionXError(f"--fit {config.fit!r} is unknown: use one of {', '.join(FITS)}")
    if config.dtype != "auto" and config.dtype not in DTYPE_NAMES:
        raise DimensionXError(f"--dtype {config.dtype!r} is unknown: use auto, {', '.join(DTYPE_NAMES)}")
    if config.uncond not in UNCONDS:
        raise DimensionXError(f"--uncond {config.uncond!r} is unknown: use empty (embedding of the empty prompt) or zero (zero embedding, as SAT)")
    check_loop(config.loop_frames, config.frames)
    out = output_path(config)
    check_writable(out, config.overwrite)
    check_writable(out.with_suffix(".json"), config.overwrite)
    if out.suffix.lower() != ".mp4":
        raise DimensionXError(f"--out {out}: the video is written as an mp4, so name the file *.mp4 (e.g. {out.with_suffix('.mp4')})")
    check_video_encoder(f"--out {out}")


def check_sampling(steps: int, guidance: float, seed: int, fps: int) -> None:
    """The numbers of every generated video (``video``, ``orbit``, ``scene3d``, each video of ``scene4d``'s grid)."""
    if not 1 <= steps <= MAX_STEPS:
        raise DimensionXError(f"--steps {steps}: use 1 to {MAX_STEPS} (50 is the original setting)")
    check_fps(fps, "--fps", default=VideoConfig.fps)
    if not math.isfinite(guidance) or guidance < 0:
        raise DimensionXError(f"--guidance {guidance}: the guidance scale must be >= 0 (6 is the original setting; "
                              "1 or less turns guidance off)")
    if guidance > MAX_GUIDANCE:
        raise DimensionXError(f"--guidance {guidance}: at most {MAX_GUIDANCE:g}; far above the original 6 the frames "
                              "saturate into noise")
    check_seed(seed)


def check_gpus(processes: int, batch: bool = False) -> None:
    """``--gpus``: 1, or 2 for CFG-parallel (one guidance branch per GPU); with ``--batch``, N >= 1 processes
    that share the file's lines (one whole video per process at a time)."""
    if batch:
        if processes < 1:
            raise DimensionXError(f"--gpus {processes}: with --batch, N processes (one GPU each) share the lines: use 1 or more")
        return
    if processes not in (1, 2):
        raise DimensionXError(f"--gpus {processes}: CFG-parallel splits the two guidance branches, so use --gpus 2 (or 1)")


def output_path(config: VideoConfig) -> Path:
    if config.out:
        return Path(config.out)
    return Path("outputs") / f"{Path(config.image).stem}_{motion_label(config.motion)}.mp4"


def motion_label(motion: str | None) -> str:
    """File-name form of ``--motion``: ``orbit_left:0.7,z_zoom_in:0.3`` -> ``orbit_left0.7+z_zoom_in0.3``."""
    return (motion or "custom").replace(":", "").replace(",", "+")


