"""`{name: run, path: RUN_DIR}`: a finished `task: reward` run (tasks/reward.py) scoring each
answer of a grpo run: the prompt and the answer as one conversation, rendered with the reward
run's own chat template, and the score head's output is the reward. The reward model loads
once, on the first step, onto the device the policy trains on."""
from __future__ import annotations

import dataclasses
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
        self._loaded: tuple[Any, Any, str] | None = None

    def check(self, at: str) -> None:
        from ..run_reader import open_run

        try:
            run = open_run(self.opts.path)
        except UserError as exc:
            raise UserError(f"{at}.path: {exc}") from None
        if run.recipe.task != "reward":
            raise UserError(f"{at}.path: {run.path} is a {run.recipe.task} run; a reward needs a run of "
                            "task: reward (a reward model), e.g. adapters-sft train smollm2-135m/reward")

    def score(self, answers: list[str], columns: dict[str, list[Any]], completion_ids: list[list[int]],
              prompts: list[Any]) -> list[float | None]:
        import torch

        model, tokenizer, template = self._model()
        chat = isinstance(prompts[0], list) or template_applies(tokenizer, template)
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

    def _model(self) -> tuple[Any, Any, str]:
        if self._loaded is None:
            import torch

            from ..run_reader import load_run

            model, tokenizer, recipe = load_run(self.opts.path)
            if torch.cuda.is_available():
                model = model.to("cuda")
            self._loaded = (model.eval().requires_grad_(False), tokenizer, recipe.data.template)
        return self._loaded


def template_applies(tokenizer: Any, template: str) -> bool:
    """Whether the reward run read plain prompts through its chat template (as its training
    did: data/tokenize.conversational)."""
    from ..data.tokenize import conversational

    return conversational("preference", [{"prompt": ""}], tokenizer, template)


def conversation_text(tokenizer: Any, prompt: Any, answer: str, chat: bool) -> str:
    """Prompt and answer as the reward model was trained to read them: TRL's RewardTrainer
    renders conversations with the chat template, and plain pairs as prompt + answer + EOS."""
    if chat:
        turns = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(turns + [{"role": "assistant", "content": answer}], tokenize=False)
    return prompt + answer + (tokenizer.eos_token or "")
