"""`task: dpo`: preference tuning with TRL's DPOTrainer (Rafailov et al., 2023,
arXiv:2305.18290) on (prompt, chosen, rejected) pairs (data/formats.py, `preference`).

The reference model is what the policy starts from. With a PEFT strategy (lora, qlora, ia3)
it is the same model with the adapter switched off, so there is no second copy in memory;
with the others (full, freeze, head-only, adapter) TRL loads a frozen second copy of the base
(`training.precompute_ref_log_probs=true` computes the reference log-probabilities once
instead, and frees it). `training.beta`, `training.loss_type` and every other DPOConfig key
pass through, checked like SFTConfig keys. Plain-text pairs go through the chat template
when the model has one, as plain prompt-completion rows do for `sft`, so a DPO run sees the
format an SFT run trained on.

Scored on the held-out pairs by TRL's own evaluation: reward accuracy (the share of pairs
whose implicit reward, beta * (log pi - log pi_ref), is higher for the chosen answer), the
mean reward margin and the DPO loss; before training the policy is the reference, so the
rewards are 0 and the loss is ln 2. Also the share of greedy answers that equal the chosen
one: for a set whose chosen answer is the right one by a rule (datasets/date-pairs), a
win rate that does not depend on the reference.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from .base import Task

SCORES = {"eval_rewards/accuracies": "reward_accuracy", "eval_rewards/margins": "reward_margin",
          "eval_loss": "loss", "eval_rewards/chosen": "reward_chosen",
          "eval_rewards/rejected": "reward_rejected"}


class DpoTask(Task):
    name = "dpo"
    summary = "preference tuning (TRL's DPOTrainer) on (prompt, chosen, rejected) pairs"
    data_kinds = ("preference",)
    best_metric = "loss"

    def check_data(self, recipe: Any, kind: str) -> None:
        if kind != "preference":
            raise UserError(f"{recipe.where('task')}task: dpo needs preference rows (prompt, chosen, "
                            f"rejected), but data.train holds {kind} data; give preference data or set "
                            "task=sft")

    def config_class(self) -> type:
        from trl import DPOConfig

        return DPOConfig

    def config_values(self, recipe: Any, training: dict[str, Any]) -> dict[str, Any]:
        return {"max_length": recipe.data.max_length}

    def prepare(self, recipe: Any, splits: Any, args: Any) -> Any:
        """Tokenizer (template, pad) and the pairs as TRL reads them; DPOTrainer tokenizes."""
        from datasets import Dataset, disable_progress_bars

        from ..data import check, templates
        from ..data.tokenize import Prepared, distinct_pad
        from ..models import load_tokenizer

        disable_progress_bars()
        tokenizer = load_tokenizer(recipe.model, recipe.trust_remote_code)
        report = check.Report(recipe.data.max_length, getattr(args, "truncation_mode", "keep_end"))
        report.notes.append(f"format: {splits.format} (trained as preference pairs)")
        report.warnings += splits.warnings
        chat = isinstance(splits.train.rows[0]["prompt"], list) or (
            recipe.data.template != "none" and (recipe.data.template != "auto" or bool(tokenizer.chat_template)))
        if chat:
            report.notes.append("template: " + templates.setup(tokenizer, recipe.data.template, True, True))
        report.notes.append("pad token: " + distinct_pad(tokenizer))
        train = as_chat_pairs(splits.train.rows) if chat else splits.train.rows
        held = (as_chat_pairs(splits.eval.rows) if chat else splits.eval.rows) if splits.eval else None
        for name, rows in (("train", train), ("eval", held)):
            if rows:
                report.splits.append(f"{name}: {len(rows)} pairs")
        report.example, report.example_where = example(train[0], tokenizer, chat), splits.train.where[0]
        return Prepared(tokenizer, Dataset.from_list(train), Dataset.from_list(held) if held else None,
                        report, chat, eval_rows=held)

    def build_trainer(self, recipe: Any, strategy: Any, args: Any, prepared: Any,
                      callbacks: list[Any], load_kwargs: dict[str, Any]) -> Any:
        from transformers import set_seed
        from trl import DPOTrainer

        from ..durable import durable
        from ..models import load_model

        from .. import init_from

        model = load_model(recipe.model, load_kwargs, recipe.trust_remote_code)
        set_seed(recipe.seed)  # adapters are initialised in prepare()
        model, peft_config, reference = init_from.start(recipe, strategy, model)
        return durable(DPOTrainer)(
            model=model, ref_model=reference, args=args, train_dataset=prepared.train,
            eval_dataset=prepared.eval, processing_class=prepared.tokenizer, peft_config=peft_config,
            callbacks=callbacks)

    def load_run_model(self, run: Any, load_kwargs: dict[str, Any]) -> Any:
        from ..models import load_model

        return load_model(run.recipe.model, load_kwargs, run.recipe.trust_remote_code)

    def score(self, trainer: Any, rows: list[dict[str, Any]], recipe: Any,
              when: str) -> tuple[dict[str, Any], str]:
        from ..evaluate import exact_match

        metrics = trainer.evaluate()
        report = {ours: metrics[theirs] for theirs, ours in SCORES.items() if theirs in metrics}
        report["total"] = len(trainer.eval_dataset)
        # the rule a checkable preference set implies: the greedy answer is the chosen one
        answers = exact_match(trainer.model, trainer.processing_class, rows, recipe.eval.max_new_tokens,
                              recipe.eval.batch_size)
        report["chosen_rate"], report["answers"] = answers["exact_match"], answers
        return report, (f"held-out {when} training: reward accuracy {report['reward_accuracy']:.1%}, "
                        f"margin {report['reward_margin']:+.3f}, loss {report['loss']:.4f}; greedy "
                        f"answer = chosen {answers['correct']}/{answers['total']} ({report['total']} pairs)")

    def compare(self, before: dict[str, Any], after: dict[str, Any]) -> str:
        return (f"reward accuracy {before['reward_accuracy']:.1%} before -> {after['reward_accuracy']:.1%} "
                f"after training; greedy answer = chosen {before['chosen_rate']:.1%} -> "
                f"{after['chosen_rate']:.1%}")

    def evaluate(self, model: Any, tokenizer: Any, recipe: Any, rows: list[dict[str, Any]], kind: str,
                 where: Callable[[int], str], out: Path, title: str, metric: str, batch_size: int,
                 max_new_tokens: int) -> dict[str, Any]:
        """The run's model in a DPOTrainer that only evaluates, against the same reference."""
        import tempfile

        from datasets import Dataset
        from trl import DPOTrainer

        from ..rundir import write_json
        from ..training_args import training_args

        if kind != "preference":
            raise UserError(f"--data: a dpo run is scored on preference rows (prompt, chosen, "
                            f"rejected), got {kind} data")
        chat = bool(tokenizer.chat_template) and recipe.data.template != "none"
        pairs = as_chat_pairs(rows) if chat else rows
        with tempfile.TemporaryDirectory() as tmp:
            args = training_args(recipe, Path(tmp), has_eval=True)
            args.per_device_eval_batch_size = batch_size
            held = Dataset.from_list(pairs)  # DPOTrainer wants a train split too; nothing trains
            trainer = DPOTrainer(model=model, args=args, train_dataset=held, eval_dataset=held,
                                 processing_class=tokenizer)
            report, _ = self.score(trainer, pairs, recipe, "")
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "eval.json", report)
        return report

    def summarise(self, report: dict[str, Any], rows: int) -> str:
        a = report["answers"]
        return (f"reward accuracy {report['reward_accuracy']:.1%}   margin {report['reward_margin']:+.4f}   "
                f"loss {report['loss']:.4f}   ({rows} pairs)\n"
                f"greedy answer = chosen {a['correct']}/{a['total']} = {report['chosen_rate']:.1%}")


def as_chat_pairs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plain-text pairs as one-turn conversations (TRL's conversational preference form)."""
    if not rows or isinstance(rows[0]["prompt"], list):
        return rows
    return [{"prompt": [{"role": "user", "content": r["prompt"]}],
             "chosen": [{"role": "assistant", "content": r["chosen"]}],
             "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows]


def example(pair: dict[str, Any], tokenizer: Any, chat: bool) -> list[tuple[str, bool]]:
    """One pair as `check` shows it: the prompt, then each answer (the trained part)."""
    if chat:
        prompt = tokenizer.apply_chat_template(pair["prompt"], add_generation_prompt=True, tokenize=False)
        full = [tokenizer.apply_chat_template(pair["prompt"] + pair[side], tokenize=False)
                for side in ("chosen", "rejected")]
        answers = [text[len(prompt):] if text.startswith(prompt) else text for text in full]
    else:
        prompt, answers = pair["prompt"], [pair["chosen"], pair["rejected"]]
    return [(prompt, False), ("[chosen] ", False), (answers[0], True), ("\n[rejected] ", False),
            (answers[1], True)]
