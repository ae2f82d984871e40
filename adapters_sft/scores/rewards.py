"""Held-out scoring of a grpo run: the model's greedy answer to each held-out prompt, scored
by each of the recipe's rewards. Greedy, not sampled, so a before/after compares two fixed
answers per prompt; where a reward is `exact_match`, its mean is the exact-match share."""
from __future__ import annotations

from typing import Any

EXAMPLES = 3


def score(model: Any, tokenizer: Any, rows: list[dict[str, Any]], entries: list[Any], max_new_tokens: int,
          batch_size: int, state: Any = None) -> dict[str, Any]:
    """{reward: weighted mean, rewards: {label: mean}, exact_match, correct, total, examples};
    `state` (the Trainer's, while training) is what rewards get as `trainer_state`."""
    from .generative import generate

    prompts = [r["prompt"] for r in rows]
    answers = generate(model, tokenizer, prompts, max_new_tokens, batch_size)
    return rewarded(rows, answers, entries, tokenizer, state)


def rewarded(rows: list[dict[str, Any]], answers: list[str], entries: list[Any], tokenizer: Any,
             state: Any = None) -> dict[str, Any]:
    """The report for `answers` (one per row) under each reward."""
    prompts = [r["prompt"] for r in rows]
    chat = bool(prompts) and isinstance(prompts[0], list)
    completions = [[{"role": "assistant", "content": a}] for a in answers] if chat else answers
    ids = [tokenizer(a, add_special_tokens=False)["input_ids"] for a in answers]
    columns = {k: [r.get(k) for r in rows] for k in rows[0] if k != "prompt"} if rows else {}
    means: dict[str, float] = {}
    per_row: dict[str, list[float | None]] = {}
    for entry in entries:
        values = entry.scorer(prompts=prompts, completions=completions, completion_ids=ids, trainer_state=state,
                              log_extra=lambda *a, **k: None, log_metric=lambda *a, **k: None, **columns)
        per_row[entry.scorer.label] = values
        scored = [v for v in values if v is not None]
        means[entry.scorer.label] = sum(scored) / len(scored) if scored else float("nan")
    total = sum(e.scorer.weight * means[e.scorer.label] for e in entries)
    report: dict[str, Any] = {"reward": total, "rewards": means, "total": len(rows)}
    exact = next((e.scorer.label for e in entries if e.scorer.exact), None)
    if exact is not None:
        correct = sum(1 for v in per_row[exact] if v == 1.0)
        report.update(exact_match=correct / len(rows) if rows else 0.0, correct=correct)
    report["examples"] = [{"prompt": _last_user(p), "answer": a, **{k: v[i] for k, v in per_row.items()}}
                          for i, (p, a) in enumerate(zip(prompts[:EXAMPLES], answers))]
    return report


def _last_user(prompt: Any) -> str:
    if isinstance(prompt, list):
        return next((m["content"] for m in reversed(prompt) if m["role"] == "user"), "")
    return str(prompt)


def line(report: dict[str, Any]) -> str:
    """'reward 0.733 (exact_match 0.133, regex 0.600); exact match 8/60 = 13.3%'."""
    parts = ", ".join(f"{k} {v:.3f}" for k, v in report["rewards"].items())
    out = f"reward {report['reward']:.3f} ({parts})"
    if "exact_match" in report:
        out += f"; exact match {report['correct']}/{report['total']} = {report['exact_match']:.1%}"
    return out
