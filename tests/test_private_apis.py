"""The private APIs of torch, diffusers, peft and gsplat that the project relies on are still there, as used.

pyproject.toml pins the tested range of each library; these checks say which internal moved, and
where it is used, when a new version is tried. The behaviour built on each one is tested beside
it (test_recon_train: SplatAdam equals torch's Adam, the sync-free strategy equals gsplat's;
test_modes: the SDPA processor equals the stock one; test_noise_prefetch: the served noise is
bit-identical; test_director_switch: adapters equal fusion).
"""

from __future__ import annotations

import dataclasses
import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


@pytest.mark.parametrize("package", ["torch", "diffusers", "peft", "gsplat"])
def test_installed_versions_are_in_the_tested_ranges(package):
    pins = {Requirement(r).name: Requirement(r).specifier for r in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]}
    installed = version(package).split("+")[0]
    assert pins[package].contains(installed, prereleases=True), (
        f"{package} {installed} is outside the tested range {pins[package]} of pyproject.toml: run tests/test_private_apis.py "
        "and the tests it names, then widen the range")


def test_torch_fused_adam_kernel_and_foreach_add():
    """splats/optim.py calls the kernel of Adam(fused=True) directly."""
    assert callable(getattr(torch, "_fused_adam_", None)), "torch._fused_adam_ is gone: splats/optim.py SplatAdam needs another kernel"
    assert callable(getattr(torch, "_foreach_add_", None)), "torch._foreach_add_ is gone: splats/optim.py"
    param, grad = torch.ones(3), torch.full((3,), 0.5)
    exp_avg, exp_avg_sq, step = torch.zeros(3), torch.zeros(3), torch.ones(())
    torch._fused_adam_([param], [grad], [exp_avg], [exp_avg_sq], [], [step], lr=0.1, beta1=0.9, beta2=0.999,
                       weight_decay=0.0, eps=1e-15, amsgrad=False, maximize=False)
    torch.testing.assert_close(param, torch.full((3,), 0.9))  # first Adam step moves by lr * sign(grad)


def test_pillow_format_registry():
    """imagefiles.py reads image headers through Pillow's registered openers (Image.ID order, Image.OPEN)."""
    from PIL import Image

    Image.init()
    factory, accept = Image.OPEN["PNG"]
    assert "PNG" in Image.ID and accept(b"\x89PNG\r\n\x1a\n") and callable(factory), \
        "Pillow changed Image.OPEN / Image.ID: imagefiles._open_unchecked reads headers through them"


def test_gsplat_default_strategy_update_state():
    """splats/densify.py overrides DefaultStrategy._update_state and reads its fields and state keys."""
    from gsplat.strategy import DefaultStrategy

    assert parameters(DefaultStrategy._update_state) == ["self", "params", "state", "info", "packed"], \
        "gsplat changed DefaultStrategy._update_state: splats/densify.py SyncFreeDefaultStrategy overrides it"
    assert parameters(DefaultStrategy._grow_gs) == ["self", "params", "optimizers", "state", "step"], \
        "gsplat changed DefaultStrategy._grow_gs: splats/densify.py SyncFreeDefaultStrategy (cap) overrides it"
    fields = {f.name for f in dataclasses.fields(DefaultStrategy)}
    assert {"absgrad", "key_for_gradient", "refine_scale2d_stop_iter", "grow_grad2d", "grow_scale2d"} <= fields
    assert {"grad2d", "count", "radii"} <= set(DefaultStrategy(refine_scale2d_stop_iter=1).initialize_state())
    import gsplat

    for stage in ("fully_fused_projection", "spherical_harmonics", "isect_tiles", "isect_offset_encode", "rasterize_to_pixels"):
        assert callable(getattr(gsplat, stage, None)), f"gsplat.{stage} is gone: splats/render.py gsplat_rasterization calls it"


def test_diffusers_cogvideox_attention_processor_call():
    """video/attention.py subclasses the processor and forwards these arguments in this order."""
    from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0

    assert parameters(CogVideoXAttnProcessor2_0.__call__) == [
        "self", "attn", "hidden_states", "encoder_hidden_states", "attention_mask", "image_rotary_emb"], \
        "diffusers changed CogVideoXAttnProcessor2_0.__call__: video/attention.py CogVideoXSDPAProcessor overrides it"


