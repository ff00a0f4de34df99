"""`--mode exact|fast|lowmem` on a CPU: eager with a notice, recorded in the sidecar; the pieces that run anywhere.

The modes' speed is measured on a GPU by benchmarks/bench_video.py, never here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from diffusers import CogVideoXImageToVideoPipeline
from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0

from dimensionx.cli import main
from dimensionx.config import load_config
from dimensionx.orbit.config import OrbitConfig
from dimensionx.video.config import VideoConfig
from dimensionx.video.attention import CogVideoXSDPAProcessor
from dimensionx.video.modes import MODES, ModeConfig, _compile_cache_file, _enable_step_cache, apply_mode
from dimensionx.errors import DimensionXError

REPO = Path(__file__).resolve().parents[1]
FAST = ["--model", "tiny", "--steps", "2", "--frames", "9", "--prompt", "a red barn", "--motion", "orbit_left"]


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_runs_eager_on_cpu_with_a_notice_and_is_recorded(mode, photo, tmp_path, caplog):
    out = tmp_path / f"{mode}.mp4"
    with caplog.at_level(logging.INFO, logger="dimensionx.video.modes"):
        assert main(["video", str(photo), *FAST, "--mode", mode, "--out", str(out)]) == 0

    notices = [r.getMessage() for r in caplog.records if r.name == "dimensionx.video.modes"]
    # exact, the default, is plain eager's numbers anyway: no notice on every CPU run, only for a mode asked for
    assert notices == ([] if mode == "exact" else [f"--mode {mode} needs a CUDA GPU for its kernels; running plain eager on cpu"])
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["config"]["mode"] == mode
    assert sidecar["mode"] == {"name": mode, "notes": [f"{mode} -> eager on cpu"]}
    assert out.is_file()


def test_unknown_mode_is_a_clear_error(photo, tmp_path, capsys):
    assert main(["video", str(photo), *FAST, "--mode", "turbo", "--out", str(tmp_path / "x.mp4")]) == 2
    assert "--mode 'turbo' is unknown: use one of exact, fast, lowmem" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_mode_config_rejects_impossible_knobs():
    with pytest.raises(DimensionXError, match="cache_interval=0"):
        ModeConfig(cache_interval=0)
    with pytest.raises(DimensionXError, match="offload_blocks_per_group=0"):
        ModeConfig(offload_blocks_per_group=0)
    for tile in [(0, 360), (240, -8), (240, 100), (56, 360), (240,), (240.0, 360), "240x360", (True, 360)]:
        with pytest.raises(DimensionXError, match=r"mode_settings.vae_tile .*: give \[height, width\] in pixels, each a multiple of 8 and at least 64"):
            ModeConfig(vae_tile=tile)
    assert ModeConfig(vae_tile=[64, 512]).vae_tile == [64, 512]  # a YAML list


def test_apply_mode_on_cpu_leaves_the_pipeline_stock(tiny_model_dir):
    pipe = CogVideoXImageToVideoPipeline.from_pretrained(tiny_model_dir)
    assert apply_mode(pipe, "fast", torch.device("cpu")) == ["fast -> eager on cpu"]
    assert all(type(p) is CogVideoXAttnProcessor2_0 for p in pipe.transformer.attn_processors.values())
    assert not pipe.transformer.is_cache_enabled


def test_sdpa_processor_computes_what_the_stock_processor_does(tiny_model_dir):
    pipe = CogVideoXImageToVideoPipeline.from_pretrained(tiny_model_dir)
    transformer, config = pipe.transformer, pipe.transformer.config
    generator = torch.Generator().manual_seed(0)
    inputs = dict(
        hidden_states=torch.randn(2, 3, config.in_channels, config.sample_height, config.sample_width, generator=generator),
        encoder_hidden_states=torch.randn(2, 226, config.text_embed_dim, generator=generator),
        timestep=torch.tensor([999, 500]),
        image_rotary_emb=pipe._prepare_rotary_positional_embeddings(64, 96, 3, torch.device("cpu")),
    )
    with torch.no_grad():
        stock = transformer(**inputs).sample
        transformer.set_attn_processor(CogVideoXSDPAProcessor())
        ours = transformer(**inputs).sample
    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("config, full_steps", [
    (ModeConfig(cache_interval=5, cache_warmup_steps=3), [0, 1, 2, 4, 9]),
    (load_config(VideoConfig).mode_settings, [0, 1, 2, 4, 10]),  # dimensionx video: every 6th step
    (load_config(OrbitConfig, REPO / "configs" / "orbit.yaml").mode_settings, [0, 1, 2, 4, 10]),  # orbit: every 6th
])
def test_step_cache_runs_the_transformer_on_the_documented_steps(tiny_model_dir, photo, config, full_steps):
    """Warm-up 3, then the step after it and every N-th from there in full (of 12 steps; at 50 steps 13 full
    passes with N = 5 and 11 with N = 6, as the GPU benchmark counted them); the others are forecast."""
    from PIL import Image

    pipe = CogVideoXImageToVideoPipeline.from_pretrained(tiny_model_dir)
    _enable_step_cache(pipe.transformer, config)
    calls, full = [], []
    pipe.transformer.register_forward_pre_hook(lambda module, args: calls.append(len(calls)))
    pipe.transformer.transformer_blocks[0].attn1.register_forward_pre_hook(lambda module, args: full.append(calls[-1]))
    pipe(image=Image.open(photo).convert("RGB"), prompt="a barn", height=64, width=96, num_frames=9,
         num_inference_steps=12, generator=torch.Generator().manual_seed(0), output_type="latent")
    assert len(calls) == 12 and full == full_steps


def test_compile_artifacts_persist_in_the_users_cache_folder(monkeypatch, tmp_path):
    """Outside /tmp (emptied at reboot) whatever TORCHINDUCTOR_CACHE_DIR says: that folder is torch's own business."""
    monkeypatch.setenv("DIMENSIONX_CACHE", str(tmp_path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    cpu = torch.device("cpu")
    assert _compile_cache_file(ModeConfig(), cpu) == tmp_path / "inductor" / f"cpu-torch-{torch.__version__}.megacache"
    assert _compile_cache_file(ModeConfig(compile_cache="/data/compiled"), cpu).parent == Path("/data/compiled")


def test_a_video_stopped_mid_way_leaves_the_step_cache_to_start_afresh(tiny_cache, photo):
    """The app and --batch run many videos in one process: after a Generate cancelled at step 5 (here an error
    in the transformer, as Cancel raises in a callback), the next video runs its full passes on the documented
    steps and equals the first video of a fresh generator. diffusers resets the cache only at the end of a
    call, so without the reset the stopped video's step counter carries over and its features are forecast."""
    from PIL import Image

    from dimensionx.video.generator import load_generator

    config = VideoConfig(model="tiny", device="cpu", steps=12, frames=9, prompt="a barn", seed=5, motion="orbit_left")
    image = Image.open(photo).convert("RGB").resize((96, 64))
    mode = ModeConfig(cache_interval=5, cache_warmup_steps=3)

    def cached_generator():
        generator = load_generator(config)
        _enable_step_cache(generator.pipe.transformer, mode)  # as fast does on a GPU (a CPU runs eager)
        return generator

    fresh = cached_generator().denoise(image, config.prompt, config)
    generator = cached_generator()
    calls = []

    def stop_at_step_5(module, args):
        calls.append(len(calls))
        if len(calls) == 6:
            raise KeyboardInterrupt("cancelled at step 5")

    stop = generator.pipe.transformer.register_forward_pre_hook(stop_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        generator.denoise(image, config.prompt, config)
    stop.remove()
    calls.clear()
    full = []
    generator.pipe.transformer.register_forward_pre_hook(lambda module, args: calls.append(len(calls)))
    generator.pipe.transformer.transformer_blocks[0].attn1.register_forward_pre_hook(lambda module, args: full.append(calls[-1]))
    after = generator.denoise(image, config.prompt, config)
    assert full == [0, 1, 2, 4, 9]
    assert torch.equal(after, fresh)
