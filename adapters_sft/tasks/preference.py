"""What every preference task (dpo, orpo, simpo) shares: the data (data/formats.py
`preference`: prompt, chosen, rejected), its preparation (the chat template and pad token;
TRL's trainers tokenize the pairs themselves), the model each run starts from (the base, or
`init_from`), and the scores: TRL's own held-out evaluation (reward accuracy, reward margin,
loss) and the share of greedy answers that equal the chosen one. A subclass names TRL's
trainer and config, and whether it uses a reference model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar

from ..errors import UserError
from .base import Task

SCORES = {"eval_rewards/accuracies": "reward_accuracy", "eval_rewards/margins": "reward_margin",
          "eval_loss": "loss", "eval_rewards/chosen": "reward_chosen",
          "eval_rewards/rejected": "reward_rejected"}


class PreferenceTask(Task):
    data_kinds = ("preference",)
    best_metric = "loss"
    # the trainer takes a reference model (DPO); reference-free ones (ORPO, SimPO) do not
    uses_reference: ClassVar[bool] = False

    def trainer_class(self) -> type:
        raise NotImplementedError

    def check_data(self, recipe: Any, kind: str) -> None:
        if kind != "preference":
            raise UserError(f"{recipe.where('task')}task: {self.name} needs preference rows (prompt, "
                            f"chosen, rejected), but data.train holds {kind} data; give preference "
                            "data or set task=sft")

    def config_values(self, recipe: Any, training: dict[str, Any]) -> dict[str, Any]:
        return {"max_length": recipe.data.max_length}

    def prepare(self, recipe: Any, splits: Any, args: Any) -> Any:
        """Tokenizer (template, pad) and the pairs as TRL reads them; TRL's trainer tokenizes."""
        from datasets import Dataset, disable_progress_bars

        from ..data import check, templates
        from ..data.tokenize import Prepared, as_chat, conversational, distinct_pad
        from ..models import load_tokenizer

        disable_progress_bars()
        tokenizer = load_tokenizer(recipe.model, recipe.trust_remote_code)
        report = check.Report(recipe.data.max_length, getattr(args, "truncation_mode", "keep_end"))
        report.notes.append(f"format: {splits.format} (trained as preference pairs)")
        report.warnings += splits.warnings
        chat = conversational(splits.kind, splits.train.rows, tokenizer, recipe.data.template)
        if chat:
            report.notes.append("template: " + templates.setup(tokenizer, recipe.data.template, True, True))
        report.notes.append("pad token: " + distinct_pad(tokenizer))
        train = as_chat(splits.train.rows) if chat else splits.train.rows
        held = (as_chat(splits.eval.rows) if chat else splits.eval.rows) if splits.eval else None
        for name, rows in (("train", train), ("eval", held)):
            if rows:
                report.splits.append(f"{name}: {len(rows)} pairs")
        report.example, report.example_where = example(train[0], tokenizer, chat), splits.train.where[0]
        return Prepared(tokenizer, Dataset.from_list(train), Dataset.from_list(held) if held else None,
                        report, chat, eval_rows=held)

    def build_trainer(self, recipe: Any, strategy: Any, args: Any, prepared: Any,
                      callbacks: list[Any], load_kwargs: dict[str, Any]) -> Any:
        from transformers import set_seed

        from .. import init_from
        from ..durable import durable
        from ..models import load_model

        model = load_model(recipe.model, load_kwargs, recipe.trust_remote_code)
        set_seed(recipe.seed)  # adapters are initialised in prepare()
        model, peft_config, reference = init_from.start(recipe, strategy, model, self.uses_reference)
        extra = {"ref_model": reference} if self.uses_reference else {}
        return durable(self.trainer_class())(
            model=model, args=args, train_dataset=prepared.train, eval_dataset=prepared.eval,
            processing_class=prepared.tokenizer, peft_config=peft_config, callbacks=callbacks, **extra)

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
        """The run's model in this task's trainer, only evaluating (DPO: against the same reference)."""
        import tempfile

        from datasets import Dataset

        from ..rundir import write_json
        from ..training_args import training_args

        if kind != "preference":
            raise UserError(f"--data: a {self.name} run is scored on preference rows (prompt, chosen, "
                            f"rejected), got {kind} data")
        from ..data.tokenize import as_chat, conversational

        pairs = as_chat(rows) if conversational(kind, rows, tokenizer, recipe.data.template) else rows
        with tempfile.TemporaryDirectory() as tmp:
            args = training_args(recipe, Path(tmp), has_eval=True)
            args.per_device_eval_batch_size = batch_size
            held = Dataset.from_list(pairs)  # the trainer wants a train split too; nothing trains
            extra = {"ref_model": _full_reference(recipe, model)} if self.uses_reference else {}
            trainer = self.trainer_class()(model=model, args=args, train_dataset=held, eval_dataset=held,
                                           processing_class=tokenizer, **extra)
            if self.uses_reference:
                _peft_reference(recipe, trainer.model)
            report, _ = self.score(trainer, pairs, recipe, "")
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "eval.json", report)
        return report

    def summarise(self, report: dict[str, Any], rows: int) -> str:
        a = report["answers"]
        return (f"reward accuracy {report['reward_accuracy']:.1%}   margin {report['reward_margin']:+.4f}   "
                f"loss {report['loss']:.4f}   ({rows} pairs)\n"
                f"greedy answer = chosen {a['correct']}/{a['total']} = {report['chosen_rate']:.1%}")


def _full_reference(recipe: Any, model: Any) -> Any:
    """For `eval` of a run that trained its weights from an init_from run: that run's model,
    the reference it trained against (without init_from, TRL loads the base itself)."""
    from accelerate.utils import is_peft_model

    if is_peft_model(model) or not recipe.init_from:
        return None
    from ..runs import load_run

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
        from ..runs import open_run

        model.load_adapter(str(open_run(recipe.init_from).artifact), adapter_name="ref")


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
