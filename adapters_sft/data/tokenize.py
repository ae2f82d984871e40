"""Rows -> token ids and labels, with TRL's own preparation, before any model loads.

We run TRL's `SFTTrainer._prepare_dataset` (its chat templating, EOS appending, assistant and
completion masks) on the normalised rows, so `check` shows exactly what training will see,
and hand the result to SFTTrainer, which then only truncates (and packs, if asked). The one
private call is kept here; tests/data/test_tokenize.py compares it with what SFTTrainer
builds from raw rows, so a TRL change that broke the equivalence would fail there.
"""
from __future__ import annotations

import dataclasses
import types
from typing import TYPE_CHECKING, Any

from . import batching, check, templates
from .formats import PREFERENCE_KINDS
from .load import Split, Splits

if TYPE_CHECKING:
    from ..recipe import Recipe

# Tried in order when pad == EOS: a pad that is also the EOS is harmless for TRL's collator
# (it pads labels with -100 by length), but not for every tool a trained model meets later.
_PAD_CANDIDATES = ("<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>", "<|endoftext|>")


@dataclasses.dataclass
class Prepared:
    tokenizer: Any
    train: Any              # datasets.Dataset with input_ids and labels, untruncated
    eval: Any | None
    report: check.Report
    chat: bool = False      # rows went through the chat template
    labels: list[Any] | None = None  # classification: the label set; its order gives the ids
    batching: dict[str, Any] = dataclasses.field(default_factory=dict)  # Trainer config values
    eval_rows: list[dict[str, Any]] | None = None  # held-out rows as the model sees them, to score


def conversational(kind: str, rows: list[dict[str, Any]], tokenizer: Any, template: str) -> bool:
    """Whether rows go through a chat template. Plain prompt-completion rows (and plain
    preference rows) do whenever there is one, so training sees the same format as chat and
    generate at inference."""
    prompted = ("prompt-completion", "prompt", *PREFERENCE_KINDS)
    if kind in prompted and isinstance(rows[0]["prompt"], str):
        return template != "none" and (template != "auto" or bool(tokenizer.chat_template))
    return kind in ("messages", *prompted)


def as_chat(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plain prompt-completion rows (or preference rows) as one-turn conversations: the prompt
    a user turn, the completion (or each of chosen and rejected) an assistant turn, TRL's
    conversational form; other fields (an unpaired row's label) stay as they are."""
    if not rows or not isinstance(rows[0].get("prompt"), str):
        return rows
    answers = [k for k in ("completion", "chosen", "rejected") if k in rows[0]]
    return [{**r, "prompt": [{"role": "user", "content": r["prompt"]}],
             **{k: [{"role": "assistant", "content": r[k]}] for k in answers}} for r in rows]


def distinct_pad(tokenizer: Any) -> str:
    """Give the tokenizer a pad token that is not its EOS, where the vocabulary has one."""
    pad, eos = tokenizer.pad_token, tokenizer.eos_token
    if pad is not None and pad != eos:
        return f"{pad!r}"
    vocab = tokenizer.get_vocab()
    for candidate in (*_PAD_CANDIDATES, tokenizer.unk_token):
        if candidate and candidate in vocab and candidate not in (eos, tokenizer.bos_token):
            tokenizer.pad_token = candidate
            return f"{candidate!r} (was {pad!r}, the EOS; a distinct pad keeps EOS from being taken for padding)"
    tokenizer.pad_token = eos
    return (f"{eos!r} = EOS (the vocabulary has no other candidate; padding is masked by length, "
            "and the EOS check below confirms targets keep their EOS)")


def tokenize(rows: list[dict[str, Any]], kind: str, tokenizer: Any, args: Any, train_on_prompt: bool) -> Any:
    """TRL's preparation of `rows` without truncation: columns input_ids and labels."""
    from datasets import Dataset
    from trl import SFTTrainer

    chat = kind == "messages" or isinstance(rows[0].get("prompt"), list)
    masked_args = dataclasses.replace(
        args, max_length=None, packing=False,
        assistant_only_loss=chat and not train_on_prompt,
        completion_only_loss=kind == "prompt-completion" and not train_on_prompt)
    trainer_view = types.SimpleNamespace(_tokenizer=tokenizer, chat_template=None,
                                         completion_only_loss=masked_args.completion_only_loss)
    dataset = Dataset.from_list(rows)
    out = SFTTrainer._prepare_dataset(trainer_view, dataset, tokenizer, masked_args, False, None, "train")
    return out.select_columns(["input_ids", "labels"])


def start(recipe: Recipe, splits: Splits, args: Any, trained_as: str = "") -> tuple[Any, check.Report]:
    """The run's tokenizer and a `check` report opened with the data's format and warnings:
    what every task's preparation begins with. No weights load."""
    import datasets

    from ..models import load_tokenizer

    datasets.disable_progress_bars()
    tokenizer = load_tokenizer(recipe.model, recipe.trust_remote_code)
    report = check.Report(recipe.data.max_length, getattr(args, "truncation_mode", "keep_end"))
    report.notes.append(f"format: {splits.format}" + (f" (trained as {trained_as})" if trained_as else ""))
    report.warnings += splits.warnings
    return tokenizer, report


def prepare(recipe: Recipe, splits: Splits, args: Any) -> Prepared:
    """Generative (SFT) rows: tokenizer with the training template and pad token, tokenized
    splits and the check report. Nothing here loads model weights."""
    from ..hardware import attention

    d = recipe.data
    tokenizer, report = start(recipe, splits, args, splits.kind if splits.kind != splits.format else "")
    if getattr(args, "eos_token", None):  # training.eos_token, as TRL would set it before tokenizing
        tokenizer.eos_token = args.eos_token
    chat = conversational(splits.kind, splits.train.rows, tokenizer, d.template)
    report.notes.append("template: " + templates.setup(tokenizer, d.template, chat, d.train_on_prompt))
    report.notes.append("pad token: " + distinct_pad(tokenizer))

    def one(name: str, split: Split) -> Any:
        rows = as_chat(split.rows) if chat else split.rows
        ds = tokenize(rows, splits.kind, tokenizer, args, d.train_on_prompt)
        check.analyse(report, name, ds, split.where, tokenizer, masked=not d.train_on_prompt)
        return ds

    train = one("train", splits.train)
    if splits.mix and splits.train.origin is not None:
        check.mix(report, splits.mix, train, splits.train.where, splits.train.origin, tokenizer)
    held = one("eval", splits.eval) if splits.eval else None
    eval_rows = (as_chat(splits.eval.rows) if chat else splits.eval.rows) if splits.eval else None
    lengths = [min(len(ids), d.max_length or len(ids)) for ids in train["input_ids"]]
    values, line = batching.choose(d.packing, lengths, args.per_device_train_batch_size, recipe.seed,
                                   attention(), recipe.training)
    report.notes.append(line)
    return Prepared(tokenizer, train, held, report, chat, eval_rows=eval_rows, batching=values)
