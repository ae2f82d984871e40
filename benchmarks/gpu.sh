#!/usr/bin/env bash
# Everything a lent GPU should run, in one command (see docs/benchmarks.md): the GPU tests, the
# plan against measured peaks, and the GPU benchmark. Logs and JSON go to $OUT (default
# benchmarks/results/gpu); each part goes on if an earlier one fails, and the exit status says
# whether any did.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
status=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/device.txt" 2>&1 || true
"$PY" -m pytest -m gpu -q -p no:cacheprovider > "$OUT/gpu-tests.log" 2>&1 || status=1
tail -3 "$OUT/gpu-tests.log"
"$PY" benchmarks/plan_check.py --out "$OUT/plan_check.json" > "$OUT/plan_check.log" 2>&1 || status=1
grep "planned/measured" "$OUT/plan_check.log"
"$PY" benchmarks/gpu.py --config llama-3.1-8b --out "$OUT" > "$OUT/gpu.log" 2>&1 || status=1
grep '^{' "$OUT/gpu.log"
exit $status