def test_diffusers_scheduler_draws_noise_with_torch_randn():
    """video/noise.py answers the scheduler's torch.randn(..., generator=g) calls from a queue."""
    from diffusers import CogVideoXDPMScheduler
    from diffusers.utils import torch_utils

    assert "generator" in parameters(CogVideoXDPMScheduler.step) and "set_timesteps" in vars(CogVideoXDPMScheduler)
    source = inspect.getsource(torch_utils.randn_tensor)
    assert "torch.randn(" in source and "generator=generator" in source, \
        "diffusers' randn_tensor no longer calls torch.randn(..., generator=...): video/noise.py would serve nothing"
    assert "randn_tensor(" in inspect.getsource(CogVideoXDPMScheduler.step)


def test_diffusers_hooks_and_group_offloading_log():
    """modes.py and parallel.py register ModelHooks; modes.py filters one group-offloading warning."""
    import diffusers.hooks.group_offloading as group_offloading
    from diffusers.hooks import HookRegistry, ModelHook

    for name in ("check_if_exists_or_initialize", "register_hook", "get_hook"):
        assert callable(getattr(HookRegistry, name, None)), f"diffusers.hooks.HookRegistry.{name} is gone"
    assert parameters(ModelHook.pre_forward)[:2] == ["self", "module"] and parameters(ModelHook.post_forward) == ["self", "module", "output"]
    assert group_offloading.logger.name == "diffusers.hooks.group_offloading"
    assert "unexecuted_layers" in inspect.getsource(group_offloading), "video/modes.py _TiedT5EmbeddingFilter matches this text"


def test_diffusers_pipeline_step_callback():
    """directors/switch.py is a callback_on_step_end(pipe, step, timestep, callback_kwargs)."""
    from diffusers import CogVideoXImageToVideoPipeline

    assert "callback_on_step_end" in parameters(CogVideoXImageToVideoPipeline.__call__)
    source = inspect.getsource(CogVideoXImageToVideoPipeline.__call__)
    assert "callback_on_step_end(self, i, t, callback_kwargs)" in source


def test_diffusers_stateful_hook_reset_and_cache_dit_transformer_context():
    """video/dbcache.py: a pipeline call ends by resetting stateful hooks (ResetEachVideo.reset_state), which points
    the transformer's cache-dit context manager (``_context_manager``, ``_context_names``, set by cache-dit) at the fresh context."""
    import importlib.util

    from diffusers import CogVideoXImageToVideoPipeline, DiffusionPipeline

    assert "self.maybe_free_model_hooks()" in inspect.getsource(CogVideoXImageToVideoPipeline.__call__)
    assert "_reset_stateful_cache()" in inspect.getsource(DiffusionPipeline.maybe_free_model_hooks)
    if importlib.util.find_spec("cache_dit") is None:
        pytest.skip("cache-dit is not installed: pip install 'dimensionx[dbcache]'")
    from dimensionx.video.dbcache import import_cache_dit

    import_cache_dit()
    from cache_dit.caching.cache_adapters.cache_adapter import CachedAdapter
    from cache_dit.caching.cache_contexts.cache_manager import CachedContextManager

    source = inspect.getsource(CachedAdapter.mock_transformer)
    assert "transformer._context_manager = " in source and "transformer._context_names = " in source, \
        "cache-dit moved the transformer's context manager: video/dbcache.py ResetEachVideo.reset_state reads it"
    assert parameters(CachedContextManager.set_context)[:2] == ["self", "cached_context"]


def test_peft_lora_layer_layout():
    """directors/lora.py reads lora_A[adapter] / lora_B[adapter] and a wrapped layer's base_layer."""
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer

    assert {"lora_A", "lora_B"} <= set(LoraLayer.adapter_layer_names)
    model = inject_adapter_in_model(LoraConfig(r=2, target_modules=["to_q"]), torch.nn.ModuleDict({"to_q": torch.nn.Linear(4, 3)}),
                                    adapter_name="d")
    assert isinstance(model["to_q"].base_layer, torch.nn.Linear), "peft's LoRA layer has no base_layer: directors/lora.py check_fits"
    assert model["to_q"].lora_A["d"].weight.shape == (2, 4) and model["to_q"].lora_B["d"].weight.shape == (3, 2)
