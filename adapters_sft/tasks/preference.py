"""What every preference task (dpo, orpo, simpo, kto) shares: the data (data/formats.py
`preference`: prompt, chosen, rejected; kto also `unpaired-preference`: prompt, completion,
label), its preparation (the chat template and pad token; TRL's trainers tokenize the rows
themselves), the model each run starts from (the base, or `init_from`), and the scores: TRL's
own held-out evaluation (rewards, reward accuracy where rows are paired, loss) and the share
of greedy answers that equal the chosen (desirable) one. A subclass names TRL's trainer and
config, and whether it uses a reference model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar

from ..errors import UserError
from .base import Task

SCORES = {"eval_rewards/accuracies": "reward_accuracy", "eval_rewards/margins": "reward_margin",
          "eval_loss": "loss", "eval_rewards/chosen": "reward_chosen",
          "eval_rewards/rejected": "reward_rejected", "eval_kl": "kl"}


class PreferenceTask(Task):
    data_kinds = ("preference",)
    best_metric = "loss"
    # the trainer takes a reference model (DPO); reference-free ones (ORPO, SimPO) do not
    uses_reference: ClassVar[bool] = False
    sequences_per_row = 2
    trained_as: ClassVar[str] = "preference pairs"

    def trainer_class(self) -> type:
        raise NotImplementedError

    def check_data(self, recipe: Any, kind: str) -> None:
        if kind in self.data_kinds:
            return
        at = f"{recipe.where('task')}task: {self.name}"
        if kind == "unpaired-preference":
            raise UserError(f"{at} needs paired rows (prompt, chosen, rejected), but data.train holds "
                            "unpaired rows (prompt, completion, label); set task=kto, which trains on them")
        if kind == "prompt":
            from ..data.formats import PROMPT_ONLY_FIX

            raise UserError(f"{at} needs preference rows (prompt, chosen, rejected), but data.train holds "
                            "prompts without answers; " + PROMPT_ONLY_FIX)
        raise UserError(f"{at} needs preference rows (prompt, chosen, rejected), but data.train holds "
                        f"{kind} data; give preference data or set task=sft")

    def arrange(self, rows: list[dict[str, Any]], recipe: Any, args: Any,
                key: str) -> tuple[list[dict[str, Any]], str]:
        """The rows (from `key`: data.train, data.eval, --data) in the order and shape the
        trainer takes them, and how many there are."""
        return rows, f"{len(rows)} pairs"

    def config_values(self, recipe: Any, training: dict[str, Any]) -> dict[str, Any]:
        return {"max_length": recipe.data.max_length}

    def tokenize(self, recipe: Any, splits: Any, args: Any) -> Any:
        """Tokenizer (template, pad) and the pairs as TRL reads them; TRL's trainer tokenizes."""
        from datasets import Dataset

        from ..data import templates
        from ..data.tokenize import Prepared, as_chat, conversational, distinct_pad, start

        tokenizer, report = start(recipe, splits, args, self.trained_as)
        chat = conversational(splits.kind, splits.train.rows, tokenizer, recipe.data.template)
        if chat:
            report.notes.append("template: " + templates.setup(tokenizer, recipe.data.template, True, True))
        report.notes.append("pad token: " + distinct_pad(tokenizer))
        rows = as_chat(splits.train.rows) if chat else splits.train.rows
        report.example, report.example_where = example(rows[0], tokenizer, chat), splits.train.where[0]
        train, counted = self.arrange(rows, recipe, args, "data.train")
        report.splits.append(f"train: {counted}")
        held = None
        if splits.eval:
            held, counted = self.arrange(as_chat(splits.eval.rows) if chat else splits.eval.rows, recipe, args,
                                         "data.eval")
            report.splits.append(f"eval: {counted}")
        return Prepared(tokenizer, Dataset.from_list(train), Dataset.from_list(held) if held else None,
                        report, chat, eval_rows=held)

    def build_trainer(self, recipe: Any, strategy: Any, args: Any, prepared: Any,
                      callbacks: list[Any], load_kwargs: dict[str, Any]) -> Any:
        from transformers import set_seed

        from .. import init_from
        from ..checkpoint_trainer import checkpointing
        from ..models import load_model

        model = load_model(recipe.model, load_kwargs, recipe.trust_remote_code)
        set_seed(recipe.seed)  # adapters are initialised in prepare()
        model, peft_config, reference = init_from.start(recipe, strategy, model, self.uses_reference)
        extra = {"ref_model": reference} if self.uses_reference else {}
        return checkpointing(self.trainer_class())(
            model=model, args=args, train_dataset=prepared.train, eval_dataset=prepared.eval,
            processing_class=prepared.tokenizer, peft_config=peft_config, callbacks=callbacks, **extra)

    def load_run_model(self, run: Any, load_kwargs: dict[str, Any]) -> Any:
        from ..models import load_model

        return load_model(run.recipe.model, load_kwargs, run.recipe.trust_remote_code)

    def score(self, trainer: Any, rows: list[dict[str, Any]], recipe: Any,
              when: str) -> tuple[dict[str, Any], str]:
        from ..scores.generative import exact_match

        metrics = trainer.evaluate()
        report = {ours: metrics[theirs] for theirs, ours in SCORES.items() if theirs in metrics}
        if "reward_margin" not in report and {"reward_chosen", "reward_rejected"} <= report.keys():
            # KTO logs a margin only for batches holding both kinds of answer
            report["reward_margin"] = report["reward_chosen"] - report["reward_rejected"]
        report["total"] = len(trainer.eval_dataset)
        # the rule a checkable preference set implies: the greedy answer is the chosen one
        answers = exact_match(trainer.model, trainer.processing_class, [r for r in rows if r.get("label", True)],
                              recipe.eval.max_new_tokens, recipe.eval.batch_size)
        report["chosen_rate"], report["answers"] = answers["exact_match"], answers
        accuracy = f"reward accuracy {report['reward_accuracy']:.1%}, " if "reward_accuracy" in report else ""
        return report, (f"held-out {when} training: {accuracy}margin {report['reward_margin']:+.3f}, "
                        f"loss {report['loss']:.4f}; greedy answer = chosen {answers['correct']}/"
                        f"{answers['total']} ({report['total']} rows)")

    def compare(self, before: dict[str, Any], after: dict[str, Any]) -> str:
        if "reward_accuracy" in before and "reward_accuracy" in after:
            rewards = f"reward accuracy {before['reward_accuracy']:.1%} before -> {after['reward_accuracy']:.1%}"
        else:
            rewards = f"reward margin {before['reward_margin']:+.3f} before -> {after['reward_margin']:+.3f}"
        return (f"{rewards} after training; greedy answer = chosen {before['chosen_rate']:.1%} -> "
                f"{after['chosen_rate']:.1%}")

    def evaluate(self, model: Any, tokenizer: Any, recipe: Any, rows: list[dict[str, Any]], kind: str,
                 where: Callable[[int], str], out: Path, title: str, metric: str, batch_size: int,
                 max_new_tokens: int) -> dict[str, Any]:
        """The run's model in this task's trainer, only evaluating (DPO: against the same reference)."""
        import tempfile

        from datasets import Dataset

        from ..rundir import EVAL, write_json
        from ..training.args import training_args

        if kind not in self.data_kinds:
            raise UserError(f"--data: a {self.name} run is scored on {' or '.join(self.data_kinds)} rows, "
                            f"got {kind} data")
        from ..data.tokenize import as_chat, conversational

        pairs = as_chat(rows) if conversational(kind, rows, tokenizer, recipe.data.template) else rows
        with tempfile.TemporaryDirectory() as tmp:
            # the recipe's eval batch size, as in training: KTO's KL estimate and margin are per batch
            args = training_args(recipe, Path(tmp), has_eval=True)
            pairs, _ = self.arrange(pairs, recipe, args, "--data")
            held = Dataset.from_list(pairs)  # the trainer wants a train split too; nothing trains
            extra = {"ref_model": _full_reference(recipe, model)} if self.uses_reference else {}
            trainer = self.trainer_class()(model=model, args=args, train_dataset=held, eval_dataset=held,
                                           processing_class=tokenizer, **extra)
            if self.uses_reference:
                _peft_reference(recipe, trainer.model)
            report, _ = self.score(trainer, pairs, recipe, "")
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / EVAL, report)
        return report

    def summarise(self, report: dict[str, Any], rows: int) -> str:
        a = report["answers"]
        accuracy = f"reward accuracy {report['reward_accuracy']:.1%}   " if "reward_accuracy" in report else ""
        return (f"{accuracy}margin {report['reward_margin']:+.4f}   loss {report['loss']:.4f}   ({rows} rows)\n"
                f"greedy answer = chosen {a['correct']}/{a['total']} = {report['chosen_rate']:.1%}")


