"""Speed/memory modes of video generation: ``exact``, ``fast``, ``lowmem``.

``apply_mode`` places a loaded CogVideoX pipeline on its device the way the mode wants; every
piece is a diffusers hook, processor or config, the pipeline's code is untouched.

- ``exact`` (default): no approximation beyond kernel rounding. Each transformer block is
  compiled with ``torch.compile`` (the compiled artifacts are cached on disk, so a second
  process starts warm), attention runs on cuDNN's fused kernel (:mod:`.attention`), the two
  guidance branches run as one batch (as stock diffusers does), the T5 encoder lives in CPU
  memory and streams to the GPU only while it encodes, and the VAE decodes in its own temporal
  chunks (2 latent frames at a time with a causal conv cache, as the original).
- ``fast``: ``exact`` plus FP8 GEMMs (torchao, row-wise scales, on every linear layer of the
  transformer blocks) and the TaylorSeer step cache (see :data:`.config.ModeConfig.cache_interval`); every knob
  sits in ``VideoConfig.mode_settings`` (``mode_settings:`` in a YAML preset).
  Approximate: measure it against ``exact`` before trusting it for your data.
- ``lowmem``: the transformer and T5 stream block by block from CPU memory (diffusers group
  offloading on a side CUDA stream) and the VAE decodes in spatial tiles. Peak GPU memory 7 GiB
  with T5 (46 for stock diffusers, measured on an H100); eager, so slower than stock. Tiling
  blends tile seams: not bit-exact.

On a CPU every mode is plain eager execution, announced by one log line.

LoRA fusion must run inside :func:`weights_editable`: FP8 weights cannot take a fused delta,
so ``fast`` quantizes lazily, right before the first forward after any fusion.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import torch
from diffusers.hooks import HookRegistry, ModelHook, TaylorSeerCacheConfig, apply_group_offloading

from ..errors import DimensionXError
from .attention import use_fastest_attention
from .config import ModeConfig
from .noise import prefetch_step_noise

logger = logging.getLogger(__name__)

MODES = ("exact", "fast", "lowmem")
FP8_HOOK = "dimensionx_fp8"


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise DimensionXError(f"--mode {mode!r} is unknown: use one of {', '.join(MODES)}")


def apply_mode(pipe, mode: str, device: torch.device, config: ModeConfig | None = None) -> list[str]:
    """Moves ``pipe`` to ``device`` configured for ``mode``; returns notes for the sidecar."""
    check_mode(mode)
    config = config or ModeConfig()
    if device.type != "cuda":  # exact (the default) is plain eager's numbers anyway: said only for a mode asked for
        log = logger.debug if mode == "exact" else logger.warning
        log("--mode %s needs a CUDA GPU for its kernels; running plain eager on %s", mode, device.type)
        pipe.to(device)
        return [f"{mode} -> eager on {device.type}"]
    attention = use_fastest_attention(pipe.transformer, config.attention if mode == "fast" else "sdpa")
    pipe.scheduler = prefetch_step_noise(pipe.scheduler)
    notes = [attention, "scheduler noise: drawn ahead on a CPU thread (same numbers)"]
    notes += _stream_text_encoder(pipe.text_encoder, device)
    if mode == "lowmem":
        return notes + _apply_lowmem(pipe, device, config)
    pipe.transformer.to(device)
    pipe.vae.to(device)
    if mode == "fast":
        notes += _enable_fp8(pipe.transformer, device) if config.fp8 else ["FP8 off (mode_settings.fp8: false): GEMMs stay bf16"]
    if config.compile:
        notes += _compile_blocks(pipe.transformer, config)
        notes += _compile_vae_norms(pipe.vae)
    if mode == "fast":
        notes += _enable_step_cache(pipe.transformer, config)
    return notes


@contextlib.contextmanager
def weights_editable(pipe):
    """Context in which LoRA fusion may read and rewrite the transformer's weights.

    In ``fast`` mode the FP8 linears are turned back into bf16 weights on entry and quantized
    again right before the next forward; in the other modes this does nothing.
    """
    hook = _fp8_hook(pipe.transformer)
    if hook is None:
        yield
        return
    _dequantize(pipe.transformer)
    try:
        yield
    finally:
        hook.pending = True


def _stream_text_encoder(text_encoder, device: torch.device) -> list[str]:
    """T5 stays in pinned CPU memory; its layers stream to the GPU, one ahead, only while it encodes."""
    if text_encoder is None:
        return []
    text_encoder.to("cpu")
    apply_group_offloading(text_encoder, onload_device=device, offload_type="leaf_level", use_stream=True)
    _GROUP_OFFLOADING_LOG.addFilter(_TIED_T5_EMBEDDING)
    return ["T5 encoder: in CPU memory, streamed to the GPU layer by layer while it encodes"]


class _TiedT5EmbeddingFilter(logging.Filter):
    """Drops diffusers' warning that T5's ``shared`` embedding never ran: the encoder reads the
    same weights through its ``embed_tokens`` layer, so nothing is missing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "unexecuted_layers=['shared']" not in record.getMessage()


_GROUP_OFFLOADING_LOG = logging.getLogger("diffusers.hooks.group_offloading")
_TIED_T5_EMBEDDING = _TiedT5EmbeddingFilter()


