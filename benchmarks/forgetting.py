"""What the demo costs the model outside its task, and which knob keeps the cost low (issue 29).

The shipped demo (smollm2-135m/lora: SmolLM2-135M-Instruct taught to rewrite dates as ISO
8601, 40 steps at learning rate 2e-3) and variants of it, each trained in a fresh process
with the same data, seed, steps and schedule; only the overrides below change. Per variant:

  dates EM       held-out exact match on the 60 dates rows, before -> after training
  unchanged      the share of the 125 bundled general prompts whose greedy answer is the same
  first 16       the share whose first 16 answer tokens agree
  KL             nats/token from the base to the tuned model on the base's own answers
  NLL            the base answers' nats/token under the base -> under the tuned model
  train s        the run's training time (train_runtime); the whole command's is in the JSON
                 (wall_s: loading, scoring, the probe and, once, replay's generation)

Run from the repository root:  python benchmarks/forgetting.py    # about 25 minutes on 2 cores
Writes benchmarks/results/forgetting.json and prints the table for docs/forgetting.md
(`--render` prints it again from the JSON).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = "smollm2-135m/lora"
VARIANTS = {
    "as shipped (lr 2e-3)": [],
    "data.replay=0.2": ["data.replay=0.2"],
    "data.replay=0.5": ["data.replay=0.5"],
    "lr 5e-4": ["training.learning_rate=5e-4"],
    "lr 5e-4, data.replay=0.2": ["training.learning_rate=5e-4", "data.replay=0.2"],
}
RESULTS = Path(__file__).parent / "results" / "forgetting.json"


def one(label: str, out: Path) -> dict:
    """Train one variant in a fresh process; its row from the run's own files."""
    argv = [sys.executable, "-m", "adapters_sft", "train", RECIPE, *VARIANTS[label], f"output_dir={out}"]
    started = time.time()
    subprocess.run(argv, check=True)
    wall = time.time() - started
    scores = json.loads((out / "eval.json").read_text())
    final = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"final"' in x][-1]
    g = scores["general"]
    return {"variant": label, "overrides": VARIANTS[label],
            "dates_before": scores["before"]["exact_match"], "dates_after": scores["after"]["exact_match"],
            "unchanged": g["unchanged"], "prefix_agree": g["prefix_agree"], "kl": g["kl"],
            "nll_reference": g["nll_reference"], "nll_tuned": g["nll_tuned"],
            "reference_mass": g["reference_mass"], "train_s": final["train_runtime"], "wall_s": wall,
            "examples": g["examples"]}


def render(rows: list[dict]) -> str:
    lines = ["| variant | dates EM before → after | general answers unchanged | first 16 tokens agree "
             "| KL (nats/token) | base answers' NLL base → tuned | train s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['dates_before']:.1%} → {r['dates_after']:.1%} | "
                     f"{r['unchanged']:.1%} | {r['prefix_agree']:.1%} | {r['kl']:.3f} | "
                     f"{r['nll_reference']:.3f} → {r['nll_tuned']:.3f} | {r['train_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render", action="store_true", help="print the table from the saved JSON")
    parser.add_argument("--only", nargs="*", help="these variants (labels) only")
    args = parser.parse_args()
    if not args.render:
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for label in args.only or VARIANTS:
                rows.append(one(label, Path(tmp) / f"run{len(rows)}"))
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps({"recipe": RECIPE, "rows": rows}, indent=2) + "\n")
    print(render(json.loads(RESULTS.read_text())["rows"]))


if __name__ == "__main__":
    main()
