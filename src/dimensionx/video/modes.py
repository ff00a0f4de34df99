"""Speed/memory modes of video generation: ``exact``, ``fast``, ``lowmem``.

``apply_mode`` places a loaded CogVideoX pipeline on its device the way the mode wants; every
piece is a diffusers hook, processor or config, the pipeline's code is untouched.

- ``exact`` (default): no approximation beyond kernel rounding. Each transformer block is
  compiled in place with ``nn.Module.compile`` (torch's compile artifacts are kept in a file of
  the user's cache folder, so a second process starts warm: :func:`compile_regions`), attention runs on cuDNN's fused kernel (:mod:`.attention`), the two
  guidance branches run as one batch (as stock diffusers does), the T5 encoder lives in CPU
  memory and streams to the GPU only while it encodes, and the VAE decodes in its own temporal
  chunks (2 latent frames at a time with a causal conv cache, as the original).
- ``fast``: ``exact`` plus FP8 GEMMs (torchao, row-wise scales, on every linear layer of the
  transformer blocks) and the TaylorSeer step cache (see :data:`.config.ModeConfig.cache_interval`), or with
  ``step_cache: dbcache`` cache-dit's adaptive DBCache (:mod:`.dbcache`); every knob
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
import re
from pathlib import Path

import torch
from diffusers.hooks import HookRegistry, ModelHook, TaylorSeerCacheConfig, apply_group_offloading

from ..atomic import atomic_file
from ..errors import DimensionXError
from .attention import use_fastest_attention
from .config import ModeConfig
from .dbcache import enable_dbcache
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
    if mode == "fast" and config.step_cache == "dbcache":  # before the FP8 hook, which must quantize outside it
        notes += enable_dbcache(pipe.transformer, config)
    if mode == "fast":
        notes += _enable_fp8(pipe.transformer, device) if config.fp8 else ["FP8 off (mode_settings.fp8: false): GEMMs stay bf16"]
    if config.compile:
        notes += compile_regions(pipe.transformer, pipe.vae, _compile_cache_file(config, device))
    if mode == "fast" and config.step_cache == "taylorseer":
        notes += _enable_step_cache(pipe.transformer, config)
    return notes


def start_video(pipe) -> None:
    """Starts the step cache (TaylorSeer's step counter and features, DBCache's residuals) afresh before a video.

    diffusers resets stateful hooks only at the end of a pipeline call (``maybe_free_model_hooks``):
    a video stopped mid-way (Cancel, a signal, an error) would leave the counter mid-schedule, and the
    next video of the process (the app, ``--batch``) would forecast its first steps from the stopped
    one's features."""
    pipe.maybe_free_model_hooks()


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


def compile_regions(transformer, vae, cache_file: Path) -> list[str]:
    """Compiles the transformer blocks and the VAE decoder's GroupNorms in place; torch's compile
    artifacts are loaded from ``cache_file`` now and saved to it after the first decode.

    The artifacts are torch's portable "mega cache" (``torch.compiler.save_cache_artifacts``):
    loading them fills torch's own caches, wherever the user's ``TORCHINDUCTOR_CACHE_DIR`` (or
    torch's default) puts them; no environment variable is set here.
    """
    notes = [_load_compile_cache(cache_file)]
    notes += _compile_blocks(transformer)
    notes += _compile_vae_norms(vae)
    _save_compile_cache_after(vae.decoder, cache_file)
    return notes


def _compile_blocks(transformer) -> list[str]:
    """Regional compilation: each block compiled in place by ``nn.Module.compile`` (one graph serves
    all 42 blocks), as diffusers' ``compile_repeated_blocks`` does.

    Hooks added to a block (``fast``'s step cache) run inside its compiled call; diffusers marks their
    bookkeeping ``torch.compiler.disable``, so it runs eagerly between the compiled graphs.
    """
    for block in transformer.transformer_blocks:
        block.compile()
    return ["torch.compile per transformer block"]


class CompiledGroupNorm(torch.nn.GroupNorm):
    """A GroupNorm that ``nn.Module.compile`` really compiles.

    ``Module.compile`` compiles ``Module._call_impl``; Dynamo skips frames of torch.nn's own files,
    and for a stock GroupNorm both that frame and its ``forward`` are such frames, so nothing is
    captured (torch 2.13; pytorch/pytorch#150915). This ``forward`` is a frame of this file, from
    which Dynamo inlines torch's own as usual: the same graph.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # [B, C, ...]
        return super().forward(input)


def _compile_vae_norms(vae) -> list[str]:
    """Compiles the VAE decoder's GroupNorms (one graph, shapes dynamic): each is replaced in the
    decoder by a :class:`CompiledGroupNorm` holding the same parameters, compiled in place.

    PyTorch's eager GroupNorm gives each of the 32 groups one thread block: on the decoder's
    [1, 128, 3, 480, 720] activations that is 32 blocks for 132 SMs, 3.3 ms a call and 0.8 s of
    a 2.3 s decode (H100). Inductor splits each group's reduction over many blocks.
    """
    norms = [(name, m) for name, m in vae.decoder.named_modules() if type(m) is torch.nn.GroupNorm]
    for name, norm in norms:
        compiled = CompiledGroupNorm(norm.num_groups, norm.num_channels, norm.eps, norm.affine, device="meta")
        compiled.load_state_dict(norm.state_dict(keep_vars=True), assign=True)  # the very parameters, not copies
        compiled.train(norm.training)
        compiled.compile(dynamic=True)
        vae.decoder.set_submodule(name, compiled)
    return [f"torch.compile of the VAE decoder's {len(norms)} GroupNorms"]


def _compile_cache_file(config: ModeConfig, device: torch.device) -> Path:
    """The compile-artifact file of this GPU kind and torch version, in ``config.compile_cache``, else
    ``$DIMENSIONX_CACHE/inductor`` (torch checks both before it uses an artifact; one file each keeps
    two GPU kinds from overwriting each other's)."""
    root = Path(os.environ.get("DIMENSIONX_CACHE", Path.home() / ".cache" / "dimensionx"))
    folder = Path(config.compile_cache) if config.compile_cache else root / "inductor"
    kind = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return folder / f"{re.sub(r'[^A-Za-z0-9.]+', '-', kind)}-torch-{torch.__version__}.megacache"


def _load_compile_cache(path: Path) -> str:
    if not path.is_file():
        return f"compile artifacts: none yet, saved to {path} after the first video"
    info = torch.compiler.load_cache_artifacts(path.read_bytes())
    if info is None:  # torch logged why (e.g. another torch version wrote it); it is rewritten after this run
        return f"compile artifacts: {path} unreadable by this torch, rewritten after the first video"
    return f"compile artifacts: {sum(len(a) for a in info.artifacts.values())} loaded from {path}"


def _save_compile_cache_after(module: torch.nn.Module, path: Path) -> None:
    """After ``module``'s first forward, this process's compile artifacts are written to ``path``
    (atomically; once). The VAE decoder runs last in a video: by then every region has compiled."""

    def save(module, args, output):
        handle.remove()
        artifacts = torch.compiler.save_cache_artifacts()  # (bytes, CacheInfo), None if nothing compiled
        if artifacts is None:
            return
        try:
            with atomic_file(path) as temp:
                temp.write_bytes(artifacts[0])
        except OSError as exc:  # a cache is no reason to lose the video
            logger.warning("compile artifacts not saved to %s (%s): the next process compiles again", path, exc)

    handle = module.register_forward_hook(save)


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
