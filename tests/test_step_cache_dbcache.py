"""``mode_settings.step_cache: dbcache``: cache-dit's DBCache on the tiny model, on a CPU.

Its speed and fidelity at full size are a GPU's to measure (``bench_video.py --modes stock,fast,fast+step_cache=dbcache``).
Here: a cache that never skips gives the uncached video bit for bit with every callback of a real run
attached (Switch-Once between mixed directors, the noise queue, a step counter); a loose threshold
runs fewer full transformer passes, on the documented steps, and stays close; each video starts
afresh, also after a cancelled one; a finished video keeps no residuals; nothing but this
pipeline's transformer changes. On a CPU ``apply_mode`` runs plain eager, so the cache is put on
the transformer directly, as ``fast`` does on a GPU.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from diffusers import CogVideoXImageToVideoPipeline, CogVideoXTransformer3DModel
from PIL import Image

from dimensionx.errors import DimensionXError
from dimensionx.video.config import ModeConfig, VideoConfig
from dimensionx.video.dbcache import enable_dbcache, import_cache_dit
from dimensionx.video.generator import load_generator, resolve_directors
from dimensionx.video.image import fit_image
from dimensionx.video.modes import start_video
from dimensionx.video.noise import prefetch_step_noise

pytestmark = pytest.mark.skipif(importlib.util.find_spec("cache_dit") is None,
                                reason="cache-dit is not installed: pip install 'dimensionx[dbcache]' (the test extra has it)")

STEPS = 12
# The tiny transformer has 2 blocks: the first runs on every step and decides, the second runs only in a full pass.
NEVER_SKIPS = ModeConfig(step_cache="dbcache", cache_threshold=0.0, cache_front_blocks=1, cache_warmup_steps=0)
LOOSE = ModeConfig(step_cache="dbcache", cache_threshold=0.5, cache_front_blocks=1, cache_warmup_steps=2, cache_interval=4)


@pytest.fixture(scope="module")
def image() -> Image.Image:
    y, x = np.mgrid[0:100, 0:150]
    rgb = np.stack([x / 150 * 255, y / 100 * 255, ((x - 75) ** 2 + (y - 50) ** 2 < 900) * 255], -1).astype(np.uint8)
    return fit_image(Image.fromarray(rgb), 96, 64)


def full_passes(transformer) -> list[int]:
    """Steps (0-based calls of the transformer) on which its last block ran: the full passes, filled in as the video runs."""
    calls, full = [], []
    transformer.register_forward_pre_hook(lambda module, args: calls.append(len(calls)))
    transformer.transformer_blocks[-1].register_forward_pre_hook(lambda module, args: full.append(calls[-1]))
    return full


def pipeline(tiny_model_dir, config: ModeConfig | None = None):
    pipe = CogVideoXImageToVideoPipeline.from_pretrained(tiny_model_dir)
    if config is not None:
        enable_dbcache(pipe.transformer, config)
    return pipe


def denoise(pipe, image, steps: int = STEPS, callback=None) -> torch.Tensor:
    """[1, F_latent, C, H/8, W/8] final latents of one video, started as the product's callers start one."""
    start_video(pipe)
    return pipe(image=image, prompt="a red barn", height=64, width=96, num_frames=9, num_inference_steps=steps,
                generator=torch.Generator().manual_seed(0), output_type="latent", callback_on_step_end=callback).frames


def test_a_cache_that_never_skips_gives_the_uncached_video_bit_for_bit_with_every_callback(tiny_cache, image):
    """Threshold 0: every step is a full pass, the same blocks on the same numbers, so the frames are
    bitwise equal (not merely close), with the Switch-Once callback switching mixed directors at step 2,
    the scheduler's noise drawn ahead on a thread, and the progress bar the app's Cancel listens to."""
    config = VideoConfig(model="tiny", device="cpu", steps=4, frames=9, prompt="a red barn", seed=3,
                         motion="orbit_left:0.7,z_zoom_in:0.3", then="time", switch_step=2)
    then = resolve_directors(dataclasses.replace(config, motion=config.then), tiny=True)
    videos = []
    for mode_config in (None, NEVER_SKIPS):
        generator = load_generator(config)
        pipe = generator.pipe
        if mode_config is not None:
            enable_dbcache(pipe.transformer, mode_config)
        passes = full_passes(pipe.transformer)
        pipe.scheduler = prefetch_step_noise(pipe.scheduler)
        progress = io.StringIO()
        pipe.set_progress_bar_config(file=progress)
        generator.set_directors(resolve_directors(config, tiny=True), None, then=then, switch_step=config.switch_step)
        frames, _ = generator(image, config.prompt, config)
        videos.append(frames)
        assert passes == [0, 1, 2, 3] and "4/4" in progress.getvalue()
    assert np.array_equal(videos[1], videos[0])