def _apply_lowmem(pipe, device: torch.device, config: ModeConfig) -> list[str]:
    pipe.transformer.to("cpu")
    pipe.transformer.enable_group_offload(onload_device=device, offload_type="block_level",
                                          num_blocks_per_group=config.offload_blocks_per_group, use_stream=True)
    pipe.vae.to(device)
    height, width = config.vae_tile
    pipe.vae.enable_tiling(tile_sample_min_height=height, tile_sample_min_width=width)
    return [f"transformer: in CPU memory, streamed to the GPU {config.offload_blocks_per_group} block(s) ahead",
            f"VAE: decoded in overlapping {height}x{width} px tiles"]


def _compile_blocks(transformer, config: ModeConfig) -> list[str]:
    """Regional compilation: each block's forward is compiled (one graph serves all 42 blocks).

    Hooks (step cache, offloading) stay outside the compiled code, wrapped around it. Inductor
    writes its artifacts to ``_compile_cache``, which a second process reads back: it starts warm.
    """
    cache = _compile_cache(config)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    for block in transformer.transformer_blocks:
        block.forward = torch.compile(block.forward)
    return [f"torch.compile per transformer block (artifacts cached in {cache})"]


def _compile_vae_norms(vae) -> list[str]:
    """Compiles the VAE decoder's GroupNorms (one graph, shapes dynamic).

    PyTorch's eager GroupNorm gives each of the 32 groups one thread block: on the decoder's
    [1, 128, 3, 480, 720] activations that is 32 blocks for 132 SMs, 3.3 ms a call and 0.8 s of
    a 2.3 s decode (H100). Inductor splits each group's reduction over many blocks.
    """
    norms = [m for m in vae.decoder.modules() if isinstance(m, torch.nn.GroupNorm)]
    for norm in norms:
        norm.forward = torch.compile(norm.forward, dynamic=True)
    return [f"torch.compile of the VAE decoder's {len(norms)} GroupNorms"]


def _compile_cache(config: ModeConfig) -> str:
    """``config.compile_cache``, else a TORCHINDUCTOR_CACHE_DIR the user set, else ``$DIMENSIONX_CACHE/inductor``.

    torch itself sets TORCHINDUCTOR_CACHE_DIR to its default in /tmp once Inductor is imported;
    that value is not taken for the user's, /tmp being emptied at reboot.
    """
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    if config.compile_cache:
        return config.compile_cache
    user = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if user and os.path.abspath(user) != os.path.abspath(default_cache_dir()):
        return user
    root = Path(os.environ.get("DIMENSIONX_CACHE", Path.home() / ".cache" / "dimensionx"))
    return str(root / "inductor")


def _enable_step_cache(transformer, config: ModeConfig) -> list[str]:
    # Lite: only the final projection's output is forecast; the blocks are skipped outright on
    # forecast steps, which is what makes a skipped step nearly free.
    transformer.enable_cache(TaylorSeerCacheConfig(
        cache_interval=config.cache_interval, disable_cache_before_step=config.cache_warmup_steps,
        max_order=1, taylor_factors_dtype=torch.float32, use_lite_mode=True,
    ))
    return [f"TaylorSeer-Lite step cache: full pass on the first {config.cache_warmup_steps} steps, then every {config.cache_interval}"]


def _enable_fp8(transformer, device: torch.device) -> list[str]:
    if torch.cuda.get_device_capability(device) < (8, 9):
        name = torch.cuda.get_device_name(device)
        logger.warning("--mode fast: %s has no FP8 tensor cores (compute capability 8.9+); its GEMMs stay bf16", name)
        return [f"FP8 skipped: {name} is below compute capability 8.9"]
    try:
        import torchao
    except ImportError:
        raise DimensionXError("--mode fast quantizes the transformer to FP8 with torchao, which is not installed: "
                              "pip install 'torchao>=0.18' (or use --mode exact)") from None
    HookRegistry.check_if_exists_or_initialize(transformer).register_hook(QuantizeBeforeForward(), FP8_HOOK)
    return [f"FP8 row-wise GEMMs in the transformer blocks (torchao {torchao.__version__})"]


def _fp8_hook(transformer) -> QuantizeBeforeForward | None:
    return HookRegistry.check_if_exists_or_initialize(transformer).get_hook(FP8_HOOK)


class QuantizeBeforeForward(ModelHook):
    """Quantizes the block linears to FP8 before a forward that finds them in bf16 (after a fusion)."""

    def __init__(self):
        super().__init__()
        self.pending = True

    def pre_forward(self, module, *args, **kwargs):
        if self.pending:
            _quantize(module)
            self.pending = False
        return args, kwargs


def _is_fp8_target(module: torch.nn.Module, name: str) -> bool:
    """The block GEMMs: attention q/k/v/out and the MLP; not the per-video AdaLN projections (2 rows)."""
    return name.startswith("transformer_blocks.") and ".norm" not in name and isinstance(module, torch.nn.Linear) \
        and not _is_quantized(module.weight)


def _is_quantized(weight: torch.Tensor) -> bool:
    return type(weight) not in (torch.Tensor, torch.nn.Parameter)


def _quantize(transformer) -> None:
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

    quantize_(transformer, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow(), set_inductor_config=False),
              filter_fn=_is_fp8_target)


def _dequantize(transformer) -> None:
    with torch.no_grad():
        for module in transformer.modules():
            if isinstance(module, torch.nn.Linear) and _is_quantized(module.weight):
                module.weight = torch.nn.Parameter(module.weight.dequantize(), requires_grad=False)
