#!/usr/bin/env bash
# Everything a lent GPU should run, in one command (see docs/benchmarks.md), most valuable first:
# the Llama-3.1-8B-shaped QLoRA pair (ours against the plain PEFT + TRL script, at 2 x 2048 and
# 2 x 8192 tokens: peak allocated memory beside the plan, tokens/s; the random model is built
# once for all four runs), the plan against measured peaks, the GPU tests, then (without
# --quick) LoRA and full fine-tuning. Logs and JSON go to $OUT (default benchmarks/results/gpu)
# as each part runs, so a run cut short returns what it measured; each part goes on if an
# earlier one fails, and the exit status says whether any did. At most 7 files.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
mkdir -p "$OUT"
PY=${PYTHON:-python3}
status=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/device.txt" 2>&1 || true
"$PY" benchmarks/gpu.py --config llama-3.1-8b --strategy qlora --length 2048 --length 8192 --batch 2 \
    --out "$OUT" > "$OUT/gpu.log" 2>&1 || status=1
grep '^{' "$OUT/gpu.log"
"$PY" benchmarks/plan_check.py --out "$OUT/plan_check.json" > "$OUT/plan_check.log" 2>&1 || status=1
grep "planned/measured" "$OUT/plan_check.log"
"$PY" -m pytest -m gpu -q -p no:cacheprovider > "$OUT/gpu-tests.log" 2>&1 || status=1
tail -3 "$OUT/gpu-tests.log"
if [ "$QUICK" = 0 ]; then
    "$PY" benchmarks/gpu.py --config llama-3.1-8b --strategy lora --strategy full --out "$OUT/more" \
        >> "$OUT/gpu.log" 2>&1 || status=1
fi
exit $status
