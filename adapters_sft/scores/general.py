"""The general probe: what fine-tuning cost the model outside its task (docs/forgetting.md).

The prompts are the bundled ones (datasets/general/prompts.jsonl: 125 written for this
project, on facts, arithmetic, following instructions, rewriting, short code and five
languages) or the user's (`eval.general: FILE`). The reference is the model as training
starts: the base model, or the `init_from` run a run continues (PEFT's virtual-token methods
start from random virtual tokens, so theirs is the model under them). It is taken once: its
greedy answers (at most ANSWER_TOKENS tokens) and, at each answer token, its TOP_K likeliest
tokens with their log-probabilities. After training, the tuned model reads the same answers
(teacher-forced) and answers each prompt greedily itself:

  kl             mean over answer tokens of KL(reference || tuned), in nats, over the
                 reference's TOP_K tokens with the rest of the vocabulary as one more bucket:
                 a lower bound on the full KL (merging outcomes never raises a KL), close to
                 it where those tokens hold nearly all the probability (`reference_mass`)
  nll_reference  the reference answers' negative log-likelihood, nats per token, under the
  nll_tuned      reference and under the tuned model
  unchanged      the share of prompts whose greedy answer is the same text
  prefix_agree   the share whose first PREFIX answer tokens are the same
  examples       three prompts with both answers, the most changed (by KL) first
"""
from __future__ import annotations

import dataclasses
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..errors import UserError

ANSWER_TOKENS = 32
TOP_K = 64
PREFIX = 16
EXAMPLES = 3
BUNDLED = "general/prompts.jsonl"


@dataclasses.dataclass
class Reference:
    prompts: list[str]
    answers: list[list[int]]  # token ids, the stop token included where it came
    texts: list[str]
    top_ids: Any  # [answer tokens, TOP_K] int32: the reference's likeliest tokens at each
    top_logprobs: Any  # [answer tokens, TOP_K] float32: and their log-probabilities
    key: str = ""  # what it is the reference of (cache_key)

    def nll(self) -> float:
        """Per token, under the reference: the answer token's log-probability is in its top-K
        (a greedy answer token is the likeliest one)."""
        import torch

        ids = torch.tensor([t for a in self.answers for t in a], dtype=torch.int32)
        hit = self.top_ids == ids[:, None]
        return float(-(self.top_logprobs * hit).sum() / max(len(ids), 1))


