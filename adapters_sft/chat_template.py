"""Chat templates with `{% generation %}` markers, for assistant-only loss.

TRL masks the loss to assistant turns only when the template marks them with
`{% generation %}...{% endgeneration %}`. Most stock templates (SmolLM2's among them) have no
markers, and TRL's own replacement covers a fixed list of models. For ChatML templates we add
the markers ourselves around each assistant turn's content and its end-of-turn token, then
prove on probe conversations that the marked template renders byte-identical text. The
template used is saved with the run's tokenizer, so inference sees the same format.
"""
from __future__ import annotations

import re
from typing import Any

from .errors import UserError

# The per-message ChatML emit (newlines written as \\n or literally) found in SmolLM/SmolLM2 and many other ChatML templates.
_CHATML_EMIT = re.compile(
    r"\{\{\s*'<\|im_start\|>'\s*\+\s*message\['role'\]\s*\+\s*'(?:\\n|\n)'\s*\+\s*"
    r"message\['content'\]\s*\+\s*'<\|im_end\|>'\s*\+\s*'(?:\\n|\n)'\s*\}\}")
_MARKED_EMIT = (
    "{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\\n' }}{% generation %}"
    "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endif %}")

_PROBES = [
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a\nb"},
     {"role": "assistant", "content": "c"}, {"role": "user", "content": "d"},
     {"role": "assistant", "content": " e "}],
]


def has_markers(template: str | None) -> bool:
    return bool(template) and re.search(r"\{%-?\s*generation\s*-?%\}", template) is not None


def mark_chatml(template: str) -> str | None:
    """The template with generation markers added, or None if it is not a ChatML emit."""
    if not _CHATML_EMIT.search(template):
        return None
    return _CHATML_EMIT.sub(lambda _: _MARKED_EMIT, template)


def renders_identically(tokenizer: Any, a: str, b: str) -> bool:
    for conv in _PROBES:
        for gen in (False, True):
            msgs = conv[:-1] if gen else conv
            ra = tokenizer.apply_chat_template(msgs, chat_template=a, tokenize=False, add_generation_prompt=gen)
            rb = tokenizer.apply_chat_template(msgs, chat_template=b, tokenize=False, add_generation_prompt=gen)
            if ra != rb:
                return False
    return True


def training_template(tokenizer: Any) -> str:
    """A template with generation markers that renders exactly like the tokenizer's own."""
    stock = tokenizer.chat_template
    if not stock:
        raise UserError("model: the tokenizer has no chat template, so conversations cannot be "
                        "rendered; use prompt-completion or text data (data.format)")
    if has_markers(stock):
        return stock
    from trl.chat_template_utils import get_training_chat_template

    try:
        candidate = get_training_chat_template(tokenizer)
    except ValueError:
        candidate = mark_chatml(stock)
    if candidate and renders_identically(tokenizer, stock, candidate):
        return candidate
    raise UserError("model: its chat template has no {% generation %} markers and no known "
                    "marked equivalent, so assistant-only loss cannot be set up; set "
                    "data.train_on_prompt=true to train on whole conversations")
