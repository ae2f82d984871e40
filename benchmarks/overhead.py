"""Does adapters-sft add overhead over a hand-written TRL script doing the same work?

Method. The same training run is done two ways, alternating A, B, A, B, ... for --reps
repetitions of --steps optimizer steps each, in one process (same torch threads):
  A  adapters-sft: the recipe `smollm2-135m/lora` with overrides that pin every setting, built
     by `adapters_sft.trainer.build_trainer` (the code path `train()` uses, with the same
     metrics.jsonl callback, whose on_log runs after on_step_end: its cost is in "train s",
     not in the step times) and trained with `trainer.train()`;
  B  plain TRL: from_pretrained + LoraConfig + SFTConfig + SFTTrainer, written out below.
Model (SmolLM2-135M-Instruct), data (builtin dates/train), LoRA (r=16, alpha=32, dropout 0.05,
all-linear) and SFTConfig settings are identical; the script checks that the two SFTConfigs
agree field by field (paths aside). A TrainerCallback records time.perf_counter() at
on_step_begin/on_step_end; a run's figure is its median step time without the first (warm-up)
step. Both sides must also see the same tokens and the same losses: the logged `num_tokens`
must be equal and the per-step losses agree within --rtol.
Prints a table and the ratio median(adapters-sft) / median(plain TRL); writes all figures to
--out as JSON. Setup (model load, tokenization) is reported but not in the ratio. The order
of the two sides alternates between repetitions.

With --trl-defaults a third side C runs the plain script at TRL's own default where ours
differs on CPU (gradient_checkpointing=True), to show what that default costs.

Run from the repository root:  python benchmarks/overhead.py --reps 4 --steps 10
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

SEED = 42
LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}
TRAINING = {"per_device_train_batch_size": 8, "learning_rate": 2e-3, "lr_scheduler_type": "cosine",
            "warmup_steps": 5, "logging_steps": 1, "gradient_checkpointing": False, "bf16": False,
            "report_to": "none", "save_strategy": "no", "save_total_limit": None,
            "dataloader_pin_memory": False, "disable_tqdm": False}
MAX_LENGTH = 256
PATH_FIELDS = {"output_dir", "logging_dir"}  # differ by design (two temp folders)
# adapters_sft runs TRL's own masking before the model loads (data/tokenize.py) and hands the
# trainer labels, so these two are off in its trainer config; the tokens and labels are the
# same, which the equal num_tokens and losses below prove.
MASK_FIELDS = {"assistant_only_loss", "completion_only_loss"}


def step_timer() -> Any:
    """A TrainerCallback with `.times`, the wall time of each optimizer step in seconds."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._start = 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._start = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.times.append(time.perf_counter() - self._start)

    return StepTimer()


def adapters_sft_trainer(steps: int, work: Path, timer: Any) -> Any:
    from adapters_sft.recipe import load_recipe
    from adapters_sft.rundir import MetricsWriter
    from adapters_sft.trainer import build_trainer

    # Values go in as JSON (valid YAML): a bare `no` would be read as YAML 1.1's boolean false.
    overrides = [f"strategy.{k}={v}" for k, v in LORA.items()] + [
        f"training.{k}={json.dumps(v)}" for k, v in TRAINING.items()] + [
        f"training.max_steps={steps}", f"data.max_length={MAX_LENGTH}", f"seed={SEED}",
        "model=smollm2-135m-instruct", "data.train=builtin:dates/train", "data.eval=null",
        "data.train_on_prompt=false", "data.packing=false", "dtype=float32", "eval.metric=none",
        "eval.before_training=false", f"output_dir={work}", "overwrite=true"]
    recipe = load_recipe("smollm2-135m/lora", overrides)
    # The metrics.jsonl writer is the callback train() adds; it is part of what we cost.
    metrics = MetricsWriter(work / "metrics.jsonl").as_callback()
    trainer, _strategy, _data = build_trainer(recipe, work, callbacks=[metrics, timer])
    return trainer


def plain_trl_trainer(steps: int, work: Path, timer: Any, **changes: Any) -> Any:
    """The hand-written TRL script: everything spelled out, no adapters_sft code but the template."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from adapters_sft.data.templates import training_template
    from adapters_sft.data.sources import resolve
    from adapters_sft.models import resolve_model

    path = resolve_model("smollm2-135m-instruct")  # local safetensors folder (converted once)
    data_file = resolve("builtin:dates/train", "data.train")[0]
    rows = [{"messages": json.loads(line)["messages"]} for line in open(data_file, encoding="utf-8")
            if line.strip()]
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    # The one thing borrowed from adapters_sft: SmolLM2's stock chat template has no
    # {% generation %} markers, which assistant_only_loss needs; using the same marked
    # template (it renders byte-identical to the stock one) means both runs see identical tokens.
    tok.chat_template = training_template(tok)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True)
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules=LORA["target_modules"], bias="none", task_type="CAUSAL_LM")
    args = SFTConfig(output_dir=str(work / "checkpoints"), max_steps=steps, seed=SEED,
                     max_length=MAX_LENGTH, assistant_only_loss=True,
                     completion_only_loss=False,  # adapters_sft sets it; no effect on messages data
                     **(TRAINING | changes))
    return SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                      processing_class=tok, peft_config=peft_config, callbacks=[timer])


def trl_defaults_trainer(steps: int, work: Path, timer: Any) -> Any:
    """The plain script left at TRL's own default where ours differs on CPU."""
    return plain_trl_trainer(steps, work, timer, gradient_checkpointing=True)


