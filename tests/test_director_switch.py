"""Directors as switchable adapters: one director equals its fusion; a switch at step k is S-fused then T-fused."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from dimensionx.cli import main
from dimensionx.video.config import VideoConfig
from dimensionx.video.generator import load_generator, resolve_directors
from dimensionx.video.image import fit_image
from dimensionx.videofiles import read_frames

CONFIG = VideoConfig(model="tiny", device="cpu", steps=4, frames=9, prompt="a red barn", seed=3)
SWITCH = 2  # of 4 steps
# Fused, a layer computes (W + m B A) x; as an adapter, W x + m B (A x): the same sum in
# another order. In float32 each order rounds within a few ulps (2^-23 = 1.2e-7 relative) of
# the exact value; through 2 blocks, 4 steps and the scheduler the two runs stay ~1e-6 apart
# (measured: max abs 2e-6 on latents of std ~1). rtol 1e-4 / atol 1e-4 leaves 50x headroom, yet
# is far tighter than what a wrong multiplier gives: the same director at weight 0.9 instead of
# 1 moves the latents by more than 1e-2 (checked below), so the tolerance cannot hide an error.
TOL = dict(rtol=1e-4, atol=1e-4)


def directors(motion: str):
    return resolve_directors(dataclasses.replace(CONFIG, motion=motion), tiny=True)


@pytest.fixture(scope="module")
def generator(tiny_cache):
    return load_generator(CONFIG, reusable=True)


@pytest.fixture(scope="module")
def image(generator) -> Image.Image:
    y, x = np.mgrid[0:100, 0:150]
    rgb = np.stack([x / 150 * 255, y / 100 * 255, ((x - 75) ** 2 + (y - 50) ** 2 < 900) * 255], -1).astype(np.uint8)
    height, width = generator.size
    return fit_image(Image.fromarray(rgb), width, height)


def denoise(generator, image, reference_callback=None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Final latents and the transformer's prediction at every step. With ``reference_callback`` the
    stock diffusers call runs with that callback instead of the generator's own."""
    predictions = []
    hook = generator.pipe.transformer.register_forward_hook(lambda module, args, out: predictions.append(out[0].clone()))
    try:
        if reference_callback is None:
            latents = generator.denoise(image, CONFIG.prompt, CONFIG)
        else:
            height, width = generator.size
            latents = generator.pipe(image=image, prompt=CONFIG.prompt, height=height, width=width, num_frames=CONFIG.frames,
                                     num_inference_steps=CONFIG.steps, guidance_scale=CONFIG.guidance,
                                     use_dynamic_cfg=CONFIG.dynamic_cfg, output_type="latent",
                                     generator=torch.Generator("cpu").manual_seed(CONFIG.seed),
                                     callback_on_step_end=reference_callback).frames
    finally:
        hook.remove()
    return latents, predictions


def test_one_director_as_adapter_equals_its_fusion(generator, image):
    generator.set_directors(directors("orbit_left"), None)
    fused, fused_steps = denoise(generator, image)
    generator.set_directors(directors("orbit_left"), None, adapters=True)
    assert generator.switch is not None and any("lora_A" in n for n, _ in generator.pipe.transformer.named_modules())
    adapter, adapter_steps = denoise(generator, image)

    torch.testing.assert_close(adapter, fused, **TOL)
    for step, (a, f) in enumerate(zip(adapter_steps, fused_steps)):
        torch.testing.assert_close(a, f, **TOL, msg=f"step {step}")
    generator.set_directors(directors("orbit_left:0.9"), None)
    weaker, _ = denoise(generator, image)
    assert (weaker - fused).abs().max() > 1e-2  # the tolerance would catch a wrong multiplier


