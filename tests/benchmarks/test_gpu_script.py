"""The GPU benchmark cannot rot between lent GPUs: it runs end to end on the CPU with a tiny
config, every strategy on both sides, and writes the JSON a GPU run would."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_benchmark_runs_on_cpu_with_a_tiny_config(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/gpu.py", "--config", "tiny", "--steps", "3",
                           "--rows", "40", "--length", "256", "--batch", "2", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "gpu.json").read_text())
    assert {(r["strategy"], r["side"]) for r in rows} == {
        (s, side) for s in ("qlora", "lora", "full") for side in ("adapters-sft", "plain")}
    for row in rows:
        assert "error" not in row, row
        assert row["steps_timed"] == 2 and row["tokens_per_s"] > 0 and row["peak_gib"] > 0
    ours = [r for r in rows if r["side"] == "adapters-sft"]
    assert all(r["planned_gib"] > 0 and r["plan_fits"] for r in ours)
    # both sides pack the same rows into the same batches: the same real tokens are timed
    for s in ("qlora", "lora", "full"):
        assert len({r["tokens"] for r in rows if r["strategy"] == s}) == 1
