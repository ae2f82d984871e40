"""How fast the checks that need no model answer, against their targets (issue 32).

Each command is a fresh process (what a user waits for), run --runs times after one warm-up
(which also writes the Trainer config's schema to the cache, as a user's first validate does;
that first answer is timed apart: `first`). Side by side in one script, on the bundled recipes
and data; the median is judged against the target.

Run from the repository root:  python benchmarks/answers.py   # about 2 minutes on 2 cores
Writes benchmarks/results/answers.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (label, arguments, the exit status it must give, target seconds)
CASES = [
    ("validate smollm2-135m/lora", ["validate", "smollm2-135m/lora"], 0, 2.0),
    ("validate smollm2-135m/qlora", ["validate", "smollm2-135m/qlora"], 0, 2.0),
    ("recipe key error (strategy.rank=8)", ["validate", "smollm2-135m/lora", "strategy.rank=8"], 2, 2.0),
    ("training key error, validate (training.lr=1)", ["validate", "smollm2-135m/lora", "training.lr=1"], 2, 2.0),
    ("training key error, train (training.lr=1)", ["train", "smollm2-135m/lora", "training.lr=1"], 2, 2.0),
    ("plan gpu-24gb/llama-3.1-8b-qlora --gpu 24GB",
     ["plan", "gpu-24gb/llama-3.1-8b-qlora", "--gpu", "24GB"], 0, 5.0),
    ("check smollm2-135m/lora (bundled data)", ["check", "smollm2-135m/lora"], 0, 5.0),
]


def timed(argv: list[str], code: int, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "adapters_sft", *argv], env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != code:
        raise SystemExit(f"{argv}: exit {done.returncode}, expected {code}: {done.stderr[-500:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/answers.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as schema_cache:
        # a cache with the converted model but no schema yet: the first validate writes it
        base = os.environ.get("ADAPTERS_SFT_CACHE") or str(Path.home() / ".cache" / "adapters_sft")
        os.symlink(Path(base) / "models", Path(schema_cache) / "models")
        env = {**os.environ, "ADAPTERS_SFT_CACHE": schema_cache, "HF_HUB_OFFLINE": "1"}
        rows = []
        for label, argv, code, target in CASES:
            first = timed(argv, code, env)
            times = [timed(argv, code, env) for _ in range(args.runs)]
            median = statistics.median(times)
            rows.append({"command": label, "first": round(first, 2), "min": round(min(times), 2),
                         "median": round(median, 2), "max": round(max(times), 2),
                         "target": target, "meets": median <= target})
            print(f"{label:<48} first {first:5.2f}s  median {median:5.2f}s  target {target}s  "
                  f"{'ok' if median <= target else 'MISSES'}", flush=True)
    result = {"runs": args.runs, "machine": "2-core CPU (this project's development machine)",
              "python": sys.version.split()[0], "rows": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
