"""`task: grpo`: online RL with TRL's GRPOTrainer (Shao et al., 2024, arXiv:2402.03300): for
each prompt the model samples `training.num_generations` answers, the recipe's rewards score
them (rewards/), and each answer is pushed up or down by how it scored against the others of
its group; `training.beta` keeps the policy near a reference (0.04 here, so the KL to the
reference is logged; TRL's own default 0 drops the reference and saves its forward pass).

Data: prompts (data/formats.py `prompt`: a prompt and any columns the rewards read), or
messages / prompt-completion rows, whose last answer becomes column `answer`. The reference
is what training starts from, as for dpo: with a PEFT strategy the model with its adapter off
(or, with init_from, a frozen copy of that run's adapter), else a frozen copy of the base (or
of the init_from run's weights). Scored on held-out prompts by each reward on the greedy
answer (scores/rewards.py). A reward that fails mid-run stops it after a checkpoint, with one
line naming the reward and the prompt, so it can be fixed and resumed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar

from ..errors import UserError
from .base import Task

BETA = 0.04  # DeepSeekMath's GRPO value (arXiv:2402.03300, section 4.2)


def as_prompts(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Rows in TRL's prompt form: {prompt, every column the rewards may read}."""
    if kind == "prompt":
        return rows
    from ..scores.generative import split_prompt_answer

    out = []
    for row in rows:
        prompt, answer = split_prompt_answer(row)
        out.append({"prompt": prompt, "answer": answer})
    return out


