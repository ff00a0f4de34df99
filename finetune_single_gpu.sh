#!/usr/bin/env bash
# Director LoRA training on one GPU (accelerate launch; bf16).
# Usage: bash finetune_single_gpu.sh [TRAIN_CONFIG] --data DATA --output-dir RUN [more `dimensionx train` flags]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONFIG="${1:-$HERE/configs/train/s_director.yaml}"
shift $(( $# > 0 ? 1 : 0 ))
exec accelerate launch --config_file "$HERE/configs/accelerate/single_gpu.yaml" \
    -m dimensionx.cli train --config "$CONFIG" "$@"
