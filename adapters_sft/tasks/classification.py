"""`task: classification`: a sequence-classification head trained by transformers' Trainer.

TRL's SFTTrainer cannot train classification models (FACTS.md), so this task uses its parent
class with the same strategies, knobs and run directory. The labels come from the training
data (`label_set` below); their order gives the class ids, and the model's config
carries `id2label`, so a saved run names its classes by itself (and labels.json lists them).
Decoder LLMs work too: their score head reads the last non-pad token, so the config's pad id
must be the tokenizer's. Scored by accuracy, macro and per-class P/R/F1 and a confusion matrix.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from .base import Task


class ClassificationTask(Task):
    name = "classification"
    summary = "a sequence-classification head (transformers' Trainer) on (text, label) data"
    data_kinds = ("classification",)
    generative = False
    best_metric = "macro_f1"
    eval_every_epoch = True  # cheap, and what early stopping and the logs use
    eval_files = "eval.json and confusion.png"

    def check_data(self, recipe: Any, kind: str) -> None:
        if kind != "classification":
            raise UserError(f"{recipe.where('task')}task: classification needs (text, label) rows, but "
                            f"data.train holds {kind} data; give classification data or set task=sft")

    def tokenize(self, recipe: Any, splits: Any, args: Any) -> Any:
        """Tokenizer and (input_ids, attention_mask, label id) splits; the label set is the
        training data's. No weights load."""
        from ..data import check
        from ..data.tokenize import Prepared, start

        tokenizer, report = start(recipe, splits, args)
        check.classification(report, tokenizer, splits)
        labels = label_set(splits.train.rows)
        train, held = (encode(s.rows, tokenizer, labels, recipe.data.max_length) if s else None
                       for s in (splits.train, splits.eval))
        return Prepared(tokenizer, train, held, report, labels=labels,
                        eval_rows=splits.eval.rows if splits.eval else None)

    def config_class(self) -> type:
        from transformers import TrainingArguments

        return TrainingArguments

    def config_values(self, recipe: Any, training: dict[str, Any]) -> dict[str, Any]:
        # classifiers here are small, and checkpointing a partly frozen body needs care
        return {"gradient_checkpointing": training.get("gradient_checkpointing", False)}

    def build_trainer(self, recipe: Any, strategy: Any, args: Any, prepared: Any,
                      callbacks: list[Any], load_kwargs: dict[str, Any]) -> Any:
        """transformers' Trainer on the prepared model; PEFT configs are applied here (SFTTrainer
        does that itself for generative runs)."""
        from transformers import DataCollatorWithPadding, Trainer, set_seed

        from ..checkpoint_trainer import checkpointing
        from ..scores.classification import compute_metrics

        tokenizer = prepared.tokenizer
        set_seed(recipe.seed)  # the new head is initialised as the model loads
        model = load_classifier(recipe.model, load_kwargs, prepared.labels, tokenizer,
                                recipe.trust_remote_code)
        set_seed(recipe.seed)  # and any adapter in prepare()
        ready = strategy.prepare(model)
        model = ready.model
        if ready.peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, ready.peft_config)
        return checkpointing(Trainer)(model=model, args=args, train_dataset=prepared.train,
                                eval_dataset=prepared.eval, processing_class=tokenizer,
                                data_collator=DataCollatorWithPadding(tokenizer),
                                compute_metrics=compute_metrics([str(x) for x in prepared.labels]),
                                callbacks=callbacks)

    def load_run_model(self, run: Any, load_kwargs: dict[str, Any]) -> Any:
        return load_classifier(run.recipe.model, load_kwargs, run_labels(run.path), run.tokenizer,
                               run.recipe.trust_remote_code)

    def score(self, trainer: Any, rows: list[dict[str, Any]], recipe: Any,
              when: str) -> tuple[dict[str, Any], str]:
        report = evaluate(trainer.model, trainer.processing_class, rows, recipe.data.max_length)
        return report, (f"held-out {when} training: accuracy {report['accuracy']:.1%}, macro F1 "
                        f"{report['macro_f1']:.3f} ({report['total']} rows)")

    def compare(self, before: dict[str, Any], after: dict[str, Any]) -> str:
        return (f"accuracy {before['accuracy']:.1%} before -> {after['accuracy']:.1%} after training; "
                f"macro F1 {before['macro_f1']:.3f} -> {after['macro_f1']:.3f}")

    def after_training(self, work: Path, scores: dict[str, Any], prepared: Any) -> None:
        from ..scores.classification import draw_confusion
        from ..rundir import CONFUSION, LABELS, write_json

        if "after" in scores:
            draw_confusion(scores["after"], work / CONFUSION)
        write_json(work / LABELS, [str(x) for x in prepared.labels])  # class-id order

    def evaluate(self, model: Any, tokenizer: Any, recipe: Any, rows: list[dict[str, Any]], kind: str,
                 where: Callable[[int], str], out: Path, title: str, metric: str, batch_size: int,
                 max_new_tokens: int) -> dict[str, Any]:
        if kind != "classification":
            raise UserError(f"--data: a classification run needs (text, label) rows, got {kind} data")
        report = evaluate(model, tokenizer, rows, recipe.data.max_length, where=where)
        write_report(report, out, title)
        return report

    def summarise(self, report: dict[str, Any], rows: int) -> str:
        from ..scores.classification import table

        return table(report)