SIDES = {"adapters-sft": adapters_sft_trainer, "plain-trl": plain_trl_trainer,
         "trl-defaults": trl_defaults_trainer}


def run_once(side: str, steps: int) -> dict[str, Any]:
    build = SIDES[side]
    gc.collect()  # the previous run's trainer must not linger into this one's timing
    timer = step_timer()
    with tempfile.TemporaryDirectory(prefix=f"overhead-{side}-") as tmp:
        t0 = time.perf_counter()
        trainer = build(steps, Path(tmp), timer)
        t1 = time.perf_counter()
        trainer.train()
        t2 = time.perf_counter()
    logs = [e for e in trainer.state.log_history if "loss" in e]
    config = {k: v for k, v in trainer.args.to_dict().items() if k not in PATH_FIELDS | MASK_FIELDS}
    return {"side": side, "setup_s": t1 - t0, "train_s": t2 - t1, "step_s": timer.times,
            "median_step_s": statistics.median(timer.times[1:] or timer.times),
            "loss": [e["loss"] for e in logs], "num_tokens": [e.get("num_tokens") for e in logs],
            "config": config}


def compare(a: dict[str, Any], b: dict[str, Any], rtol: float) -> dict[str, Any]:
    """Same settings, same tokens, same losses; raises AssertionError otherwise."""
    diff = {k: (a["config"].get(k), b["config"].get(k)) for k in a["config"].keys() | b["config"].keys()
            if a["config"].get(k) != b["config"].get(k)}
    assert not diff, f"SFTConfigs differ: {diff}"
    assert a["num_tokens"] == b["num_tokens"], f"num_tokens differ: {a['num_tokens']} vs {b['num_tokens']}"
    assert len(a["loss"]) == len(b["loss"]) > 0, "logged loss counts differ or are empty"
    rel = [abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a["loss"], b["loss"])]
    abs_diff = [abs(x - y) for x, y in zip(a["loss"], b["loss"])]
    print(f"  same SFTConfig; num_tokens equal ({a['num_tokens'][-1]}); "
          f"max loss diff {max(abs_diff):.3g} (relative {max(rel):.3g})")
    assert max(rel) <= rtol, f"losses differ by {max(rel):.3g} relative (> {rtol})"
    return {"max_abs_loss_diff": max(abs_diff), "max_rel_loss_diff": max(rel)}


def main(reps: int, steps: int, out: Path, rtol: float, trl_defaults: bool = False) -> dict[str, Any]:
    import torch

    runs: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    for rep in range(reps):
        pair = {}
        # Alternate which side goes first, so warm caches favour neither.
        order = ("adapters-sft", "plain-trl") if rep % 2 == 0 else ("plain-trl", "adapters-sft")
        order += ("trl-defaults",) if trl_defaults else ()
        for side in order:
            print(f"rep {rep + 1}/{reps}: {side}, {steps} steps ...", flush=True)
            pair[side] = run_once(side, steps) | {"rep": rep}
        checks.append(compare(pair["adapters-sft"], pair["plain-trl"], rtol))
        if trl_defaults:  # different settings by design; the same tokens and losses all the same
            b, d = pair["plain-trl"], pair["trl-defaults"]
            compare(b, d | {"config": b["config"]}, rtol)
        runs += [pair[side] for side in order]
    med = {s: statistics.median(r["median_step_s"] for r in runs if r["side"] == s)
           for s in SIDES if any(r["side"] == s for r in runs)}
    ratio = med["adapters-sft"] / med["plain-trl"]
    pair_ratios = [a["median_step_s"] / b["median_step_s"] for a, b in zip(
        [r for r in runs if r["side"] == "adapters-sft"], [r for r in runs if r["side"] == "plain-trl"])]
    print(f"\n{'rep':>3}  {'side':<13} {'median step s':>13} {'train s':>8} {'setup s':>8}  final loss")
    for r in runs:
        print(f"{r['rep'] + 1:>3}  {r['side']:<13} {r['median_step_s']:>13.3f} {r['train_s']:>8.1f} "
              f"{r['setup_s']:>8.1f}  {r['loss'][-1]:.4f}")
    print(f"\nmedian step time  adapters-sft {med['adapters-sft']:.3f} s  plain TRL {med['plain-trl']:.3f} s"
          f"\nratio adapters-sft / plain TRL = {ratio:.3f}  (torch threads: {torch.get_num_threads()})")
    print("per-repetition ratios: " + ", ".join(f"{x:.3f}" for x in pair_ratios)
          + f"  (geometric mean {statistics.geometric_mean(pair_ratios):.3f})")
    if trl_defaults:
        print(f"ratio adapters-sft / plain TRL with gradient_checkpointing=True (TRL's default) = "
              f"{med['adapters-sft'] / med['trl-defaults']:.3f}")
    result = {"reps": reps, "steps": steps, "torch_threads": torch.get_num_threads(),
              "median_step_s": med, "ratio": ratio, "pair_ratios": pair_ratios, "checks": checks,
              "runs": [{k: v for k, v in r.items() if k != "config"} for r in runs],
              "sft_config": runs[0]["config"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=4,
                        help="A/B repetitions, even so both orders count alike (default 4)")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per run (default 10)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/overhead.json"))
    parser.add_argument("--rtol", type=float, default=1e-3, help="allowed relative loss difference")
    parser.add_argument("--trl-defaults", action="store_true",
                        help="also time plain TRL at its own gradient_checkpointing default (True)")
    ns = parser.parse_args()
    main(ns.reps, ns.steps, ns.out, ns.rtol, ns.trl_defaults)
