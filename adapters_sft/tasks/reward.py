"""`task: reward`: a reward model, trained by TRL's RewardTrainer on the preference pairs we
already read (data/formats.py `preference`): a sequence-classification head with one output
scores a whole conversation, and the loss (Bradley-Terry, -log sigmoid(r_chosen - r_rejected))
pushes the chosen answer's score above the rejected one's. Every strategy applies, as for
`task: classification` (the new score head trains and is saved with what the strategy trains).

Scored by TRL's own held-out evaluation, pair by pair: pairwise accuracy (the share of
held-out pairs whose chosen answer scores higher) and the mean margin counted over every pair
(TRL's logged `accuracy` is a mean of batch means, off when the last batch is short), and
TRL's loss; before training the head is random, so the accuracy is near chance. A finished reward run scores the answers of a grpo
run: `rewards: [{name: run, path: RUN_DIR}]` (rewards/run.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from .preference import PreferenceTask

SCORES = {"eval_accuracy": "accuracy", "eval_margin": "margin", "eval_loss": "loss",
          "eval_mean_reward": "mean_reward"}


class RewardTask(PreferenceTask):
    name = "reward"
    summary = "a reward model (TRL's RewardTrainer): scores conversations, trained on preference pairs"
    generative = False
    reward_model = True
    sequences_per_row = 2
    best_metric = "accuracy"
    trained_as = "pairs, the chosen answer to score above the rejected"
    unplanned = ("reward's memory is not modelled yet (a sequence-classification head); plan the same "
                 "recipe with task=dpo for the body's terms")

    def check_data(self, recipe: Any, kind: str) -> None:
        if kind != "preference":
            raise UserError(f"{recipe.where('task')}task: reward trains on preference pairs (prompt, chosen, "
                            f"rejected), but data.train holds {kind} data; give pairs")

    def config_class(self) -> type:
        from trl import RewardConfig

        return RewardConfig

    def config_values(self, recipe: Any, training: dict[str, Any]) -> dict[str, Any]:
        return {"max_length": recipe.data.max_length,
                # a partly frozen body (head-only, freeze) has nothing to recompute; as classification
                "gradient_checkpointing": training.get("gradient_checkpointing", False)}

    def build_trainer(self, recipe: Any, strategy: Any, args: Any, prepared: Any,
                      callbacks: list[Any], load_kwargs: dict[str, Any]) -> Any:
        from transformers import set_seed
        from trl import RewardTrainer

        from ..checkpoint_trainer import checkpointing

        set_seed(recipe.seed)  # the new head is initialised as the model loads
        model = load_scorer(recipe.model, load_kwargs, prepared.tokenizer, recipe.trust_remote_code)
        set_seed(recipe.seed)  # and any adapter in prepare()
        ready = strategy.prepare(model)
        return checkpointing(counted(RewardTrainer))(
            model=ready.model, args=args, train_dataset=prepared.train, eval_dataset=prepared.eval,
            processing_class=prepared.tokenizer, peft_config=ready.peft_config, callbacks=callbacks)

    def after_training(self, work: Path, scores: dict[str, Any], prepared: Any) -> None:
        from ..rundir import SCORED_AS, write_json

        write_json(work / SCORED_AS, {"chat": bool(prepared.chat)})  # read by rewards/run.py

    def load_run_model(self, run: Any, load_kwargs: dict[str, Any]) -> Any:
        return load_scorer(run.recipe.model, load_kwargs, run.tokenizer, run.recipe.trust_remote_code)

    def score(self, trainer: Any, rows: list[dict[str, Any]], recipe: Any,
              when: str) -> tuple[dict[str, Any], str]:
        import torch

        trainer.pairs = []
        try:
            metrics = trainer.evaluate()
            margins = torch.cat(trainer.pairs) if trainer.pairs else torch.zeros(0)
        finally:
            trainer.pairs = None
        if not len(margins):
            raise UserError(f"{recipe.where('data.max_length')}data.max_length: every held-out pair is longer "
                            f"than {recipe.data.max_length} tokens, so none can be scored; raise data.max_length")
        report = {ours: metrics[theirs] for theirs, ours in SCORES.items() if theirs in metrics}
        correct = int((margins > 0).sum())
        report.update(accuracy=correct / len(margins), correct=correct, margin=float(margins.mean()),
                      total=len(margins))
        return report, (f"held-out {when} training: pairwise accuracy {correct}/{len(margins)} = "
                        f"{report['accuracy']:.1%}, margin {report['margin']:+.3f}, loss {report['loss']:.4f}")

    def compare(self, before: dict[str, Any], after: dict[str, Any]) -> str:
        return (f"pairwise accuracy {before['accuracy']:.1%} before -> {after['accuracy']:.1%} after training; "
                f"margin {before['margin']:+.3f} -> {after['margin']:+.3f}")

    def evaluate(self, model: Any, tokenizer: Any, recipe: Any, rows: list[dict[str, Any]], kind: str,
                 where: Callable[[int], str], out: Path, title: str, metric: str, batch_size: int,
                 max_new_tokens: int) -> dict[str, Any]:
        """The run's model in TRL's RewardTrainer, only evaluating."""
        import tempfile

        from datasets import Dataset
        from trl import RewardTrainer

        from ..data.tokenize import as_chat, conversational
        from ..rundir import EVAL, write_json
        from ..training.args import training_args

        if kind != "preference":
            raise UserError(f"--data: a reward run is scored on preference pairs, got {kind} data")
        pairs = as_chat(rows) if conversational(kind, rows, tokenizer, recipe.data.template) else rows
        with tempfile.TemporaryDirectory() as tmp:
            args = training_args(recipe, Path(tmp), has_eval=True)
            held = Dataset.from_list(pairs)  # the trainer wants a train split too; nothing trains
            trainer = counted(RewardTrainer)(model=model, args=args, train_dataset=held, eval_dataset=held,
                                    processing_class=tokenizer)
            report, _ = self.score(trainer, pairs, recipe, "")
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / EVAL, report)
        return report

    def summarise(self, report: dict[str, Any], rows: int) -> str:
        return (f"pairwise accuracy {report['accuracy']:.1%}   margin {report['margin']:+.4f}   "
                f"loss {report['loss']:.4f}   ({rows} pairs)")


def counted(base: type) -> type:
    """RewardTrainer that keeps, while `pairs` is a list, each evaluated pair's margin (chosen
    score - rejected score) from every process, once each, for the exact held-out figures."""
    class Counted(base):  # type: ignore[misc, valid-type]
        pairs: list[Any] | None = None

        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            import torch

            loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                                 num_items_in_batch=num_items_in_batch)
            if self.pairs is not None and not model.training:
                chosen, rejected = torch.chunk(outputs.logits.squeeze(-1).detach().float(), 2)
                self.pairs.append(self.accelerator.gather_for_metrics(chosen - rejected).cpu())
            return (loss, outputs) if return_outputs else loss

    return Counted


def load_scorer(ref: str, load_kwargs: dict[str, Any], tokenizer: Any, trust_remote_code: bool = False) -> Any:
    """The pretrained body with a one-output score head (a saved run's, when loaded back); its
    pad id is the tokenizer's, as the head reads the last token that is not padding."""
    from ..models import load_model

    model = load_model(ref, {**load_kwargs, "num_labels": 1}, trust_remote_code,
                       "AutoModelForSequenceClassification")
    model.config.pad_token_id = tokenizer.pad_token_id
    return model
