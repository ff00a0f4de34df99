#!/usr/bin/env bash
# Both two-GPU benchmarks in one call of at most BUDGET seconds (default 540) on a 2-GPU machine:
#   1. bench_train_multi.py: director LoRA training 1 vs 2 GPUs (DeepSpeed ZeRO-2), checkpoint, resume, export (~5.5 min);
#   2. bench_cfg_parallel.py --size orbit: CFG-parallel 1 vs 2 GPUs at the orbit shape, with as many denoising steps
#      (up to 50) as the time left allows: about 130 s of start (build, compile, warm-up) plus 3.1 s per step.
# Usage: bash benchmarks/bench_two_gpus.sh OUT_DIR        (wheels in .whl/ and .whl-ds/, if present, are installed first)
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$HERE/benchmarks/results}"
BUDGET="${BUDGET:-540}"
export PYTHONPATH="$HERE/src${PYTHONPATH:+:$PYTHONPATH}"
START=$SECONDS
for wheels in "$HERE/.whl" "$HERE/.whl-ds"; do
    if compgen -G "$wheels/*.whl" > /dev/null; then python3 -m pip install -q --no-index --no-deps --no-compile "$wheels"/*.whl; fi
done
python3 "$HERE/benchmarks/bench_train_multi.py" --out "$OUT" 2>&1 | grep -v -E "it/s\]|s/it\]"
echo "bench_train_multi: exit ${PIPESTATUS[0]} after $((SECONDS - START)) s"
LEFT=$((BUDGET - (SECONDS - START)))
STEPS=$(( (LEFT - 150) * 10 / 31 ))
STEPS=$(( STEPS > 50 ? 50 : STEPS ))
if (( STEPS < 10 )); then
    echo "bench_cfg_parallel --size orbit skipped: ${LEFT} s left, it needs about 180 s for 10 steps"
    exit 0
fi
echo "bench_cfg_parallel --size orbit with $STEPS steps (${LEFT} s left)"
python3 "$HERE/benchmarks/bench_cfg_parallel.py" --size orbit --steps "$STEPS" --out "$OUT" 2>&1 | grep -v -E "it/s\]|s/it\]" | tail -60
echo "bench_cfg_parallel: exit ${PIPESTATUS[0]} after $((SECONDS - START)) s in all"