def load_prompts(spec: bool | str, key: str = "eval.general: ") -> list[str]:
    """The prompts `eval.general` names: true for the bundled ones, or a file, JSONL with a
    `prompt` string per row or plain text with one prompt per line."""
    import importlib.resources

    if spec is True:
        path = Path(str(importlib.resources.files("adapters_sft.datasets"))) / BUNDLED
    else:
        path = Path(str(spec)).expanduser()
        if not path.is_file():
            raise UserError(f"{key}file '{spec}' not found; give a JSONL file with a 'prompt' per "
                            "row or a text file with one prompt per line, or true for the bundled prompts")
    prompts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if path.suffix not in (".jsonl", ".json"):
            prompts.append(line.strip())
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UserError(f"{path}:{number}: not JSON ({exc.msg}); write one object per line "
                            'like {"prompt": "..."}') from None
        prompt = row.get("prompt") if isinstance(row, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError(f"{path}:{number}: needs a 'prompt' string, like "
                            '{"prompt": "What is the capital of France?"}')
        prompts.append(prompt)
    if not prompts:
        raise UserError(f"{key}{path} holds no prompts; write one per line")
    return prompts


def cache_key(recipe: Any, model: Any, tokenizer: Any, prompts: list[str]) -> str:
    """What a reference depends on: the starting weights (the model reference and the
    init_from run, with their files' sizes and times), how they are loaded, the chat
    template, the prompts and the probe's settings."""
    import hashlib

    quant = getattr(getattr(model, "config", None), "quantization_config", None)
    parts = {"model": recipe.model, "weights": weights_stamp(recipe.model), "init_from": recipe.init_from,
             "init_weights": weights_stamp(recipe.init_from), "dtype": str(getattr(model, "dtype", "")),
             "quantization": quant.to_dict() if hasattr(quant, "to_dict") else quant,
             "template": tokenizer.chat_template, "eos": tokenizer.eos_token, "prompts": prompts,
             "probe": [ANSWER_TOKENS, TOP_K]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def weights_stamp(folder: Any) -> list[Any]:
    """A local model folder's weight files with their sizes and times (nothing for an alias or
    hub id): what tells one checkpoint in a folder from the next one saved there."""
    path = Path(str(folder)) if folder else None
    if path is None or not path.is_dir():
        return []
    return sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in path.rglob("*.safetensors"))


@contextmanager
def starting_model(model: Any) -> Iterator[Any]:
    """The model as training starts it: itself, except under PEFT's virtual-token methods,
    whose random virtual tokens are not the model being adapted."""
    config = getattr(model, "active_peft_config", None)
    yield model.get_base_model() if getattr(config, "is_prompt_learning", False) else model


def take_reference(model: Any, tokenizer: Any, prompts: list[str], batch_size: int,
                   key: str = "") -> Reference:
    """The reference answers and, at each of their tokens, the model's top-K tokens."""
    import torch

    from .generative import generate_ids

    chats = as_prompts(tokenizer, prompts)
    answers = generate_ids(model, tokenizer, chats, ANSWER_TOKENS, batch_size)
    top_ids, top_logprobs = [], []
    for _, logprobs in teacher_forced(model, tokenizer, chats, answers, batch_size):
        values, ids = logprobs.topk(TOP_K, dim=-1)
        top_ids.append(ids.to(torch.int32))
        top_logprobs.append(values)
    texts = tokenizer.batch_decode(answers, skip_special_tokens=True)
    return Reference(prompts, answers, texts, torch.cat(top_ids), torch.cat(top_logprobs), key)


def compare(model: Any, tokenizer: Any, ref: Reference, batch_size: int) -> dict[str, Any]:
    """The tuned model against the reference: the figures of the module docstring."""
    import torch

    from .generative import generate_ids

    chats = as_prompts(tokenizer, ref.prompts)
    kl_rows, nll_tuned, mass, start = [], 0.0, 0.0, 0
    for i, logprobs in teacher_forced(model, tokenizer, chats, ref.answers, batch_size):
        n = len(ref.answers[i])
        top_ids = ref.top_ids[start:start + n].long()
        p_ref = ref.top_logprobs[start:start + n].exp()
        t_top = logprobs.gather(-1, top_ids)
        rest_ref = (1 - p_ref.sum(-1)).clamp_min(1e-12)
        rest_tuned = (1 - t_top.exp().sum(-1)).clamp_min(1e-12)
        kl = (p_ref * (p_ref.clamp_min(1e-30).log() - t_top)).sum(-1) + \
            rest_ref * (rest_ref.log() - rest_tuned.log())
        kl_rows.append(kl.clamp_min(0.0))
        answer = torch.tensor(ref.answers[i])
        nll_tuned -= float(logprobs.gather(-1, answer[:, None]).sum())
        mass += float(p_ref.sum())
        start += n
    tokens = max(start, 1)
    tuned = generate_ids(model, tokenizer, chats, ANSWER_TOKENS, batch_size)
    texts = tokenizer.batch_decode(tuned, skip_special_tokens=True)
    same = [a.strip() == b.strip() for a, b in zip(texts, ref.texts)]
    prefix = [a[:PREFIX] == b[:PREFIX] for a, b in zip(tuned, ref.answers)]
    per_answer = [float(k.mean()) if len(k) else 0.0 for k in kl_rows]
    order = sorted(range(len(ref.prompts)), key=lambda i: (same[i], -per_answer[i]))
    return {"prompts": len(ref.prompts), "tokens": start,
            "kl": float(sum(float(k.sum()) for k in kl_rows) / tokens),
            "nll_reference": ref.nll(), "nll_tuned": nll_tuned / tokens,
            "unchanged": sum(same) / len(same), "prefix_agree": sum(prefix) / len(prefix),
            "reference_mass": mass / tokens, "answer_tokens": ANSWER_TOKENS, "top_k": TOP_K,
            "examples": [{"prompt": ref.prompts[i], "before": ref.texts[i], "after": texts[i],
                          "kl": per_answer[i]} for i in order[:EXAMPLES]]}


def line(report: dict[str, Any]) -> str:
    """The run summary's line."""
    return (f"general ability: {report['unchanged']:.0%} of {report['prompts']} answers unchanged "
            f"({report['prefix_agree']:.0%} agree on their first {PREFIX} tokens), KL "
            f"{report['kl']:.3f} nats/token, answer NLL {report['nll_reference']:.3f} -> "
            f"{report['nll_tuned']:.3f}")


def as_prompts(tokenizer: Any, prompts: list[str]) -> list[Any]:
    """Single-turn conversations where the tokenizer has a chat template, else plain text."""
    if getattr(tokenizer, "chat_template", None):
        return [[{"role": "user", "content": p}] for p in prompts]
    return list(prompts)


def teacher_forced(model: Any, tokenizer: Any, prompts: list[Any], answers: list[list[int]],
                   batch_size: int) -> Iterator[tuple[int, Any]]:
    """(row, log-probabilities [answer tokens, vocabulary]) for each prompt + answer, float32,
    the prompts encoded as generate_ids() encodes them."""
    import torch

    from .generative import encode_prompts

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(prompts), batch_size):
            heads = encode_prompts(tokenizer, prompts[start:start + batch_size])
            rows = [h + answers[start + j] for j, h in enumerate(heads)]
            width = max(len(r) for r in rows)
            ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
            with torch.no_grad():  # the last `width` positions: virtual tokens come first
                logits = model(input_ids=ids, attention_mask=mask).logits[:, -width:]
            for j, head in enumerate(heads):
                n = len(answers[start + j])
                yield start + j, logits[j, len(head) - 1:len(head) - 1 + n].float().log_softmax(-1).cpu()
    finally:
        model.train(was_training)