def label_set(rows: list[dict[str, Any]]) -> list[Any]:
    """The training labels in a stable order (numbers numerically, names alphabetically):
    label i of the classifier is the i-th of these."""
    return sorted({r["label"] for r in rows})


def encode(rows: list[dict[str, Any]], tokenizer: Any, labels: list[Any], max_length: int | None) -> Any:
    """Columns input_ids, attention_mask and labels (the label's index); a label outside
    `labels` (never seen in training) gets -1, which check.classification already reported."""
    from datasets import Dataset

    index = {label: i for i, label in enumerate(labels)}
    enc = tokenizer([r["text"] for r in rows], truncation=max_length is not None, max_length=max_length)
    return Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                              "labels": [index.get(r["label"], -1) for r in rows]})


def load_classifier(ref: str, load_kwargs: dict[str, Any], labels: list[Any], tokenizer: Any,
                    trust_remote_code: bool = False) -> Any:
    """The pretrained body with a new head for `labels` (or a saved run's, when loaded back)."""
    from ..models import load_model

    names = [str(label) for label in labels]
    model = load_model(ref, {**load_kwargs, "num_labels": len(names),
                             "id2label": dict(enumerate(names)),
                             "label2id": {n: i for i, n in enumerate(names)}},
                       trust_remote_code, "AutoModelForSequenceClassification")
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def run_labels(run: Path) -> list[str]:
    """The class names of a classification run, in class-id order."""
    import json

    from ..rundir import LABELS

    path = run / LABELS
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise UserError(f"{path}: missing or unreadable; the run did not finish saving, "
                        "train it again") from None


def predict(model: Any, tokenizer: Any, texts: list[str], max_length: int | None,
            batch_size: int = 32) -> list[int]:
    """Class ids for `texts`, batched, in eval mode."""
    import torch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[int] = []
    try:
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                enc = tokenizer(texts[i:i + batch_size], padding=True, return_tensors="pt",
                                truncation=max_length is not None, max_length=max_length).to(device)
                out += model(**enc).logits.argmax(-1).tolist()
    finally:
        model.train(was_training)
    return out


def evaluate(model: Any, tokenizer: Any, rows: list[dict[str, Any]], max_length: int | None,
             where: Callable[[int], str] = lambda i: f"row {i + 1}") -> dict[str, Any]:
    """The classification report (scores/classification.py) of `model` on (text, label) rows."""
    from ..scores.classification import classification_report

    names = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    index = {name: i for i, name in enumerate(names)}
    gold = []
    for i, row in enumerate(rows):
        if str(row["label"]) not in index:
            raise UserError(f"{where(i)}: label {row['label']!r} is not one the run was trained on "
                            f"({', '.join(names)}); evaluate on data with the training labels")
        gold.append(index[str(row["label"])])
    predicted = predict(model, tokenizer, [r["text"] for r in rows], max_length)
    return classification_report(predicted, gold, names)


def write_report(report: dict[str, Any], out: Path, title: str = "") -> None:
    """eval.json-style JSON and confusion.png into `out`."""
    from ..scores.classification import draw_confusion
    from ..rundir import CONFUSION, EVAL, write_json

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / EVAL, report)
    draw_confusion(report, out / CONFUSION, title)