def test_switch_at_step_k_is_s_fused_before_k_and_t_fused_from_k(generator, image):
    generator.set_directors(directors("orbit_left"), None)
    s_only, s_steps = denoise(generator, image)

    def fuse_t_after_step(pipe, step, timestep, tensors):  # reference: swap the fused weights between two steps
        if step == SWITCH - 1:
            generator.set_directors(directors("time"), None)
        return tensors

    generator.set_directors(directors("orbit_left"), None)
    reference, reference_steps = denoise(generator, image, reference_callback=fuse_t_after_step)
    generator.set_directors(directors("orbit_left"), None, then=directors("time"), switch_step=SWITCH)
    switched, switched_steps = denoise(generator, image)

    assert len(switched_steps) == CONFIG.steps
    for step in range(CONFIG.steps):
        torch.testing.assert_close(switched_steps[step], reference_steps[step], **TOL, msg=f"step {step}")
    for step in range(SWITCH):
        torch.testing.assert_close(switched_steps[step], s_steps[step], **TOL, msg=f"step {step} is before the switch")
    assert (switched_steps[SWITCH] - s_steps[SWITCH]).abs().max() > 1e-2  # from k on, T directs
    torch.testing.assert_close(switched, reference, **TOL)
    # a second video with the same generator starts again with S (the callback rewinds)
    again, _ = denoise(generator, image)
    torch.testing.assert_close(again, switched, rtol=0, atol=0)


def test_leaving_adapter_mode_gives_the_base_weights_back_bit_exactly(generator):
    generator.set_directors([], None)
    base = {k: v.clone() for k, v in generator.pipe.transformer.state_dict().items()}
    generator.set_directors(directors("orbit_left"), None, then=directors("time"), switch_step=SWITCH)
    generator.set_directors([], None)
    after = generator.pipe.transformer.state_dict()
    assert after.keys() == base.keys() and all(torch.equal(after[k], base[k]) for k in base)


FAST = ["--model", "tiny", "--steps", "4", "--frames", "9", "--prompt", "a red barn"]


def test_cli_switch_is_recorded_and_reproduced_from_the_sidecar(photo, tmp_path):
    out = tmp_path / "st.mp4"
    assert main(["video", str(photo), *FAST, "--motion", "orbit_left", "--then", "time", "--switch-step", "2", "--out", str(out)]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["lora_mode"] == "adapters" and sidecar["config"]["then"] == "time" and sidecar["config"]["switch_step"] == 2
    assert [d["name"] for d in sidecar["directors"]] == ["orbit_left"]
    assert sidecar["then"]["switch_step"] == 2 and [d["name"] for d in sidecar["then"]["directors"]] == ["time"]

    again = tmp_path / "again.mp4"
    assert main(["video", "--config", str(out.with_suffix(".json")), "--out", str(again)]) == 0
    assert np.array_equal(read_frames(out)[0], read_frames(again)[0])
    s_only = tmp_path / "s.mp4"
    assert main(["video", str(photo), *FAST, "--motion", "orbit_left", "--out", str(s_only)]) == 0
    assert json.loads(s_only.with_suffix(".json").read_text())["lora_mode"] == "fused"
    assert np.abs(read_frames(out)[0].astype(int) - read_frames(s_only)[0].astype(int)).mean() > 0.5


@pytest.mark.parametrize("flags, message", [
    (["--mode", "fast", "--then", "time", "--switch-step", "2"], "--mode fast cannot switch directors: its FP8 weights"),
    (["--mode", "fast", "--lora-mode", "adapters"], "--mode fast cannot switch directors"),
    (["--then", "time"], "--then time needs --switch-step K"),
    (["--switch-step", "2"], "--switch-step 2 without --then"),
    (["--then", "time", "--switch-step", "4"], "--switch-step 4 with --steps 4: switch between steps 1 and 3"),
    (["--then", "time", "--switch-step", "0"], "--switch-step 0 with --steps 4"),
    (["--then", "time", "--switch-step", "2", "--lora-mode", "fused"], "fused weights cannot do: drop --lora-mode fused"),
], ids=["fast-switch", "fast-adapters", "no-step", "no-then", "step-too-late", "step-zero", "fused"])
def test_impossible_switches_are_refused_before_any_model_loads(photo, tmp_path, capsys, monkeypatch, flags, message):
    import dimensionx.video.generator as generate

    monkeypatch.setattr(generate, "resolve_model", lambda *_: pytest.fail("model loaded for a refused switch"))
    assert main(["video", str(photo), *FAST, "--motion", "orbit_left", *flags, "--out", str(tmp_path / "x.mp4")]) == 2
    assert message in capsys.readouterr().err
