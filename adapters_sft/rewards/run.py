"""`{name: run, path: RUN_DIR}`: a finished `task: reward` run (tasks/reward.py) scoring each
answer of a grpo run: the prompt and the answer read as the reward run read its pairs in
training (its scored_as.json: through its own chat template, or as plain text + EOS), and the
score head's output is the reward. The reward model loads
once, on the first step, onto the device the policy trains on."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fields import option
from .base import Reward


@dataclasses.dataclass
class RunOptions:
    path: str = option("", "a finished task: reward run directory (required)")
    batch_size: int = option(16, "answers scored at once")

    def __post_init__(self) -> None:
        if not self.path:
            raise UserError("path: missing; give a finished reward run, e.g. path: runs/smollm2-135m/reward")


class RunReward(Reward):
    name = "run"
    summary = "the score of a finished reward run (task: reward) on the prompt and the answer"
    Options = RunOptions

    def __init__(self, opts: Any) -> None:
        super().__init__(opts)
        self._loaded: tuple[Any, Any, bool] | None = None

    def check(self, at: str) -> None:
        from ..run_reader import open_run

        try:
            run = open_run(self.opts.path)
        except UserError as exc:
            raise UserError(f"{at}.path: {exc}") from None
        from ..registry import get_task

        if not get_task(run.recipe.task).reward_model:
            raise UserError(f"{at}.path: {run.path} is a {run.recipe.task} run; a reward needs a run of "
                            "task: reward (a reward model), e.g. adapters-sft train smollm2-135m/reward")

    def score(self, answers: list[str], columns: dict[str, list[Any]], completion_ids: list[list[int]],
              prompts: list[Any]) -> list[float | None]:
        import torch

        model, tokenizer, chat = self._model()
        texts = [conversation_text(tokenizer, p, a, chat) for p, a in zip(prompts, answers)]
        out: list[float | None] = []
        device = next(model.parameters()).device
        old, tokenizer.padding_side = tokenizer.padding_side, "right"
        try:
            with torch.no_grad():
                for i in range(0, len(texts), self.opts.batch_size):
                    # a chat template writes its own special tokens; plain text gets the
                    # tokenizer's, as RewardTrainer tokenized it
                    enc = tokenizer(texts[i:i + self.opts.batch_size], padding=True, return_tensors="pt",
                                    add_special_tokens=not chat).to(device)
                    out += model(**enc).logits[:, 0].float().tolist()
        finally:
            tokenizer.padding_side = old
        return out

    def _model(self) -> tuple[Any, Any, bool]:
        if self._loaded is None:
            import torch

            from ..run_reader import load_run

            from ..rundir import SCORED_AS, read_json

            model, tokenizer, recipe = load_run(self.opts.path)
            if torch.cuda.is_available():
                model = model.to("cuda")
            saved = Path(self.opts.path) / SCORED_AS  # how it read its pairs in training
            chat = read_json(saved)["chat"] if saved.is_file() else template_applies(tokenizer, recipe.data.template)
            self._loaded = (model.eval().requires_grad_(False), tokenizer, bool(chat))
        return self._loaded


def template_applies(tokenizer: Any, template: str) -> bool:
    """Whether a reward run without scored_as.json read plain prompts through its chat template
    (as its training did: data/tokenize.conversational)."""
    from ..data.tokenize import conversational

    return conversational("preference", [{"prompt": ""}], tokenizer, template)


def conversation_text(tokenizer: Any, prompt: Any, answer: str, chat: bool) -> str:
    """Prompt and answer as the reward model was trained to read them: TRL's RewardTrainer
    renders conversations with the chat template, and plain pairs as prompt + answer + EOS."""
    if chat:
        turns = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(turns + [{"role": "assistant", "content": answer}], tokenize=False)
    if isinstance(prompt, list):  # a plain-text reward model: the conversation's turns as text
        prompt = "\n".join(str(m.get("content", "")) for m in prompt)
    return prompt + answer + (tokenizer.eos_token or "")
