#!/usr/bin/env bash
# Director LoRA training on one GPU (accelerate launch; bf16).
# Usage: bash finetune_single_gpu.sh [TRAIN_CONFIG] --data DATA --output-dir RUN [more `dimensionx train` flags]
# No GPU? Train on the CPU with `dimensionx train --config configs/train/tiny.yaml --model tiny ...` (README).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts_check.sh
source "$HERE/scripts_check.sh"
CONFIG="${1:-$HERE/configs/train/s_director.yaml}"
shift $(( $# > 0 ? 1 : 0 ))
need_file "$CONFIG" "the training config (first argument)" "pass a YAML such as configs/train/s_director.yaml"
need_command accelerate "accelerate launches the training process" 'pip install -e . (README command 1)'
need_dimensionx
exec accelerate launch --config_file "$HERE/configs/accelerate/single_gpu.yaml" \
    -m dimensionx.cli train --config "$CONFIG" "$@"