def _full_reference(recipe: Any, model: Any) -> Any:
    """For `eval` of a run that trained its weights from an init_from run: that run's model,
    the reference it trained against (without init_from, TRL loads the base itself)."""
    from accelerate.utils import is_peft_model

    if is_peft_model(model) or not recipe.init_from:
        return None
    from ..run_reader import load_run

    return load_run(recipe.init_from)[0]


def _peft_reference(recipe: Any, model: Any) -> None:
    """Given a trained adapter, TRL keeps a copy of it as the reference (adapter "ref"), which
    is right when training starts and wrong for scoring a finished run: the reference is the
    base (adapter off) or, with init_from, that run's adapter."""
    from accelerate.utils import is_peft_model

    if not is_peft_model(model) or "ref" not in model.peft_config:
        return
    model.delete_adapter("ref")
    if recipe.init_from:
        from ..run_reader import open_run

        model.load_adapter(str(open_run(recipe.init_from).artifact), adapter_name="ref")


def example(row: dict[str, Any], tokenizer: Any, chat: bool) -> list[tuple[str, bool]]:
    """One row as `check` shows it: the prompt, then each answer (the trained part)."""
    sides = ([("chosen", "[chosen] "), ("rejected", "\n[rejected] ")] if "chosen" in row else
             [("completion", "[desirable] " if row["label"] else "[undesirable] ")])
    if chat:
        prompt = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        full = [tokenizer.apply_chat_template(row["prompt"] + row[side], tokenize=False) for side, _ in sides]
        answers = [text[len(prompt):] if text.startswith(prompt) else text for text in full]
    else:
        prompt, answers = row["prompt"], [row[side] for side, _ in sides]
    pieces = [(prompt, False)]
    for (_, title), answer in zip(sides, answers):
        pieces += [(title, False), (answer, True)]
    return pieces