class GrpoTask(Task):
    name = "grpo"
    summary = "online RL (TRL's GRPOTrainer): the model's own answers to prompts, scored by rewards"
    data_kinds = ("prompt", "messages", "prompt-completion")
    uses_rewards = True
    uses_reference = True
    chunked_loss_head = False
    best_metric: ClassVar[str] = "reward"
    unplanned = ("grpo's memory is not modelled yet: besides the model, it holds the sampled answers "
                 "(training.num_generations per prompt, up to training.max_completion_length tokens each) "
                 "with their KV cache while generating, and scores them with the full logits; plan the "
                 "recipe with task=sft rewards=[] for the weights, gradients and optimizer terms")

    def check_data(self, recipe: Any, kind: str) -> None:
        if kind not in self.data_kinds:
            raise UserError(f"{recipe.where('data.train')}data.train: holds {kind} data; task grpo samples its "
                            "own answers to prompts: give rows with a 'prompt' (and the columns your rewards "
                            "read), or messages / prompt-completion rows, whose answer becomes column 'answer'")

    def check_recipe(self, recipe: Any, splits: Any) -> None:
        from ..rewards.spec import check_columns, entries

        if "reward_weights" in recipe.training:
            raise UserError(f"{recipe.where('training.reward_weights')}training.reward_weights: set each "
                            "reward's weight in rewards: instead ({name: ..., weight: 0.5})")
        if recipe.training.get("use_vllm"):
            import importlib.util

            if importlib.util.find_spec("vllm") is None:
                raise UserError(f"{recipe.where('training.use_vllm')}training.use_vllm: vLLM is not installed; "
                                "pip install 'adapters-sft[vllm]' (GPU only), or leave generation to "
                                "transformers (training.use_vllm: false)")
        sharding = recipe.distributed.sharding if recipe.distributed else "none"
        if recipe.init_from and recipe.strategy.name == "full" and sharding in ("fsdp", "zero3") and \
                recipe.training.get("beta", BETA) != 0:
            raise UserError(f"{recipe.where('init_from')}init_from: a full run as grpo's reference cannot be "
                            f"loaded into a {sharding}-sharded one; use distributed.sharding: zero2 or none, or "
                            "training.beta: 0 (no reference)")
        found = entries(recipe)
        named = [r.get("name") if isinstance(r, dict) else r for r in recipe.rewards]
        if sharding == "zero3" and "run" in named:
            raise UserError(f"{recipe.where('rewards')}rewards: a reward run (name: run) loads its model whole, "
                            "which DeepSpeed ZeRO-3 would split across the processes; use distributed.sharding: "
                            "zero2, fsdp or none")
        check_columns(found, _columns(splits.train.rows, splits.kind), _file(splits.train.where), recipe)
        if splits.eval is not None:
            check_columns(found, _columns(splits.eval.rows, splits.kind), _file(splits.eval.where), recipe)

    def config_class(self) -> type:
        from trl import GRPOConfig

        return GRPOConfig

    def config_values(self, recipe: Any, training: dict[str, Any]) -> dict[str, Any]:
        weights = [float(r.get("weight", 1.0)) if isinstance(r, dict) else 1.0 for r in recipe.rewards]
        return {"beta": training.get("beta", BETA), "reward_weights": weights or None}

    def tokenize(self, recipe: Any, splits: Any, args: Any) -> Any:
        """Tokenizer (template, pad) and the prompts as TRL reads them; TRL tokenizes them."""
        from datasets import Dataset

        from ..data import templates
        from ..data.tokenize import Prepared, as_chat, conversational, distinct_pad, start
        from ..rewards.spec import entries, received

        tokenizer, report = start(recipe, splits, args, "prompts; answers sampled and scored by rewards")
        rows = as_prompts(splits.train.rows, splits.kind)
        chat = conversational("prompt", rows, tokenizer, recipe.data.template)
        if chat:
            report.notes.append("template: " + templates.setup(tokenizer, recipe.data.template, True, True))
            rows = as_chat(rows)
        report.notes.append("pad token: " + distinct_pad(tokenizer))
        columns = [k for k in rows[0] if k != "prompt"]
        for entry in entries(recipe):
            got = received(entry, columns)
            report.notes.append(f"reward {entry.scorer.label} ({entry.origin}, weight {entry.scorer.weight:g}) "
                                f"receives: {', '.join(got) if got else 'the answer only'}")
        shown = (tokenizer.apply_chat_template(rows[0]["prompt"], add_generation_prompt=True, tokenize=False)
                 if chat else rows[0]["prompt"])
        extra = "".join(f"\n[{k}] {rows[0][k]!r}" for k in columns)
        report.example = [(shown, False), ("[answer sampled here, scored by the rewards]", True), (extra, False)]
        report.example_where = splits.train.where[0]
        report.splits.append(f"train: {len(rows)} prompts")
        held = None
        if splits.eval:
            held = as_prompts(splits.eval.rows, splits.kind)
            held = as_chat(held) if chat else held
            report.splits.append(f"eval: {len(held)} prompts")
        return Prepared(tokenizer, Dataset.from_list(rows), Dataset.from_list(held) if held else None,
                        report, chat, eval_rows=held)

    def build_trainer(self, recipe: Any, strategy: Any, args: Any, prepared: Any,
                      callbacks: list[Any], load_kwargs: dict[str, Any]) -> Any:
        from transformers import set_seed
        from trl import GRPOTrainer

        from .. import init_from
        from ..checkpoint_trainer import checkpointing
        from ..models import load_model
        from ..rewards.spec import entries

        model = load_model(recipe.model, load_kwargs, recipe.trust_remote_code)
        set_seed(recipe.seed)  # adapters are initialised in prepare()
        model, peft_config, reference = init_from.start(recipe, strategy, model, args.beta != 0)
        trainer = checkpointing(_guarded(GRPOTrainer))(
            model=model, reward_funcs=[e.scorer for e in entries(recipe)], args=args,
            train_dataset=prepared.train, eval_dataset=prepared.eval, processing_class=prepared.tokenizer,
            peft_config=peft_config, callbacks=callbacks)
        trainer.run_out = recipe.output_dir
        if reference is not None:  # a full run's weights (init_from): TRL built its reference from the
            # base, with its fused log-prob head, dropout off and prepared; it takes the run's weights
            trainer.accelerator.unwrap_model(trainer.ref_model).load_state_dict(reference.state_dict())
            del reference
        return trainer

    def load_run_model(self, run: Any, load_kwargs: dict[str, Any]) -> Any:
        from ..models import load_model

        return load_model(run.recipe.model, load_kwargs, run.recipe.trust_remote_code)

    def score(self, trainer: Any, rows: list[dict[str, Any]], recipe: Any,
              when: str) -> tuple[dict[str, Any], str]:
        from ..rewards.spec import entries
        from ..scores import rewards

        report = rewards.score(trainer.model, trainer.processing_class, rows, entries(recipe),
                               recipe.eval.max_new_tokens, recipe.eval.batch_size, trainer.state)
        return report, f"held-out {when} training (greedy answers): {rewards.line(report)}"

    def compare(self, before: dict[str, Any], after: dict[str, Any]) -> str:
        out = f"reward {before['reward']:.3f} before -> {after['reward']:.3f} after training"
        if "exact_match" in before and "exact_match" in after:
            out += f"; exact match {before['exact_match']:.1%} -> {after['exact_match']:.1%}"
        return out

    def evaluate(self, model: Any, tokenizer: Any, recipe: Any, rows: list[dict[str, Any]], kind: str,
                 where: Callable[[int], str], out: Path, title: str, metric: str, batch_size: int,
                 max_new_tokens: int) -> dict[str, Any]:
        """Each reward of the run's recipe on the greedy answers to `rows`' prompts."""
        from ..data.tokenize import as_chat, conversational
        from ..rewards.spec import check_columns, entries
        from ..rundir import EVAL, write_json
        from ..scores import rewards

        if kind not in self.data_kinds:
            raise UserError(f"--data: a grpo run is scored on prompts (or messages / prompt-completion rows), "
                            f"got {kind} data")
        found = entries(recipe)
        check_columns(found, _columns(rows, kind), "--data", recipe)
        prompts = as_prompts(rows, kind)
        prompts = as_chat(prompts) if conversational("prompt", prompts, tokenizer, recipe.data.template) else prompts
        report = rewards.score(model, tokenizer, prompts, found, max_new_tokens, batch_size)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / EVAL, report)
        return report

    def summarise(self, report: dict[str, Any], rows: int) -> str:
        from ..scores import rewards

        return f"{rewards.line(report)}   ({rows} prompts, greedy answers)"


