"""Held-out scoring: exact match of greedy answers against the reference answer.

For each held-out conversation the last assistant turn is the reference; the model sees the
turns before it (rendered with the run's chat template) and answers greedily. A row counts
when the stripped answer equals the stripped reference, character for character.
"""
from __future__ import annotations

from typing import Any


def split_prompt_answer(row: dict[str, Any]) -> tuple[Any, str]:
    if "messages" in row:
        msgs = row["messages"]
        last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
        return msgs[:last], msgs[last]["content"]
    if isinstance(row["completion"], list):  # conversational prompt-completion
        return row["prompt"], row["completion"][-1]["content"]
    return row["prompt"], row["completion"]


def generate(model: Any, tokenizer: Any, prompts: list[Any], max_new_tokens: int,
             batch_size: int, **sampling: Any) -> list[str]:
    """Answers for chat (list of messages) or plain-text prompts, batched; greedy unless
    `sampling` holds generate() knobs such as do_sample=True, temperature, top_p, top_k."""
    import torch

    old_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    answers: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = prompts[start:start + batch_size]
            if isinstance(batch[0], list):  # conversations: the template adds any BOS itself
                texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                         for p in batch]
            else:  # plain prompts are tokenized as TRL tokenized them in training, BOS included
                texts = batch
            enc = tokenizer(texts, return_tensors="pt", padding=True,
                            add_special_tokens=not isinstance(batch[0], list))
            enc = {k: v.to(next(model.parameters()).device) for k, v in enc.items()}
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max_new_tokens,
                                     pad_token_id=tokenizer.pad_token_id,
                                     eos_token_id=stop_ids(model, tokenizer),
                                     **({"do_sample": False} | sampling))
            answers += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = old_side
        model.train(was_training)
    return answers


def stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """The tokenizer's EOS first: a named template may have made its end-of-turn the EOS, and a
    base model reloaded from the hub still carries its old generation config."""
    config = getattr(model, "generation_config", None)
    theirs = getattr(config, "eos_token_id", None)
    theirs = [theirs] if isinstance(theirs, int) else list(theirs or [])
    return [tokenizer.eos_token_id, *(t for t in theirs if t != tokenizer.eos_token_id)]


def exact_match(model: Any, tokenizer: Any, rows: list[dict[str, Any]], max_new_tokens: int,
                batch_size: int) -> dict[str, Any]:
    prompts, refs = zip(*(split_prompt_answer(r) for r in rows))
    answers = generate(model, tokenizer, list(prompts), max_new_tokens, batch_size)
    hits = [a.strip() == r.strip() for a, r in zip(answers, refs)]
    return {"exact_match": sum(hits) / len(hits), "correct": sum(hits), "total": len(hits),
            "examples": [{"reference": r, "answer": a} for a, r in list(zip(answers, refs))[:5]]}
