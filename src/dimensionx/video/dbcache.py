"""``fast``'s adaptive step cache: cache-dit's DBCache (``mode_settings.step_cache: dbcache``), on one transformer.

DBCache (Dual Block Cache, from the cache-dit library, Apache-2.0) runs the first
``cache_front_blocks`` transformer blocks at every step and compares the residual they add with the
one of the last full step. When it changed by less than ``cache_threshold`` (mean absolute
difference over mean absolute residual), the remaining blocks are skipped and their residual is
reused, forecast to this step by cache-dit's TaylorSeer calibrator (order ``cache_taylor_order``);
otherwise every block runs and the residuals are kept. The first ``cache_warmup_steps`` steps always
run in full, and at most ``cache_interval - 1`` steps in a row are skipped. TaylorSeer-Lite (the
default step cache) skips on a fixed schedule; DBCache skips where the output barely changes, at the
price of the front blocks on every step.

Only this transformer changes; no class, global or environment variable:

- cache-dit is given the transformer, not the pipeline. Given a pipeline it would replace
  ``__call__`` of the pipeline's class (every CogVideoX pipeline of the process) to reset its state
  at each call; given a transformer it replaces ``forward`` of this instance only and keeps its state
  until :func:`cache_dit.refresh_context` starts it afresh.
- :class:`ResetEachVideo`, a stateful diffusers hook on the transformer, does that whenever the pipeline
  resets its stateful hooks: before every video (:func:`~dimensionx.video.modes.start_video`, which every
  caller of the pipeline runs first), so a cancelled video leaves nothing to the next one, and after a
  finished video, which frees the cached residuals.
- Importing cache-dit sets ``FFPA_CUDA_ALLOW_SMALL_D`` (for an attention kernel not used here) and
  replaces ``logging.Logger.warning_once`` / ``info_once``: :func:`import_cache_dit` puts back what
  was there.
"""

from __future__ import annotations

import logging
import os

from diffusers.hooks import HookRegistry, ModelHook

from ..errors import DimensionXError
from .config import DBCACHE_MISSING, ModeConfig

RESET_HOOK = "dimensionx_dbcache_reset"
_LOGGER_METHODS = ("warning_once", "info_once")  # set on logging.Logger by cache-dit's import


def enable_dbcache(transformer, config: ModeConfig) -> list[str]:
    """Puts DBCache on ``transformer`` (a CogVideoX transformer) as ``config`` says; returns notes for the sidecar.

    Call it before other hooks that rewrite the weights on a forward (``fast``'s FP8): cache-dit's
    forward swaps the block list for its own while it runs, and such hooks must walk the model outside it.
    """
    cache_dit = import_cache_dit()
    blocks = len(transformer.transformer_blocks)
    if config.cache_front_blocks + config.cache_back_blocks > blocks:
        raise DimensionXError(
            f"mode_settings.cache_front_blocks {config.cache_front_blocks} + cache_back_blocks {config.cache_back_blocks}: "
            f"this transformer has {blocks} blocks; run fewer on every step")
    calibrator = cache_dit.TaylorSeerCalibratorConfig(taylorseer_order=config.cache_taylor_order) if config.cache_taylor_order else None
    cache_dit.enable_cache(transformer, calibrator_config=calibrator, cache_config=cache_dit.DBCacheConfig(
        Fn_compute_blocks=config.cache_front_blocks, Bn_compute_blocks=config.cache_back_blocks,
        residual_diff_threshold=config.cache_threshold, max_warmup_steps=config.cache_warmup_steps,
        max_continuous_cached_steps=config.cache_interval - 1,
        enable_separate_cfg=False,  # CogVideoX runs both guidance branches in one forward per step
    ))
    HookRegistry.check_if_exists_or_initialize(transformer).register_hook(ResetEachVideo(cache_dit.refresh_context), RESET_HOOK)
    forecast = f"TaylorSeer order {config.cache_taylor_order}" if config.cache_taylor_order else "reused as is"
    return [f"DBCache step cache (cache-dit {cache_dit.__version__}): first {config.cache_warmup_steps} steps in full, then "
            f"blocks {config.cache_front_blocks + 1}-{blocks - config.cache_back_blocks} skipped where the first "
            f"{config.cache_front_blocks} blocks' residual changed by < {config.cache_threshold} ({forecast}), "
            f"a full pass at least every {config.cache_interval} steps"]


def import_cache_dit():
    """``import cache_dit``, with the environment variables and ``logging.Logger`` methods its import sets put back."""
    environment = dict(os.environ)
    methods = {name: vars(logging.Logger)[name] for name in _LOGGER_METHODS if name in vars(logging.Logger)}
    try:
        import cache_dit
    except ImportError:
        raise DimensionXError(DBCACHE_MISSING) from None
    finally:
        for name in set(os.environ) - set(environment):
            del os.environ[name]
        os.environ.update(environment)
        for name, method in methods.items():  # a method it added where there was none stays: cache-dit calls it
            setattr(logging.Logger, name, method)
    return cache_dit


class ResetEachVideo(ModelHook):
    """Starts cache-dit's state on the transformer afresh when the pipeline resets its stateful hooks (before and
    after each video)."""

    _is_stateful = True

    def __init__(self, refresh):
        super().__init__()
        self.refresh = refresh  # cache_dit.refresh_context

    def reset_state(self, module):
        self.refresh(module)
        # refresh_context (cache-dit 1.5.3) leaves the manager's current context on the one it replaced, whose
        # TaylorSeer state (4 tensors of the hidden states' size) would live on until the next video
        for name in module._context_names:
            module._context_manager.set_context(name)
        return module
