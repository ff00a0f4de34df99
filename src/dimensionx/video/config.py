"""``VideoConfig``: every knob of a generated video, importable without torch (fast ``--help``)."""

from __future__ import annotations

import dataclasses
import importlib.util

from ..errors import DimensionXError
from ..models.hub import DEFAULT_MODEL

LORA_MODES = ("auto", "fused", "adapters")
ATTENTION_KERNELS = ("sdpa", "sage")  # ModeConfig.attention
STEP_CACHES = ("taylorseer", "dbcache")  # ModeConfig.step_cache
VAE_STRIDE = 8  # pixels per latent cell of CogVideoX's VAE: a tile's side is a multiple of it
VAE_TILE_MIN = 64  # px: the smallest tile side ModeConfig.vae_tile takes (8 latent cells)
DBCACHE_MISSING = ("mode_settings.step_cache dbcache runs cache-dit's DBCache, which is not installed: "
                   "pip install 'dimensionx[dbcache]' (cache-dit 1.5), or set step_cache: taylorseer")


@dataclasses.dataclass
class ModeConfig:
    """Knobs of the speed modes (``--mode``, see modes.py); the defaults are the measured ones (docs/speed.md)."""

    compile: bool = True  # exact, fast: torch.compile each transformer block (first call: +15 s cold, +5 s warm on an H100)
    compile_cache: str | None = None  # folder of torch's compile-artifact files (modes.compile_regions); None: $DIMENSIONX_CACHE/inductor
    fp8: bool = True  # fast: FP8 row-wise GEMMs in the transformer blocks (torchao, compute capability 8.9+)
    # fast: TaylorSeer (Liu et al., ICCV 2025) runs the transformer fully on the first
    # `cache_warmup_steps` steps and then on every `cache_interval`-th step, and forecasts the
    # output of the steps between from a first-order Taylor expansion of the last full ones. The
    # paper reports near-lossless 4.99x on FLUX and 5.00x on HunyuanVideo; at 50 steps, warm-up 3
    # and interval 6 run 11 full steps (4.5x fewer), inside that published range. Interval 6 was
    # measured against 5 and 7 on one H100 (benchmarks/results/video_levers_*.json): 16.5 s and
    # 32.7 dB from stock, against 18.9 s / 32.4 dB and 15.3 s / 31.3 dB (under the 32 dB floor). A fixed interval
    # was chosen over FirstBlockCache and MagCache: their skips depend on thresholds or magnitude
    # ratios calibrated per checkpoint (none published for CogVideoX-5B-I2V), so their speed can
    # neither be promised nor measured on the random-weight benchmark.
    # fast: "taylorseer" (the above, a fixed schedule) or "dbcache": cache-dit's Dual Block Cache
    # (video/dbcache.py), adaptive: a step runs the first `cache_front_blocks` blocks and skips the
    # rest when their residual changed by less than `cache_threshold` since the last full step (the
    # skipped residual forecast by cache-dit's TaylorSeer); pip install 'dimensionx[dbcache]'. Not yet
    # measured on a GPU (docs/speed.md); its default thresholds are cache-dit's.
    step_cache: str = "taylorseer"
    cache_interval: int = 6  # fast: steps from one full transformer pass to the next (dbcache: at most)
    cache_warmup_steps: int = 3  # fast: first steps always computed in full
    cache_threshold: float = 0.08  # dbcache: relative L1 change of the front blocks' residual under which a step is skipped; 0: never
    cache_front_blocks: int = 8  # dbcache: blocks run on every step, whose residual decides (cache-dit's Fn)
    cache_back_blocks: int = 0  # dbcache: last blocks run on every step too, refining a skipped step (cache-dit's Bn)
    cache_taylor_order: int = 1  # dbcache: order of the TaylorSeer forecast of a skipped step's residual; 0: reused as it was
    # fast: "sdpa" (cuDNN's fused kernel first, as exact) or "sage" (SageAttention's 8-bit kernel: pip install
    # sageattention); its drift and speed are in docs/speed.md
    attention: str = "sdpa"
    offload_blocks_per_group: int = 1  # lowmem: transformer blocks streamed to the GPU together
    vae_tile: tuple[int, int] = (240, 360)  # lowmem: (height, width) in pixels; larger frames decode in overlapping tiles

    def __post_init__(self):
        if self.attention not in ATTENTION_KERNELS:
            raise DimensionXError(f"mode_settings.attention {self.attention!r}: use one of {', '.join(ATTENTION_KERNELS)}")
        if self.step_cache not in STEP_CACHES:
            raise DimensionXError(f"mode_settings.step_cache {self.step_cache!r}: use one of {', '.join(STEP_CACHES)}")
        if self.cache_threshold < 0 or self.cache_front_blocks < 1 or self.cache_back_blocks < 0 or self.cache_taylor_order < 0:
            raise DimensionXError(
                f"ModeConfig(cache_threshold={self.cache_threshold}, cache_front_blocks={self.cache_front_blocks}, "
                f"cache_back_blocks={self.cache_back_blocks}, cache_taylor_order={self.cache_taylor_order}): the threshold, "
                "the back blocks and the order need at least 0, the front blocks at least 1 (defaults 0.08, 8, 0 and 1)"
            )
        tile = tuple(self.vae_tile) if isinstance(self.vae_tile, (list, tuple)) else ()
        if len(tile) != 2 or not all(type(v) is int and v >= VAE_TILE_MIN and v % VAE_STRIDE == 0 for v in tile):
            raise DimensionXError(f"mode_settings.vae_tile {self.vae_tile!r}: give [height, width] in pixels, each a multiple "
                                  f"of {VAE_STRIDE} and at least {VAE_TILE_MIN} (default [240, 360])")
        if self.cache_interval < 1 or self.cache_warmup_steps < 0 or self.offload_blocks_per_group < 1:
            raise DimensionXError(
                f"ModeConfig(cache_interval={self.cache_interval}, cache_warmup_steps={self.cache_warmup_steps}, "
                f"offload_blocks_per_group={self.offload_blocks_per_group}): the interval and the group need at least 1, "
                "the warm-up at least 0 (defaults 6, 3 and 1)"
            )


    def check_packages(self, mode: str) -> None:
        """Refuses, before any model loads, a setting of ``mode`` whose package is not installed."""
        if mode == "fast" and self.attention == "sage" and importlib.util.find_spec("sageattention") is None:
            raise DimensionXError("mode_settings.attention sage runs SageAttention, which is not installed: "
                                  "pip install 'sageattention>=1.0.6' (or set attention: sdpa)")
        if mode == "fast" and self.step_cache == "dbcache" and importlib.util.find_spec("cache_dit") is None:
            raise DimensionXError(DBCACHE_MISSING)


@dataclasses.dataclass
class VideoConfig:
    """Every knob of ``dimensionx video``; defaults are the original DimensionX settings."""

    image: str | None = None  # input photo (any format Pillow opens)
    prompt: str = ""  # caption of the photo; a VLM caption works best
    motion: str | None = None  # "orbit_left", "orbit_left:0.7,z_zoom_in:0.3", or "none" for the base model
    then: str | None = None  # directors from `switch_step` on (name or mix, as `motion`): the Switch-Once ST-Director
    switch_step: int | None = None  # first denoising step (0-based) run with `then` instead of `motion`
    lora_mode: str = "auto"  # "fused" (weights baked in), "adapters" (peft adapters, switchable); auto: adapters only with `then`
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
    mode_settings: ModeConfig = dataclasses.field(default_factory=ModeConfig)  # knobs of the modes (YAML only)
    gpus: int = 1  # 2 = CFG-parallel: the two guidance branches run on two GPUs (or CPU processes); with batch, N share the lines
    uncond: str = "empty"  # text of the unguided branch: "empty" (embedding of "", diffusers) or "zero" (zero embedding, as SAT)
    loop_frames: int = 0  # > 0: the last N frames cross-fade into the first, so the video loops without a jump (see loop.py)
