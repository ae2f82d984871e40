"""Held-out scoring of generative models: greedy answers against the reference answer, and
the teacher-forced loss (and perplexity) on the target tokens.

For each held-out conversation the last assistant turn is the reference; the model sees the
turns before it (rendered with the run's chat template) and answers greedily. Exact match
counts a row when the stripped answer equals the stripped reference, character for
character; a user metric (`package.module:function`, called as f(answer, reference) -> float)
is averaged instead.
"""
from __future__ import annotations

from typing import Any, Callable

from ..errors import UserError


def split_prompt_answer(row: dict[str, Any]) -> tuple[Any, str]:
    if "messages" in row:
        msgs = row["messages"]
        last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
        return msgs[:last], msgs[last]["content"]
    if "completion" not in row and "chosen" not in row:  # a grpo prompt: its answer column, if any
        return row["prompt"], str(row.get("answer", ""))
    answer = row["completion"] if "completion" in row else row["chosen"]  # a preference pair: the chosen
    if isinstance(answer, list):  # conversational prompt-completion (or pair)
        return row["prompt"], answer[-1]["content"]
    return row["prompt"], answer


def generate(model: Any, tokenizer: Any, prompts: list[Any], max_new_tokens: int,
             batch_size: int, **sampling: Any) -> list[str]:
    """Answers for chat (list of messages) or plain-text prompts, batched; greedy unless
    `sampling` holds generate() knobs such as do_sample=True, temperature, top_p, top_k."""
    answers = generate_ids(model, tokenizer, prompts, max_new_tokens, batch_size, **sampling)
    return tokenizer.batch_decode(answers, skip_special_tokens=True)


def encode_prompts(tokenizer: Any, prompts: list[Any]) -> list[list[int]]:
    """Token ids of chat (list of messages) or plain-text prompts, as generation reads them."""
    if isinstance(prompts[0], list):  # conversations: the template adds any BOS itself
        texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                 for p in prompts]
        return tokenizer(texts, add_special_tokens=False)["input_ids"]
    # plain prompts are tokenized as TRL tokenized them in training, BOS included
    return tokenizer(list(prompts), add_special_tokens=True)["input_ids"]


def generate_ids(model: Any, tokenizer: Any, prompts: list[Any], max_new_tokens: int,
                 batch_size: int, **sampling: Any) -> list[list[int]]:
    """generate()'s answers as token ids, each cut after its first stop token."""
    import torch

    old_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    stops = stop_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    device = next(model.parameters()).device
    answers: list[list[int]] = []
    try:
        for start in range(0, len(prompts), batch_size):
            ids = encode_prompts(tokenizer, prompts[start:start + batch_size])
            width = max(len(x) for x in ids)
            enc = {"input_ids": torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=device),
                   "attention_mask": torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids],
                                                  device=device)}
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=pad,
                                     eos_token_id=stops, use_cache=cache_agrees(model),
                                     **({"do_sample": False} | sampling))
            for row in out[:, width:].tolist():
                cut = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
                answers.append(row[:cut])
    finally:
        tokenizer.padding_side = old_side
        model.train(was_training)
    return answers


def cache_agrees(model: Any) -> bool:
    """Whether generating with the key-value cache gives the model's own predictions. Not for
    PEFT's virtual-token methods (prompt tuning, P-tuning): with PEFT 0.21.2 and transformers
    5.24 the cached steps lose the virtual tokens' place (measured on SmolLM2: greedy answers
    differed from the model's next-token predictions, and agreed without the cache). Without
    it each new token re-reads the whole sequence: slower, and what the model was trained as."""
    config = getattr(model, "active_peft_config", None)
    return not getattr(config, "is_prompt_learning", False)


def stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """The tokenizer's EOS first: a named template may have made its end-of-turn the EOS, and a
    base model reloaded from the hub still carries its old generation config."""
    config = getattr(model, "generation_config", None)
    theirs = getattr(config, "eos_token_id", None)
    theirs = [theirs] if isinstance(theirs, int) else list(theirs or [])
    return [tokenizer.eos_token_id, *(t for t in theirs if t != tokenizer.eos_token_id)]


def exact_match(model: Any, tokenizer: Any, rows: list[dict[str, Any]], max_new_tokens: int,
                batch_size: int, metric: str = "exact_match") -> dict[str, Any]:
    """Greedy answers scored by exact match, or by a user metric ("module:function")."""
    prompts, refs = zip(*(split_prompt_answer(r) for r in rows))
    answers = generate(model, tokenizer, list(prompts), max_new_tokens, batch_size)
    examples = [{"reference": r, "answer": a} for a, r in list(zip(answers, refs))[:5]]
    if metric != "exact_match":
        fn = user_metric(metric)
        values = [float(fn(a, r)) for a, r in zip(answers, refs)]
        return {"metric": metric, "score": sum(values) / len(values), "total": len(values),
                "examples": examples}
    hits = [a.strip() == r.strip() for a, r in zip(answers, refs)]
    return {"exact_match": sum(hits) / len(hits), "correct": sum(hits), "total": len(hits),
            "examples": examples}


def user_metric(spec: str) -> Callable[[str, str], float]:
    """The function `module:function` names; a bad name is a one-line UserError."""
    import importlib

    module, _, name = spec.partition(":")
    if not module or not name:
        raise UserError(f"--metric: '{spec}' is not exact_match or package.module:function")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"--metric: cannot load '{spec}' ({exc}); check the module is importable "
                        "from here and defines the function") from None
    if not callable(fn):
        raise UserError(f"--metric: '{spec}' is not a function")
    return fn


def lm_loss(model: Any, dataset: Any, pad_id: int, batch_size: int = 8) -> dict[str, Any]:
    """Mean cross-entropy over target tokens (labels != -100), teacher-forced, and its
    perplexity: the same targets and masks as training."""
    import math

    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                batch = dataset[start:start + batch_size]
                width = max(len(ids) for ids in batch["input_ids"])
                ids = torch.tensor([x + [pad_id] * (width - len(x)) for x in batch["input_ids"]], device=device)
                labels = torch.tensor([x + [-100] * (width - len(x)) for x in batch["labels"]], device=device)
                mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in batch["input_ids"]],
                                    device=device)
                # the last `width` positions: virtual-token methods (prompt tuning) put theirs first
                logits = model(input_ids=ids, attention_mask=mask).logits[:, -width:-1].float()
                target = labels[:, 1:]
                total += torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100,
                    reduction="sum").item()
                count += int((target != -100).sum())
    finally:
        model.train(was_training)
    loss = total / count if count else float("nan")
    return {"loss": loss, "perplexity": math.exp(loss) if count else float("nan"), "tokens": count}