def _columns(rows: list[dict[str, Any]], kind: str) -> list[str]:
    first = as_prompts(rows[:1], kind)[0] if rows else {}
    return [k for k in first if k != "prompt"]


def _file(where: list[str]) -> str:
    from ..data.sources import file_of

    return file_of(where[0]) if where else "the data"


def _guarded(base: type) -> type:
    """GRPOTrainer whose failing reward (rewards/base.RewardFailed), while training or in an
    evaluation between steps, stops the run after a checkpoint of the last finished step, with
    the reward's one line and how to resume."""
    from ..rewards.base import RewardFailed

    class Guarded(base):  # type: ignore[misc, valid-type]
        run_out: str = ""

        def training_step(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return super().training_step(*args, **kwargs)
            except RewardFailed as exc:
                raise self.stopped(exc) from None

        def evaluate(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return super().evaluate(*args, **kwargs)
            except RewardFailed as exc:
                raise self.stopped(exc) from None

        def stopped(self, exc: RewardFailed) -> RewardFailed:
            """The error to stop with, once the last finished step is checkpointed."""
            step = self.state.global_step
            if step == 0:
                return RewardFailed(f"{exc}; nothing had trained yet: fix the reward and train again")
            self._save_checkpoint(self.model, trial=None)  # every process: they all stop (Scorer)
            return RewardFailed(f"{exc}; stopped at step {step}, its checkpoint kept: fix the reward, then "
                                f"'adapters-sft resume {self.run_out}'")

    return Guarded