def test_a_loose_threshold_runs_fewer_full_passes_on_the_documented_steps_and_stays_close(tiny_model_dir, image):
    """Threshold 0.5: the warm-up steps run in full, then a step is skipped where the first block's residual
    barely moved, never more than interval - 1 in a row; the skipped residual is forecast (TaylorSeer, order 1),
    so the forecast changes the result, and either way the latents stay within a few percent of the uncached ones."""
    uncached = denoise(pipeline(tiny_model_dir), image)
    results = {}
    for order in (1, 0):
        pipe = pipeline(tiny_model_dir, dataclasses.replace(LOOSE, cache_taylor_order=order))
        passes = full_passes(pipe.transformer)
        results[order] = denoise(pipe, image)
        assert passes[:2] == [0, 1] and 2 < len(passes) < STEPS, passes  # measured: 5 of 12 with the forecast
        assert max(np.diff(passes + [STEPS])) <= LOOSE.cache_interval, passes
        assert torch.isfinite(results[order]).all()
        assert (results[order] - uncached).norm() / uncached.norm() < 0.1  # measured: 0.012 (order 1), 0.009 (order 0)
    assert not torch.equal(results[1], results[0])


def test_a_cache_that_always_skips_runs_the_warm_up_and_then_every_interval_th_step(tiny_model_dir, image):
    """Threshold 1 (cache-dit: any change counts as small): the schedule is the rules alone, warm-up 2 then a
    full pass after every interval - 1 = 3 skipped steps, the cap on a skipping run that TaylorSeer's fixed
    interval also gives."""
    pipe = pipeline(tiny_model_dir, dataclasses.replace(LOOSE, cache_threshold=1.0))
    passes = full_passes(pipe.transformer)
    assert torch.isfinite(denoise(pipe, image)).all()
    assert passes == [0, 1, 5, 9]


def test_each_video_starts_afresh_also_after_a_cancelled_or_shorter_one(tiny_model_dir, image):
    """In one process, a video equals the first video of a freshly built cached pipeline: after a full
    video, after one cancelled mid-way (as the app's Cancel does, by raising from a step; only start_video's
    reset clears what it left), after a 2-step one."""
    fresh = denoise(pipeline(tiny_model_dir, LOOSE), image)
    pipe = pipeline(tiny_model_dir, LOOSE)
    assert torch.equal(denoise(pipe, image), fresh)
    assert torch.equal(denoise(pipe, image), fresh)

    def cancel(pipe, step, timestep, tensors):
        if step == 6:
            raise KeyboardInterrupt
        return tensors

    with pytest.raises(KeyboardInterrupt):
        denoise(pipe, image, callback=cancel)
    assert torch.equal(denoise(pipe, image), fresh)
    denoise(pipe, image, steps=2)
    assert torch.equal(denoise(pipe, image), fresh)


def test_a_finished_video_keeps_no_residuals(tiny_model_dir, image):
    """The cached residuals (the second block's input and output, [2, tokens, dim]) are freed after each video."""
    pipe = pipeline(tiny_model_dir, LOOSE)
    shapes = []
    pipe.transformer.transformer_blocks[-1].register_forward_hook(lambda module, args, out: shapes.append(out[0].shape))
    denoise(pipe, image)
    gc.collect()
    kept = [o for o in gc.get_objects() if type(o) is torch.Tensor and o.shape == shapes[0]]  # type(): isinstance wakes deprecated proxies
    assert kept == []


def test_only_this_pipelines_transformer_changes(tiny_model_dir, image):
    """Another pipeline of the same classes runs uncached and unchanged; no class is patched."""
    classes = {cls: dict(vars(cls)) for cls in (CogVideoXImageToVideoPipeline, CogVideoXTransformer3DModel)}
    other = pipeline(tiny_model_dir)
    before = denoise(other, image)
    pipeline(tiny_model_dir, LOOSE)
    assert {cls: dict(vars(cls)) for cls in classes} == classes
    passes = full_passes(other.transformer)
    assert torch.equal(denoise(other, image), before) and passes == list(range(STEPS))


def test_importing_cache_dit_leaves_the_environment_and_logging_as_they_were():
    """cache-dit's import sets an environment variable and replaces two logging.Logger methods; a fresh process shows they are put back."""
    probe = textwrap.dedent("""
        import logging, os, transformers
        environment, methods = dict(os.environ), (logging.Logger.warning_once, logging.Logger.info_once)
        from dimensionx.video.dbcache import import_cache_dit
        import_cache_dit()
        assert dict(os.environ) == environment, set(os.environ.items()) ^ set(environment.items())
        assert (logging.Logger.warning_once, logging.Logger.info_once) == methods
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_missing_package_and_impossible_settings_are_refused_by_name(monkeypatch, tiny_model_dir):
    with pytest.raises(DimensionXError, match=r"mode_settings.step_cache 'teacache': use one of taylorseer, dbcache"):
        ModeConfig(step_cache="teacache")
    with pytest.raises(DimensionXError, match=r"cache_front_blocks=0"):
        ModeConfig(step_cache="dbcache", cache_front_blocks=0)
    with pytest.raises(DimensionXError, match=r"this transformer has 2 blocks"):
        pipeline(tiny_model_dir, ModeConfig(step_cache="dbcache"))  # 8 front blocks, cache-dit's default
    missing = r"^mode_settings.step_cache dbcache runs cache-dit's DBCache, which is not installed: pip install 'dimensionx\[dbcache\]'"
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None if name == "cache_dit" else object())
    with pytest.raises(DimensionXError, match=missing):
        ModeConfig(step_cache="dbcache").check_packages("fast")
    ModeConfig(step_cache="dbcache").check_packages("exact")  # exact has no step cache
    monkeypatch.setitem(sys.modules, "cache_dit", None)  # what an absent package gives
    with pytest.raises(DimensionXError, match=missing):
        import_cache_dit()
