"""Every registered strategy on one task, side by side (issue 27): what each costs and buys.

The task is the shipped demo's (smollm2-135m/lora: SmolLM2-135M-Instruct rewriting the bundled
dates as ISO 8601), with the same steps, batch, seed and schedule for every strategy; only
`strategy.name` and the learning rate change (LR below, each with where it comes from). Each
strategy trains in a fresh process, so its peak memory (the run's own figure: process RSS, the
loaded model included) is its own. Per strategy:

  trained      numbers that require grad in the trained model (lisa: the K blocks drawn at
               the end, plus embeddings and top; prompt methods: the virtual tokens)
  saved        bytes of what the run keeps (its adapter/ or weights/ folder)
  s/step       training time / steps, from the run's metrics.jsonl
  peak         the run's peak memory (process RSS)
  exact match  held-out exact match after training (60 rows); before: the base model, once
  merge drift  max |Δlogit| of the merged model against the run as trained, or why it cannot

Run from the repository root:  python benchmarks/strategies.py   # about 55 minutes on 2 cores
Writes benchmarks/results/strategies.json and prints the table for docs/strategies.md
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
# strategy -> (learning rate, where it comes from): the shipped recipes' where there is one;
# otherwise chosen here, once, before the run (not tuned per method: a method that trails here
# may do better at another rate)
LR = {
    "head-only": (1e-3, "recipe smollm2-135m/head-only"),
    "freeze": (1e-4, "chosen here: between full's and head-only's"),
    "full": (5e-5, "recipe smollm2-135m/full"),
    "lisa": (5e-5, "full's"),
    "llama-pro": (5e-4, "chosen here: 10x full's, for new blocks"),
    "lora": (2e-3, "recipe smollm2-135m/lora"),
    "qlora": (2e-3, "recipe smollm2-135m/qlora"),
    "adalora": (2e-3, "LoRA's"),
    "loha": (2e-3, "LoRA's"),
    "lokr": (2e-3, "LoRA's"),
    "vera": (1e-2, "chosen here: 5x LoRA's, for scaling vectors alone"),
    "oft": (2e-3, "LoRA's"),
    "boft": (2e-3, "LoRA's"),
    "hra": (2e-3, "LoRA's"),
    "fourierft": (2e-2, "chosen here: 10x LoRA's"),
    "ia3": (3e-3, "chosen here: near LoRA's"),
    "adapter": (2e-3, "recipe smollm2-135m/adapter"),
    "prompt-tuning": (3e-2, "chosen here: 15x LoRA's, for virtual tokens alone"),
    "p-tuning": (1e-3, "chosen here: half LoRA's, for its encoder MLP"),
}


#: variants of `full` with the memory-lean optimizers: label -> overrides (lr: full's)
VARIANTS = {
    "full + galore": ["strategy=full", "training.optim=galore_adamw",
                      "training.optim_args=rank=64,update_proj_gap=10"],
    "full + apollo": ["strategy=full", "training.optim=apollo_adamw",
                      "training.optim_args=rank=64,update_proj_gap=10"],
    "full + badam": ["strategy=full", "strategy.badam_switch_every=5"],
}
for _label in VARIANTS:
    LR[_label] = (5e-5, "full's; " + ("projection rank 64, renewed every 10 steps" if "badam" not in _label
                                      else "the next block every 5 steps"))


def overrides(name: str) -> list[str]:
    """How `name` is picked on the demo recipe. lora and qlora keep its LoRA options (r 16, all
    linear layers); every other strategy gets its own defaults (PEFT's methods: PEFT's targets)."""
    if name in VARIANTS:
        return VARIANTS[name]
    return [f"strategy.name={name}" if name in ("lora", "qlora") else f"strategy={name}"]


def one(name: str, steps: int, out: Path, before: bool) -> dict:
    """Train, evaluate and merge one strategy in this process; its row."""
    from adapters_sft.errors import UserError
    from adapters_sft.export.merge import merge_run
    from adapters_sft.recipe import load_recipe
    from adapters_sft.trainer import train

    lr = LR.get(name, (2e-3, "LoRA's (no entry here)"))[0]
    recipe = load_recipe(RECIPE, [*overrides(name), f"training.max_steps={steps}", f"training.learning_rate={lr}",
                                  f"eval.before_training={str(before).lower()}", f"output_dir={out / 'run'}"])
    result = train(recipe, echo=lambda line: None)
    run = result.run_dir
    model = result.trainer.model
    final = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    scores = json.loads((run / "eval.json").read_text())
    folder = next(p for p in (run / "adapter", run / "weights") if p.is_dir())
    row = {"strategy": name, "lr": lr, "lr_source": LR.get(name, (0, ""))[1],
           "trained": sum(p.numel() for p in model.parameters() if p.requires_grad),
           "saved_bytes": sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()),
           "seconds_per_step": final["train_runtime"] / steps, "peak_gb": final["peak_memory_gb"],
           "after": scores["after"]["exact_match"],
           "before": scores.get("before", {}).get("exact_match")}
    del result, model
    try:
        merged = merge_run(run, out / "merged", echo=lambda line: None)
        row["drift"] = merged.drift.max_abs
    except UserError as exc:
        row["drift"] = None
        row["cannot_merge"] = str(exc).split(";")[0]
    return row


def size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


def table(rows: list[dict], base: float | None) -> str:
    lines = [f"Held-out exact match before training (the base model): {base:.1%}." if base is not None else "",
             "", "| strategy | lr (source) | trained numbers | saved | s/step | peak memory | exact match after "
                 "| merge drift, max abs(Δlogit) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        drift = f"{r['drift']:.2g}" if r.get("drift") is not None else "cannot merge"
        lines.append(f"| `{r['strategy']}` | {r['lr']:g} ({r['lr_source']}) | {r['trained']:,} | "
                     f"{size(r['saved_bytes'])} | {r['seconds_per_step']:.2f} | {r['peak_gb']:.2f} GB | "
                     f"{r['after']:.1%} | {drift} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--only", nargs="*", help="these strategies (default: every registered one)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the worker: one strategy, JSON on stdout
    parser.add_argument("--before", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/strategies.json"))
    parser.add_argument("--render", action="store_true", help="print the table of --out again, run nothing")
    args = parser.parse_args()
    if args.render:
        saved = json.loads(args.out.read_text())
        print(table(saved["rows"], saved["before"]))
        return 0
    if args.one:
        print("ROW " + json.dumps(one(args.one, args.steps, args.work, args.before)))
        return 0
    from adapters_sft.registry import strategy_names

    names = args.only or [n for n in LR if n in strategy_names() or n in VARIANTS] + \
        sorted(set(strategy_names()) - set(LR))
    rows = []
    for i, name in enumerate(names):
        with tempfile.TemporaryDirectory() as work:
            start = time.perf_counter()
            done = subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(args.steps),
                                   "--work", work, *(["--before"] if i == 0 else [])],
                                  capture_output=True, text=True)
            line = next((l for l in done.stdout.splitlines() if l.startswith("ROW ")), None)
            if done.returncode or line is None:
                print(f"{name}: failed (exit {done.returncode}): {done.stderr.strip()[-800:]}", file=sys.stderr)
                continue
            row = json.loads(line[4:])
            row["wall_seconds"] = time.perf_counter() - start
            rows.append(row)
            print(f"{name}: {row['after']:.1%} after, {row['seconds_per_step']:.2f} s/step, "
                  f"{row['wall_seconds']:.0f} s in all", flush=True)
    base = rows[0]["before"] if rows else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"recipe": RECIPE, "steps": args.steps, "before": base, "rows": rows},
                                   indent=1) + "\n")
    print(table(rows, base))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
