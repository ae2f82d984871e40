"""Tokens/s of adapters-sft's default batching against plain TRL scripts, on variable-length data.

Data: instruction rows the script writes itself, with answers whose lengths spread like real
instruction data (log-normal, clipped to 20-600 tokens): "count from A by B, N numbers", so
the answer is learnable and its length is N. Every side trains SmolLM2-135M-Instruct with the
same LoRA (r=16, alpha=32, all-linear), batch size, learning rate and max_length, for one epoch
over the same training rows, in one process, one after another:

  adapters-sft   the smollm2-135m/lora recipe with the data swapped in, at our defaults
                 (data.packing=auto; gradient checkpointing off on CPU)
  trl-defaults   SFTTrainer as its docs show it, at TRL's defaults (padded batches in random
                 order, gradient_checkpointing=True)
  trl-no-gc      the same, with gradient checkpointing off like ours: what batching alone buys
  trl-packed     hand-tuned: packing=True (best-fit decreasing, padding-free), checkpointing off,
                 2 packed rows a step (8, like the others, needs more than this machine's 24 GB)

Tokens/s counts real tokens (no padding): the epoch's tokens after truncation, the same for
every side, over the wall time of `trainer.train()`. After training, each model's held-out
loss is computed by one function (adapters_sft.scores.generative.lm_loss, on the same tokenized
held-out rows), so speed is not bought with quality. Writes JSON to --out.

Run from the repository root:  python benchmarks/batching.py            # about 20 minutes on 2 cores
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import random
import tempfile
import time
from pathlib import Path
from typing import Any

SEED = 42
LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}
BATCH, LR, MAX_LENGTH = 8, 1e-3, 1024


def write_data(folder: Path, train: int, held: int) -> tuple[Path, Path]:
    """Counting rows with answers of 20 to 600 tokens, spread log-normally (median about 90)."""
    rng = random.Random(SEED)

    def row() -> dict[str, Any]:
        count = max(4, min(150, int(rng.lognormvariate(math.log(22), 0.9))))  # about 4 tokens a number
        start, step = rng.randint(1, 500), rng.randint(1, 9)
        answer = " ".join(str(start + step * i) for i in range(count))
        return {"messages": [{"role": "user", "content": f"Count from {start} by {step}, {count} numbers."},
                             {"role": "assistant", "content": answer}]}

    paths = []
    for name, n in (("train", train), ("eval", held)):
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(row()) + "\n" for _ in range(n)))
        paths.append(path)
    return paths[0], paths[1]


def ours(train: Path, held: Path, work: Path) -> Any:
    from adapters_sft.recipe import load_recipe
    from adapters_sft.trainer import build_trainer

    overrides = [f"strategy.{k}={v}" for k, v in LORA.items()] + [
        f"data.train={train}", f"data.eval={held}", f"data.max_length={MAX_LENGTH}", f"seed={SEED}",
        f"training.per_device_train_batch_size={BATCH}", f"training.learning_rate={LR}",
        "training.max_steps=-1", "training.num_train_epochs=1", "training.warmup_steps=0",
        "training.lr_scheduler_type=constant", "training.logging_steps=1",
        "eval.metric=none", f"output_dir={work}", "overwrite=true"]
    return build_trainer(load_recipe("smollm2-135m/lora", overrides), work)[0]


def plain(train: Path, work: Path, **changes: Any) -> Any:
    """SFTTrainer as TRL's docs show it: model, LoraConfig, SFTConfig, the rows as they are."""
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from adapters_sft.data.templates import training_template
    from adapters_sft.models import resolve_model

    path = resolve_model("smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(path)
    tok.chat_template = training_template(tok)  # generation markers for assistant_only_loss (FACTS)
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32")
    changes = {"per_device_train_batch_size": BATCH, **changes}
    args = SFTConfig(output_dir=str(work), learning_rate=LR,
                     num_train_epochs=1, lr_scheduler_type="constant", logging_steps=1, seed=SEED,
                     max_length=MAX_LENGTH, assistant_only_loss=True, bf16=False, report_to="none",
                     save_strategy="no", **changes)
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    return SFTTrainer(model=model, args=args, train_dataset=load_dataset("json", data_files=str(train))["train"],
                      processing_class=tok, peft_config=peft_config)


SIDES = {
    "adapters-sft": None,
    "trl-defaults": {},
    "trl-no-gc": {"gradient_checkpointing": False},
    # packed rows of max_length, flattened per batch into one attention row; 8 of them (8,192
    # tokens under SDPA's dense mask) ran out of this machine's 24 GB: the kernel killed it
    "trl-packed": {"gradient_checkpointing": False, "packing": True, "per_device_train_batch_size": 2},
}


def run(side: str, train: Path, held: Path, held_rows: Any) -> dict[str, Any]:
    from adapters_sft.scores.generative import lm_loss

    gc.collect()
    with tempfile.TemporaryDirectory(prefix=f"batching-{side}-") as tmp:
        if SIDES[side] is None:
            trainer = ours(train, held, Path(tmp))
        else:
            trainer = plain(train, Path(tmp), **SIDES[side])
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
    args = trainer.args
    loss = lm_loss(trainer.model, held_rows, trainer.processing_class.pad_token_id)["loss"]
    return {"side": side, "train_s": seconds, "steps": trainer.state.global_step, "held_out_loss": loss,
            "gradient_checkpointing": args.gradient_checkpointing, "packing": args.packing,
            "train_sampling_strategy": getattr(args, "train_sampling_strategy", None)}


def main(train_rows: int, held_rows: int, out: Path, sides: list[str]) -> dict[str, Any]:
    import torch

    from adapters_sft.preflight import preflight
    from adapters_sft.recipe import load_recipe

    with tempfile.TemporaryDirectory(prefix="batching-data-") as tmp:
        train, held = write_data(Path(tmp), train_rows, held_rows)
        recipe = load_recipe("smollm2-135m/lora", [f"data.train={train}", f"data.eval={held}",
                                                   f"data.max_length={MAX_LENGTH}", f"seed={SEED}",
                                                   f"training.per_device_train_batch_size={BATCH}"])
        prepared = preflight(recipe, echo=lambda line: None).prepared
        tokens = sum(min(len(ids), MAX_LENGTH) for ids in prepared.train["input_ids"])
        batching = next(n for n in prepared.report.notes if n.startswith("batching:"))
        print(f"{train_rows} training rows, {tokens} tokens after truncation; {batching}", flush=True)
        # one untimed run first: the first training in a process pays for warming caches up
        warm = Path(tmp) / "warm"
        warm.mkdir()
        run("trl-no-gc", write_data(warm, BATCH, 1)[0], held, prepared.eval)
        runs = []
        for side in sides:
            print(f"{side} ...", flush=True)
            runs.append(run(side, train, held, prepared.eval) | {"tokens": tokens})
            runs[-1]["tokens_per_s"] = tokens / runs[-1]["train_s"]
            print(f"  {runs[-1]['train_s']:.1f} s, {runs[-1]['tokens_per_s']:.1f} tokens/s, "
                  f"held-out loss {runs[-1]['held_out_loss']:.4f}", flush=True)
            save(out, {"tokens": tokens, "batching": batching, "runs": runs})  # kept if a later side dies
    by = {r["side"]: r for r in runs}
    print(f"\n{'side':<14}{'steps':>6}{'train s':>9}{'tokens/s':>10}{'held-out loss':>15}")
    for r in runs:
        print(f"{r['side']:<14}{r['steps']:>6}{r['train_s']:>9.1f}{r['tokens_per_s']:>10.1f}"
              f"{r['held_out_loss']:>15.4f}")
    ratios = {f"adapters-sft / {s}": by["adapters-sft"]["tokens_per_s"] / by[s]["tokens_per_s"]
              for s in by if s != "adapters-sft" and "adapters-sft" in by}
    for name, value in ratios.items():
        print(f"tokens/s {name} = {value:.2f}")
    result = {"train_rows": train_rows, "held_rows": held_rows, "tokens": tokens, "batching": batching,
              "batch": BATCH, "max_length": MAX_LENGTH, "torch_threads": torch.get_num_threads(),
              "runs": runs, "ratios": ratios}
    save(out, result)
    print(f"wrote {out}")
    return result


def save(out: Path, result: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", type=int, default=128)
    parser.add_argument("--held-rows", type=int, default=32)
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=list(SIDES))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/batching.json"))
    ns = parser.parse_args()
    main(ns.train_rows, ns.held_rows, ns.out, ns.sides)
