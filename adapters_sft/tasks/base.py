"""The task interface: one class per task, holding everything that differs between tasks.

The trainer, the run readers and the verbs ask the run's task (`registry.get_task(recipe.task)`)
instead of branching on its name, so a new task is one module plus one entry point (group
`adapters_sft.tasks`), like a strategy. A task says which data it trains on, which Trainer
config and model class it uses, how its trainer is built, how a run is scored during training
and by `adapters-sft eval`, and what its summary says. Tasks hold no state.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar

from ..errors import UserError


class Task:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    # the data kinds it trains on (data/formats.kind_of: messages, prompt-completion, text, ...)
    data_kinds: ClassVar[tuple[str, ...]] = ()
    # a causal LM comes out of it: generate, chat, merge and export apply to its runs
    generative: ClassVar[bool] = True
    # what training.load_best_model_at_end (and early stopping) compares
    best_metric: ClassVar[str] = "loss"
    # evaluate once an epoch by default when there is held-out data
    eval_every_epoch: ClassVar[bool] = False
    # what `adapters-sft eval` writes into RUN/evals/NAME/
    eval_files: ClassVar[str] = "eval.json"
    # built on a trainer TRL keeps in trl.experimental (its API may change between releases)
    experimental: ClassVar[bool] = False
    # sequences the model runs per training row (preference: chosen and rejected, or KTO's
    # row and its KL row), and whether a frozen reference model sits beside it: what
    # `adapters-sft plan` counts
    sequences_per_row: ClassVar[int] = 1
    uses_reference: ClassVar[bool] = False
    # learns from the recipe's `rewards:` (rewards/spec.py)
    uses_rewards: ClassVar[bool] = False
    # its runs score answers: usable as a reward (rewards/run.py)
    reward_model: ClassVar[bool] = False
    # why `adapters-sft plan` cannot estimate this task's memory (empty: it can)
    unplanned: ClassVar[str] = ""
    # its trainer scores tokens through TRL's chunked log-prob head (never the full logits)
    chunked_loss_head: ClassVar[bool] = True

    def check_data(self, recipe: Any, kind: str) -> None:
        """A UserError unless the training data is of a kind this task trains on."""
        if kind not in self.data_kinds:
            raise UserError(f"{recipe.where('data.train')}data.train: holds {kind} data, which task "
                            f"'{self.name}' does not train on (it takes {', '.join(self.data_kinds)})")

    def check_recipe(self, recipe: Any, splits: Any) -> None:
        """Pre-flight checks of the recipe against its data that only this task makes
        (after check_data; no tokenizer, no weights)."""

    def tokenize(self, recipe: Any, splits: Any, args: Any) -> Any:
        """The tokenizer and the splits as this task's Trainer reads them, with the `check`
        report (data/tokenize.Prepared); no weights load."""
        from ..data.tokenize import prepare

        return prepare(recipe, splits, args)

    def config_class(self) -> type:
        """The Trainer's config class (TRL's SFTConfig, transformers' TrainingArguments, ...)."""
        raise NotImplementedError

    def config_values(self, recipe: Any, training: dict[str, Any]) -> dict[str, Any]:
        """Values this task sets in that config over the shared defaults and the user's keys."""
        return {}

    def build_trainer(self, recipe: Any, strategy: Any, args: Any, prepared: Any,
                      callbacks: list[Any], load_kwargs: dict[str, Any]) -> Any:
        """Load the model, let the strategy prepare it, and wrap both in this task's Trainer."""
        raise NotImplementedError

    def load_run_model(self, run: Any, load_kwargs: dict[str, Any]) -> Any:
        """The base model a finished run (runs.Opened) restores its artifact onto."""
        raise NotImplementedError

    def score(self, trainer: Any, rows: list[dict[str, Any]], recipe: Any,
              when: str) -> tuple[dict[str, Any], str]:
        """The held-out score of `trainer`'s model on `rows` (Prepared.eval_rows) taken `when`
        ("before" or "after") training, and the line saying it."""
        raise NotImplementedError

    def compare(self, before: dict[str, Any], after: dict[str, Any]) -> str:
        """The held-out scores before and after training in one line (after 'held-out ')."""
        raise NotImplementedError

    def after_training(self, work: Path, scores: dict[str, Any], prepared: Any) -> None:
        """Files this task adds to the run directory once training is done."""

    def evaluate(self, model: Any, tokenizer: Any, recipe: Any, rows: list[dict[str, Any]], kind: str,
                 where: Callable[[int], str], out: Path, title: str, metric: str, batch_size: int,
                 max_new_tokens: int) -> dict[str, Any]:
        """`adapters-sft eval`: score `rows` (of data kind `kind`; `where(i)` names row i in
        errors) and write the report into `out`, titled `title`."""
        raise NotImplementedError

    def summarise(self, report: dict[str, Any], rows: int) -> str:
        """What `adapters-sft eval` prints for `report`."""
        raise NotImplementedError
