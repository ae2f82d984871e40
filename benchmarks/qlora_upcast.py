"""Quality of qlora with and without PEFT's fp32 cast of the weights that are not quantized.

`prepare_model_for_kbit_training` casts a 4/8-bit model's embeddings, output head and norms to
fp32, and with them every hidden state between layers. qlora no longer does by default
(strategy.upcast_base=false keeps them in the compute dtype). This checks that it costs no
quality, where it matters: bf16 compute (as on a GPU), here on CPU with `dtype=bfloat16`.

Both sides train the real SmolLM2-135M-Instruct with the shipped smollm2-135m/qlora recipe (4-bit
NF4, LoRA r=16 on all linear layers, 40 steps, seed 42, the bundled dates data), one after the
other, then `adapters-sft eval` scores each run's held-out split by one function: loss,
perplexity and greedy exact match. Writes JSON to --out after each side.

Run from the repository root:  python benchmarks/qlora_upcast.py     # about 15 minutes on 2 cores
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIDES = {"upcast (PEFT's fp32 cast)": "true", "no upcast (compute dtype, the default)": "false"}


def cli() -> str:
    return str(Path(sys.executable).with_name("adapters-sft"))


def run_side(name: str, upcast: str, root: Path, steps: int) -> dict[str, object]:
    run = root / upcast
    start = time.perf_counter()
    subprocess.run([cli(), "train", "smollm2-135m/qlora", "dtype=bfloat16", f"strategy.upcast_base={upcast}",
                    f"training.max_steps={steps}", "eval.before_training=false", f"output_dir={run}"],
                   check=True)
    seconds = time.perf_counter() - start
    subprocess.run([cli(), "eval", str(run)], check=True)
    from adapters_sft.rundir import EVAL, EVALS

    report = json.loads((run / EVALS / "eval" / EVAL).read_text())  # the run's own held-out split
    answers = report.get("answers", {})
    return {"side": name, "strategy.upcast_base": upcast == "true", "train_seconds": round(seconds, 1),
            "held_out_loss": report["loss"], "perplexity": report["perplexity"],
            "exact_match": answers.get("exact_match"), "correct": answers.get("correct"),
            "total": answers.get("total")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/qlora_upcast.json")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="qlora-upcast-"))
    results: list[dict[str, object]] = []
    try:
        for name, upcast in SIDES.items():
            results.append(run_side(name, upcast, root, args.steps))
            Path(args.out).write_text(json.dumps({"recipe": "smollm2-135m/qlora", "dtype": "bfloat16",
                                                  "steps": args.steps, "seed": 42, "sides": results},
                                                 indent=2) + "\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for r in results:
        print(f"{r['side']:42s} loss {r['held_out_loss']:.4f}  exact match {r['correct']}/{r['total']}")


if __name__ == "__main__":
    main()
