"""`accelerate launch` with two CPU processes (gloo): DDP training runs and exports the official layout."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from dimensionx.directors.lora import LORA_TARGETS, read_lora

from train_synthetic import write_clips

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("name, kind, processes", [("single_gpu", "NO", 1), ("multi_gpu", "MULTI_GPU", 8),
                                                    ("deepspeed_zero2", "DEEPSPEED", 8)])
def test_accelerate_configs_load_as_accelerate_reads_them(name, kind, processes):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ROOT / "configs" / "accelerate" / f"{name}.yaml"))
    assert config.distributed_type.value == kind and config.num_processes == processes and config.mixed_precision == "bf16"
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == 2 and config.deepspeed_config["gradient_clipping"] == 0.1


@pytest.mark.parametrize("script", ["finetune_single_gpu.sh", "finetune_multi_gpus.sh"])
def test_launch_scripts_are_valid_bash_calling_accelerate_launch(script):
    text = (ROOT / script).read_text()
    assert subprocess.run(["bash", "-n", str(ROOT / script)]).returncode == 0
    assert "accelerate launch --config_file" in text and "-m dimensionx.cli train" in text


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("accelerate") is None, reason="the accelerate command is not installed")
def test_two_cpu_processes_train_and_export(tmp_path, tiny_model_dir):
    data, out = write_clips(tmp_path / "data"), tmp_path / "run"
    # accelerate's torchrun launcher on CPUs: ACCELERATE_USE_CPU makes each process join a gloo group
    env = {**os.environ, "ACCELERATE_USE_CPU": "true"}
    command = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
               "-m", "dimensionx.cli", "train", "--config", str(ROOT / "configs" / "train" / "tiny.yaml"),
               "--data", str(data), "--output-dir", str(out), "--max-steps", "3", "--checkpoint-every", "2", "--pre-encode"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    lines = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3], "one log line per step, written by one process"
    for line in lines:  # two processes x micro-batch 1 = 2 clips a step
        assert line["samples_per_s"] * line["seconds"] == pytest.approx(2, rel=0.02)
    checkpoint = out / "checkpoints" / "step_000003"
    assert (checkpoint / "rng_state_0.pt").is_file() and (checkpoint / "rng_state_1.pt").is_file()
    lora = read_lora(out / "pytorch_lora_weights.safetensors")
    assert lora.rank == 4
    assert lora.modules == sorted(f"transformer_blocks.{b}.{t}" for b in range(2) for t in LORA_TARGETS)