def save(ref: Reference, path: Path) -> None:
    """The reference as safetensors (tensors, with prompts and answers in its metadata),
    written beside and renamed into place."""
    import os

    import torch
    from safetensors.torch import save_file

    tensors = {"top_ids": ref.top_ids.contiguous(), "top_logprobs": ref.top_logprobs.contiguous(),
               "answer_ids": torch.tensor([t for a in ref.answers for t in a], dtype=torch.int64),
               "answer_lengths": torch.tensor([len(a) for a in ref.answers], dtype=torch.int64)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"prompts": json.dumps(ref.prompts), "key": ref.key,
                                           "texts": json.dumps(ref.texts)})
    os.replace(tmp, path)


def load(path: Path) -> Reference | None:
    """A saved reference, or None where the file is missing or unreadable (then it is taken again)."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            t = {name: f.get_tensor(name) for name in f.keys()}
        flat, answers = t["answer_ids"].tolist(), []
        for n in t["answer_lengths"].tolist():
            answers.append(flat[:n])
            flat = flat[n:]
        return Reference(json.loads(meta["prompts"]), answers, json.loads(meta["texts"]),
                         t["top_ids"], t["top_logprobs"], meta.get("key", ""))
    except (OSError, KeyError, ValueError, SafetensorError):
        return None


def reference_for(recipe: Any, model: Any, tokenizer: Any, prompts: list[str], batch_size: int,
                  stored: Path | None = None) -> Reference:
    """The reference for `prompts`: the one `stored` (a run's) holds for them, else the cached
    one for this starting model, else taken now from `model` (and cached)."""
    from ..models import cache_dir

    ref = load(stored) if stored is not None else None
    if ref is not None and ref.prompts == prompts:
        return ref
    with starting_model(model) as start:
        key = cache_key(recipe, start, tokenizer, prompts)
        cached = cache_dir() / "general" / f"{key}.safetensors"
        ref = load(cached)
        if ref is None or ref.prompts != prompts:
            ref = take_reference(start, tokenizer, prompts, batch_size, key)
            try:
                save(ref, cached)
            except OSError:  # a read-only cache costs the next run this time again, nothing more
                pass
    return ref
