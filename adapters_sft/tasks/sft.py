"""`task: sft` (the default): a generative model trained by TRL's SFTTrainer on messages,
prompt-completion or plain text; scored by exact match of greedy answers during training, and
by loss, perplexity and exact match (or a user metric) in `adapters-sft eval`."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from ..data.formats import PREFERENCE_KINDS
from ..errors import UserError
from .base import Task


class SftTask(Task):
    name = "sft"
    summary = "a generative model (TRL's SFTTrainer) on messages, prompt-completion or text data"
    data_kinds = ("messages", "prompt-completion", "text")

    def check_data(self, recipe: Any, kind: str) -> None:
        if kind == "classification":
            raise UserError(f"{recipe.where('data.train')}data.train: holds classification rows "
                            "(text, label), which train a classification head; set task=classification, "
                            "or use messages, prompt-completion or text data")
        if kind == "prompt":
            from ..data.formats import PROMPT_ONLY_FIX

            raise UserError(f"{recipe.where('data.train')}data.train: holds prompts without answers; "
                            + PROMPT_ONLY_FIX)
        if kind in PREFERENCE_KINDS:
            rows, task = (("preference rows (prompt, chosen, rejected)", "dpo") if kind == "preference"
                          else ("unpaired preference rows (prompt, completion, label)", "kto"))
            raise UserError(f"{recipe.where('data.train')}data.train: holds {rows}, which train with "
                            f"task={task}; set task={task}, or use messages, prompt-completion or text data")
        super().check_data(recipe, kind)

    def config_class(self) -> type:
        from trl import SFTConfig

        return SFTConfig

    def config_values(self, recipe: Any, training: dict[str, Any]) -> dict[str, Any]:
        # the loss masks were applied when data/tokenize.py ran TRL's preparation
        return {"max_length": recipe.data.max_length, "assistant_only_loss": False,
                "completion_only_loss": False}

    def build_trainer(self, recipe: Any, strategy: Any, args: Any, prepared: Any,
                      callbacks: list[Any], load_kwargs: dict[str, Any]) -> Any:
        from transformers import set_seed
        from trl import SFTTrainer

        from ..checkpoint_trainer import checkpointing
        from ..models import load_model

        tokenizer = prepared.tokenizer
        args = dataclasses.replace(args, **prepared.batching)  # data.packing's choice (data/batching.py)
        if tokenizer.eos_token != args.eos_token and recipe.data.template not in ("auto", "none"):
            # a named template's end-of-turn became the EOS; TRL puts it in the generation config too
            args = dataclasses.replace(args, eos_token=tokenizer.eos_token)
        from .. import init_from

        model = load_model(recipe.model, load_kwargs, recipe.trust_remote_code)
        set_seed(recipe.seed)  # adapters are initialised in prepare(), before SFTTrainer seeds
        model, peft_config, _ = init_from.start(recipe, strategy, model)
        return checkpointing(SFTTrainer)(
            model=model, args=args, train_dataset=prepared.train, eval_dataset=prepared.eval,
            processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)

    def load_run_model(self, run: Any, load_kwargs: dict[str, Any]) -> Any:
        from ..models import load_model

        return load_model(run.recipe.model, load_kwargs, run.recipe.trust_remote_code)

    def score(self, trainer: Any, rows: list[dict[str, Any]], recipe: Any,
              when: str) -> tuple[dict[str, Any], str]:
        from ..scores.generative import exact_match

        result = exact_match(trainer.model, trainer.processing_class, rows, recipe.eval.max_new_tokens,
                             recipe.eval.batch_size)
        return result, (f"held-out exact match {when} training: {result['correct']}/{result['total']} "
                        f"= {result['exact_match']:.1%}")

    def compare(self, before: dict[str, Any], after: dict[str, Any]) -> str:
        return f"exact match {before['exact_match']:.1%} before -> {after['exact_match']:.1%} after training"

    def evaluate(self, model: Any, tokenizer: Any, recipe: Any, rows: list[dict[str, Any]], kind: str,
                 where: Callable[[int], str], out: Path, title: str, metric: str, batch_size: int,
                 max_new_tokens: int) -> dict[str, Any]:
        """Loss and perplexity, then greedy answers scored where rows have a reference."""
        from ..scores import generative
        from ..data.tokenize import as_chat, conversational, tokenize
        from ..rundir import EVAL, write_json
        from ..training.args import training_args

        if kind == "classification":
            raise UserError("--data: (text, label) rows score a classifier; this run is generative")
        if kind not in self.data_kinds:
            raise UserError(f"--data: {kind} rows score a preference run; this is an sft run, scored "
                            f"on {', '.join(self.data_kinds)} rows")
        chat = conversational(kind, rows, tokenizer, recipe.data.template)
        rows = as_chat(rows) if chat else rows
        args = training_args(recipe, has_eval=True)
        dataset = tokenize(rows, kind, tokenizer, args, recipe.data.train_on_prompt)
        report: dict[str, Any] = generative.lm_loss(model, dataset, tokenizer.pad_token_id, batch_size)
        if kind != "text":
            report["answers"] = generative.exact_match(model, tokenizer, rows, max_new_tokens, batch_size,
                                                     metric)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / EVAL, report)
        return report

    def summarise(self, report: dict[str, Any], rows: int) -> str:
        lines = [f"loss {report['loss']:.4f}   perplexity {report['perplexity']:.3f}   "
                 f"({report['tokens']} target tokens in {rows} rows)"]
        answers = report.get("answers")
        if answers and "exact_match" in answers:
            lines.append(f"exact match {answers['correct']}/{answers['total']} = {answers['exact_match']:.1%}")
        elif answers:
            lines.append(f"{answers['metric']} {answers['score']:.4f} (mean over {answers['total']} rows)")
        return "\n".join(lines)
