"""The drift check: does a merged or exported model compute what the run computed?

A few held-out conversations (the run's eval data, else built-in prompts) are rendered with the
run's chat template and run through both models, teacher-forced. We compare the logits at every
position: max and mean absolute difference, and greedy-token agreement (how often both models
would pick the same next token). A merge that drifts beyond the tolerance for its dtype fails.

Tolerances (measured on SmolLM2-135M; figures in docs/export.md). float32 is exact up to
summation order (measured: mean 1e-5), so its bound is tight. float16 and bfloat16 round every
weight, which moves the logits by an amount that depends on the model (measured: mean 0.02 and
0.19, agreement 99.8% and 97.1%); their bounds sit above that and far below what a wrong merge
does (a QLoRA adapter merged into the original base: mean 2.5, agreement 71%).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

# dtype -> (max mean |delta logit|, min greedy agreement)
TOLERANCE: dict[str, tuple[float, float]] = {
    "float32": (1e-3, 0.99),
    "float16": (0.1, 0.95),
    "bfloat16": (0.5, 0.90),
}

BUILTIN_PROMPTS = (
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "Convert 2004-03-03 to words.",
    "List three colours.",
)


@dataclasses.dataclass
class Drift:
    max_abs: float
    mean_abs: float
    agreement: float
    positions: int

    def line(self, label: str) -> str:
        return (f"{label}: max |Δlogit| {self.max_abs:.3g}, mean {self.mean_abs:.3g}, "
                f"greedy agreement {self.agreement:.1%} over {self.positions} positions")

    def within(self, dtype: str) -> bool:
        mean, agree = TOLERANCE[dtype]
        return self.mean_abs <= mean and self.agreement >= agree


def probe_rows(recipe: Any, limit: int = 8, run: Path | None = None) -> tuple[list[dict[str, Any]], str]:
    """Rows to compare on (the run's held-out rows, else built-in prompts) and where from."""
    from ..rundir import read_heldout

    saved = read_heldout(run) if run is not None else None
    if saved is not None and saved[1] != "classification" and saved[0].rows:
        rows = saved[0].rows[:limit]
        return rows, f"{len(rows)} held-out rows"
    rows: list[dict[str, Any]] = []
    try:
        from ..data import load_splits

        splits = load_splits(recipe)
        if splits.eval and splits.kind != "classification":
            rows = splits.eval.rows[:limit]
    except Exception:  # noqa: BLE001 - data moved or deleted since training: built-ins will do
        rows = []
    if rows:
        return rows, f"{len(rows)} held-out rows"
    return [{"prompt": p, "completion": " "} for p in BUILTIN_PROMPTS], "built-in prompts"


def full_text(row: dict[str, Any], tokenizer: Any) -> str:
    """The whole row as training rendered it (template included), for teacher-forced logits."""
    if "text" in row:
        return row["text"]
    prompt, answer = _conversation(row, tokenizer)
    if isinstance(prompt, str):
        return prompt + answer
    return tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": answer}],
                                         tokenize=False)


def generation_prompt(row: dict[str, Any], tokenizer: Any) -> Any:
    """The row up to where the model answers (messages, or plain text), for `evaluate.generate`."""
    if "text" in row:
        return row["text"][: len(row["text"]) // 2]
    return _conversation(row, tokenizer)[0]


def _conversation(row: dict[str, Any], tokenizer: Any) -> tuple[Any, str]:
    from ..scores.generative import split_prompt_answer

    prompt, answer = split_prompt_answer(row)
    if isinstance(prompt, str) and tokenizer.chat_template:
        prompt = [{"role": "user", "content": prompt}]
    return prompt, answer


def encode(tokenizer: Any, texts: list[str], max_tokens: int = 256) -> list[Any]:
    """One id tensor per text. Templates write their own BOS, so special tokens are added only
    to plain text, as in training."""
    special = not tokenizer.chat_template
    return [tokenizer(t, return_tensors="pt", add_special_tokens=special)["input_ids"][:, :max_tokens]
            for t in texts]


def logits(model: Any, seqs: list[Any]) -> list[Any]:
    """Float32 CPU logits for each sequence, one at a time (no padding to get wrong)."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for ids in seqs:
            out.append(model(input_ids=ids.to(device)).logits[0].float().cpu())
    return out


def compare(reference: list[Any], other: list[Any]) -> Drift:
    import torch

    diffs = [(a - b).abs() for a, b in zip(reference, other)]
    agree = sum(int((a.argmax(-1) == b.argmax(-1)).sum()) for a, b in zip(reference, other))
    positions = sum(a.shape[0] for a in reference)
    return Drift(max_abs=max(float(d.max()) for d in diffs),
                 mean_abs=float(torch.cat([d.flatten() for d in diffs]).mean()),
                 agreement=agree / positions, positions=positions)
