"""The shell scripts check what they need and say what is missing in words (exit 2), run with bash as a user would.

Each test builds a PATH holding only what the case needs (fake `accelerate` / `nvidia-smi` that
print what they were given), so the checks are seen without a GPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MULTI_GPU_DDP = str(REPO / "configs" / "accelerate" / "multi_gpu.yaml")
TINY = str(REPO / "configs" / "train" / "tiny.yaml")


@pytest.fixture
def bin_dir(tmp_path) -> Path:
    """A PATH folder with bash's basic tools and this Python as python3; nothing else."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("dirname", "basename", "grep", "cat"):
        os.symlink(shutil.which(tool), folder / tool)
    os.symlink(sys.executable, folder / "python3")
    return folder


def fake(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.unlink(missing_ok=True)  # never write through a symlink to a real tool
    path.write_text(f"#!{shutil.which('bash')}\n{script}\n")
    path.chmod(0o755)


def run(script: str, *args: str, path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {"PATH": str(path), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": os.environ.get("PYTHONPATH", ""), **env}
    return subprocess.run([shutil.which("bash"), str(REPO / script), *args], capture_output=True, text=True, env=environment)


def test_multi_gpu_script_without_nvidia_smi_says_so_and_how_to_train_without_a_gpu(bin_dir):
    fake(bin_dir, "accelerate", "echo accelerate $@")
    done = run("finetune_multi_gpus.sh", TINY, path=bin_dir, ACCELERATE_CONFIG=MULTI_GPU_DDP)
    assert done.returncode == 2
    assert done.stderr.startswith("finetune_multi_gpus.sh: error: nvidia-smi is not installed or not on PATH")
    assert "set NUM_GPUS=N" in done.stderr and "dimensionx train --config configs/train/tiny.yaml --model tiny" in done.stderr
    assert "command not found" not in done.stderr and done.stdout == ""


def test_multi_gpu_script_with_no_gpu_listed_refuses(bin_dir):
    fake(bin_dir, "accelerate", "echo accelerate $@")
    fake(bin_dir, "nvidia-smi", "echo 'No devices were found'")
    done = run("finetune_multi_gpus.sh", TINY, path=bin_dir, ACCELERATE_CONFIG=MULTI_GPU_DDP)
    assert done.returncode == 2 and "nvidia-smi lists no GPU on this machine" in done.stderr


def test_multi_gpu_script_launches_one_process_per_listed_gpu(bin_dir):
    fake(bin_dir, "accelerate", "echo accelerate \"$@\"")
    fake(bin_dir, "nvidia-smi", "echo 'GPU 0: NVIDIA H100 (UUID: a)'; echo 'GPU 1: NVIDIA H100 (UUID: b)'")
    done = run("finetune_multi_gpus.sh", TINY, "--data", "d", path=bin_dir, ACCELERATE_CONFIG=MULTI_GPU_DDP)
    assert done.returncode == 0, done.stderr
    assert "--num_processes 2 -m dimensionx.cli train --config" in done.stdout and done.stdout.rstrip().endswith("--data d")


def test_multi_gpu_script_names_deepspeed_when_zero2_lacks_it(bin_dir, tmp_path):
    fake(bin_dir, "accelerate", "echo accelerate $@")
    fake(tmp_path / "bin", "python3", f"[ \"$2\" = 'import deepspeed' ] && exit 1; exec {sys.executable} \"$@\"")
    done = run("finetune_multi_gpus.sh", TINY, path=bin_dir, NUM_GPUS="2")
    assert done.returncode == 2
    assert "the Python package deepspeed is not installed" in done.stderr and 'pip install -e ".[train]"' in done.stderr


@pytest.mark.parametrize("script", ["finetune_multi_gpus.sh", "finetune_single_gpu.sh"])
def test_training_scripts_name_a_missing_accelerate_and_config(bin_dir, script):
    done = run(script, TINY, path=bin_dir, NUM_GPUS="1", ACCELERATE_CONFIG=MULTI_GPU_DDP)
    assert done.returncode == 2
    assert f"{script}: error: accelerate is not installed or not on PATH" in done.stderr and "pip install -e ." in done.stderr
    fake(bin_dir, "accelerate", "echo accelerate $@")
    done = run(script, "configs/train/missing.yaml", path=bin_dir, NUM_GPUS="1", ACCELERATE_CONFIG=MULTI_GPU_DDP)
    assert done.returncode == 2
    assert "the training config (first argument) configs/train/missing.yaml does not exist" in done.stderr


def test_pipeline_sh_names_a_python_without_dimensionx(bin_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    fake(bare, "python3", "[ \"$1\" = -c ] && [ \"$2\" = 'import dimensionx' ] && exit 1; exit 0")
    done = run("pipeline.sh", "photo.jpg", "orbit_left", path=bin_dir, PYTHON=str(bare / "python3"))
    assert done.returncode == 2
    assert done.stderr.startswith("pipeline.sh: error: the Python package dimensionx is not installed in")
    assert 'pip install "torch==2.13.0" -e .' in done.stderr
