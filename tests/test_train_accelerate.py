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


def deepspeed_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("deepspeed") is not None and shutil.which("accelerate") is not None


@pytest.mark.slow
@pytest.mark.skipif(not deepspeed_installed(), reason="deepspeed (extra `train`) or the accelerate command is not installed")
def test_deepspeed_zero2_trains_checkpoints_lora_only_and_resumes_exactly(tmp_path, tiny_model_dir):
    """The repo's ZeRO-2 config in one process (DeepSpeed runs on a CPU with one process): bf16 module, the loop's
    autocast, checkpoints without the frozen weights, and a resume that ends with the uninterrupted run's LoRA."""
    import torch
    from safetensors.torch import load_file

    data = write_clips(tmp_path / "data")

    def launch(out: Path, *extra: str) -> None:
        command = ["accelerate", "launch", "--config_file", str(ROOT / "configs" / "accelerate" / "deepspeed_zero2.yaml"),
                   "--num_processes", "1", "--main_process_port", str(free_port()),
                   "-m", "dimensionx.cli", "train", "--config", str(ROOT / "configs" / "train" / "tiny.yaml"),
                   "--data", str(data), "--output-dir", str(out), "--max-steps", "4", "--mixed-precision", "bf16",
                   "--pre-encode", *extra]
        result = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    launch(tmp_path / "straight", "--checkpoint-every", "2")
    checkpoint = tmp_path / "straight" / "checkpoints" / "step_000002"
    (optimizer,) = (checkpoint / "pytorch_model").glob("*zero_pp_rank_0*optim_states.pt")  # DeepSpeed's sharded optimizer
    module = torch.load(checkpoint / "pytorch_model" / "mp_rank_00_model_states.pt", weights_only=False)["module"]
    assert any(".lora_A." in key for key in module)
    frozen = [key for key in module if ".lora_" not in key and key.endswith((".weight", ".bias"))]
    assert not frozen, "frozen weights left out of the checkpoint (buffers such as pos_embedding stay)"

    launch(tmp_path / "resumed", "--resume", str(checkpoint))
    logs = {run: [json.loads(line) for line in (tmp_path / run / "train_log.jsonl").read_text().splitlines()]
            for run in ("straight", "resumed")}
    assert [line["step"] for line in logs["resumed"]] == [3, 4]
    assert [line["loss"] for line in logs["resumed"]] == [line["loss"] for line in logs["straight"][2:]]
    a, b = (load_file(str(tmp_path / run / "pytorch_lora_weights.safetensors")) for run in ("straight", "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(float(v.abs().max()) > 0 for k, v in a.items() if "lora_B" in k), "the LoRA trained"
