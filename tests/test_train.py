"""`dimensionx train` on the tiny model: the loss goes down, the export loads in `video`, resume is exact."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dimensionx import DimensionXError
from dimensionx.cli import main
from dimensionx.directors.lora import LORA_TARGETS, fuse_directors, read_lora
from dimensionx.outputs import OUTPUT_MARKER
from dimensionx.train.model import diffusion_loss

from train_synthetic import fixed_loss, write_clips

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config", str(ROOT / "configs" / "train" / "tiny.yaml"), "--pre-encode"]
STEPS = 20


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    """One uninterrupted 20-step run, checkpoints every 10 steps."""
    out = tmp_path_factory.mktemp("runs") / "full"
    assert main(["train", *TINY, "--data", str(data), "--output-dir", str(out), "--max-steps", str(STEPS)]) == 0
    return out


class ConstantVelocity(torch.nn.Module):
    """A stand-in transformer whose prediction is a fixed tensor."""

    def __init__(self, v):
        super().__init__()
        self.v = v

    def forward(self, hidden_states, encoder_hidden_states, timestep, image_rotary_emb, return_dict):
        return (self.v,)


def test_loss_is_x0_error_weighted_by_one_over_one_minus_alpha_bar():
    g = torch.Generator().manual_seed(0)
    x0, noise, v_hat = (torch.randn(2, 3, 4, 2, 2, generator=g) for _ in range(3))
    alphas = torch.linspace(0.999, 0.001, 1000)
    t = torch.tensor([10, 900])
    loss = diffusion_loss(ConstantVelocity(v_hat), alphas, x0, torch.zeros_like(x0), torch.zeros(2, 5, 7), t, noise, None)
    for i in range(2):
        a = float(alphas[t[i]])
        x_t = a**0.5 * x0[i] + (1 - a) ** 0.5 * noise[i]
        x0_hat = a**0.5 * x_t - (1 - a) ** 0.5 * v_hat[i]
        expected = float(((x0_hat - x0[i]) ** 2).mean()) / (1 - a)
        velocity = a**0.5 * noise[i] - (1 - a) ** 0.5 * x0[i]  # the same loss is the plain v-prediction MSE
        assert float(loss[i]) == pytest.approx(expected, rel=1e-5)
        assert float(loss[i]) == pytest.approx(float(((v_hat[i] - velocity) ** 2).mean()), rel=1e-4)


def test_run_folder_log_and_export_layout(run):
    lines = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == list(range(1, STEPS + 1))
    assert set(lines[0]) == {"step", "loss", "lr", "grad_norm", "seconds", "samples_per_s"}
    assert all(np.isfinite(line["loss"]) and line["grad_norm"] > 0 for line in lines)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000010", "step_000020"]
    raw = load_file(run / "pytorch_lora_weights.safetensors")
    assert all(k.startswith("transformer_blocks.") for k in raw), "official layout: no `transformer.` prefix"
    lora = read_lora(run / "pytorch_lora_weights.safetensors")
    assert lora.rank == 4
    assert lora.modules == sorted(f"transformer_blocks.{b}.{t}" for b in range(2) for t in LORA_TARGETS)
    assert any(float(v.abs().max()) > 0 for k, v in raw.items() if "lora_B" in k), "lora_B starts at zero and must have moved"


def test_twenty_steps_lower_the_loss_of_the_fused_export(run, data, tiny_model_dir):
    """The file, fused as `dimensionx video` fuses it (1/rank), scores better on the training clips."""
    from diffusers import CogVideoXImageToVideoPipeline

    pipe = CogVideoXImageToVideoPipeline.from_pretrained(tiny_model_dir)
    before = fixed_loss(pipe, data)
    fuse_directors(pipe, [(read_lora(run / "pytorch_lora_weights.safetensors"), 1.0)])
    after = fixed_loss(pipe, data)
    assert after < 0.97 * before, f"loss {before:.4f} -> {after:.4f}: expected at least 3% lower after {STEPS} steps"


def test_export_loads_in_video_and_changes_the_frames(run, data, tmp_path):
    from dimensionx.videofiles import read_frames

    first = tmp_path / "first.png"
    from PIL import Image

    Image.fromarray(read_frames(data / "videos" / "clip0.mp4")[0][0]).save(first)
    common = ["video", str(first), "--model", "tiny", "--steps", "2", "--frames", "9", "--prompt", "a red disc"]
    assert main([*common, "--motion", "none", "--out", str(tmp_path / "base.mp4")]) == 0
    assert main([*common, "--lora", str(run / "pytorch_lora_weights.safetensors"), "--out", str(tmp_path / "lora.mp4")]) == 0
    sidecar = json.loads((tmp_path / "lora.json").read_text())
    assert sidecar["directors"][0]["multiplier"] == pytest.approx(1 / 4)
    base, trained = read_frames(tmp_path / "base.mp4")[0], read_frames(tmp_path / "lora.mp4")[0]
    assert np.abs(base.astype(int) - trained.astype(int)).mean() > 0.5


def test_resume_from_a_checkpoint_ends_with_the_same_lora(run, data, tmp_path):
    out = tmp_path / "resumed"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copytree(run / "checkpoints" / "step_000010", out / "checkpoints" / "step_000010")
    shutil.copy(run / OUTPUT_MARKER, out)  # a run folder: --resume continues only a folder train made
    assert main(["train", *TINY, "--data", str(data), "--output-dir", str(out), "--max-steps", str(STEPS), "--resume"]) == 0
    expected, got = load_file(run / "pytorch_lora_weights.safetensors"), load_file(out / "pytorch_lora_weights.safetensors")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected), "resumed LoRA differs from the uninterrupted run"
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(11, STEPS + 1))


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_resume_matches_uninterrupted(run, data, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "dimensionx.cli", "train", *TINY, "--data", str(data), "--output-dir", str(out),
               "--max-steps", str(STEPS), "--checkpoint-every", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = out / "train_log.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (log.is_file() and len(log.read_text().splitlines()) >= 3):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 143, output
    (checkpoint,) = (out / "checkpoints").iterdir()
    killed_at = int(checkpoint.name.split("_")[1])
    assert 3 <= killed_at < STEPS and not (out / "pytorch_lora_weights.safetensors").exists()
    assert main(["train", *TINY, "--data", str(data), "--output-dir", str(out), "--max-steps", str(STEPS), "--resume", "latest"]) == 0
    expected, got = load_file(run / "pytorch_lora_weights.safetensors"), load_file(out / "pytorch_lora_weights.safetensors")
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch):
    import dimensionx.train.trainer as trainer

    calls = []

    def poisoned(*args, **kwargs):
        calls.append(1)
        loss = diffusion_loss(*args, **kwargs)
        return loss * float("nan") if len(calls) == 5 else loss

    monkeypatch.setattr(trainer, "diffusion_loss", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(DimensionXError, match=r"nan at step 5.*step_000004"):
        trainer.train(trainer.TrainConfig(**{**tiny_settings(), "data": str(data), "output_dir": str(out),
                                             "checkpoint_every": 2, "pre_encode": True}))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000002", "step_000004"]
    assert not (out / "pytorch_lora_weights.safetensors").exists()


def tiny_settings() -> dict:
    from omegaconf import OmegaConf

    return dict(OmegaConf.load(ROOT / "configs" / "train" / "tiny.yaml"))


def test_existing_run_folder_needs_resume_or_overwrite(run, data, capsys):
    assert main(["train", *TINY, "--data", str(data), "--output-dir", str(run)]) == 2
    assert "--resume latest" in capsys.readouterr().err
