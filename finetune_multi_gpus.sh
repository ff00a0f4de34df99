#!/usr/bin/env bash
# Director LoRA training on all GPUs of this machine: accelerate launch + DeepSpeed ZeRO-2 (bf16).
# Usage: bash finetune_multi_gpus.sh [TRAIN_CONFIG] --data DATA --output-dir RUN [more `dimensionx train` flags]
# Environment: NUM_GPUS (default: every GPU nvidia-smi lists),
#              ACCELERATE_CONFIG (default configs/accelerate/deepspeed_zero2.yaml; multi_gpu.yaml for plain DDP),
#              MAIN_PROCESS_PORT (default accelerate's 29500; another one when two runs share a machine).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONFIG="${1:-$HERE/configs/train/s_director.yaml}"
shift $(( $# > 0 ? 1 : 0 ))
NUM_GPUS="${NUM_GPUS:-$(nvidia-smi -L | wc -l)}"
exec accelerate launch --config_file "${ACCELERATE_CONFIG:-$HERE/configs/accelerate/deepspeed_zero2.yaml}" \
    --num_processes "$NUM_GPUS" ${MAIN_PROCESS_PORT:+--main_process_port "$MAIN_PROCESS_PORT"} -m dimensionx.cli train --config "$CONFIG" "$@"
