#!/usr/bin/env bash
# Director LoRA training on all GPUs of this machine: accelerate launch + DeepSpeed ZeRO-2 (bf16).
# Usage: bash finetune_multi_gpus.sh [TRAIN_CONFIG] --data DATA --output-dir RUN [more `dimensionx train` flags]
# Environment: NUM_GPUS (default: every GPU nvidia-smi lists),
#              ACCELERATE_CONFIG (default configs/accelerate/deepspeed_zero2.yaml; multi_gpu.yaml for plain DDP),
#              MAIN_PROCESS_PORT (default accelerate's 29500; another one when two runs share a machine).
# No GPU? Train on the CPU with `dimensionx train --config configs/train/tiny.yaml --model tiny ...` (README).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts_check.sh
source "$HERE/scripts_check.sh"
CONFIG="${1:-$HERE/configs/train/s_director.yaml}"
shift $(( $# > 0 ? 1 : 0 ))
ACCELERATE_CONFIG="${ACCELERATE_CONFIG:-$HERE/configs/accelerate/deepspeed_zero2.yaml}"
need_file "$CONFIG" "the training config (first argument)" "pass a YAML such as configs/train/s_director.yaml"
need_file "$ACCELERATE_CONFIG" "ACCELERATE_CONFIG" "point it at a file in configs/accelerate/"
need_command accelerate "accelerate launches one training process per GPU" 'pip install -e . (README command 1)'
need_dimensionx
if grep -q deepspeed "$ACCELERATE_CONFIG"; then
  need_module deepspeed "$ACCELERATE_CONFIG uses DeepSpeed ZeRO-2" \
    "pip install -e \".[train]\", or ACCELERATE_CONFIG=$HERE/configs/accelerate/multi_gpu.yaml for plain DDP"
fi
if [ -z "${NUM_GPUS:-}" ]; then
  need_command nvidia-smi "it counts this machine's GPUs (this script trains on NVIDIA GPUs)" \
    "install the NVIDIA driver, or set NUM_GPUS=N; without a GPU use: dimensionx train --config configs/train/tiny.yaml --model tiny ..."
  NUM_GPUS="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
  if [ "$NUM_GPUS" -lt 1 ]; then
    fail "nvidia-smi lists no GPU on this machine: this script trains on NVIDIA GPUs; without one use: dimensionx train --config configs/train/tiny.yaml --model tiny ..."
  fi
fi
exec accelerate launch --config_file "$ACCELERATE_CONFIG" \
    --num_processes "$NUM_GPUS" ${MAIN_PROCESS_PORT:+--main_process_port "$MAIN_PROCESS_PORT"} -m dimensionx.cli train --config "$CONFIG" "$@"
