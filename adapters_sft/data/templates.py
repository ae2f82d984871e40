"""Chat templates with `{% generation %}` markers, for assistant-only loss; templates by name.

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

from ..errors import UserError

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
        raise UserError("data.template: the model has no chat template, so conversations cannot be "
                        f"rendered; name one (data.template={'|'.join(NAMED)})")
    if has_markers(stock):
        return stock
    from trl.chat_template_utils import get_training_chat_template

    try:
        candidate = get_training_chat_template(tokenizer)
    except ValueError:
        candidate = mark_chatml(stock)
    if candidate and renders_identically(tokenizer, stock, candidate):
        return candidate
    raise UserError("data.template: the model's chat template has no {% generation %} markers and "
                    "no known marked equivalent, so assistant-only loss cannot be set up; name a "
                    f"template (data.template={'|'.join(NAMED)}) or set data.train_on_prompt=true")


# Templates by name, for models without one (base models) or with one we cannot mark. Each
# marks assistant turns for the loss, end-of-turn token included, and names that token: it
# becomes the EOS so generation stops where training taught it to (None: the tokenizer's EOS).
_SYSTEM_SPLIT = ("{%- if messages[0]['role'] == 'system' %}{%- set system = messages[0]['content'] %}"
                 "{%- set turns = messages[1:] %}{%- else %}{%- set system = '' %}"
                 "{%- set turns = messages %}{%- endif %}")
NAMED: dict[str, tuple[str, str | None]] = {
    "chatml": ("{% for message in messages %}{% if message['role'] == 'assistant' %}"
               "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}"
               "{% endgeneration %}{{ '\n' }}{% else %}{{ '<|im_start|>' + message['role'] + '\n' + "
               "message['content'] + '<|im_end|>\n' }}{% endif %}{% endfor %}"
               "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}", "<|im_end|>"),
    "llama3": ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
               "'<|end_header_id|>\n\n' }}{% if message['role'] == 'assistant' %}{% generation %}"
               "{{ message['content'] + '<|eot_id|>' }}{% endgeneration %}{% else %}"
               "{{ message['content'] + '<|eot_id|>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}"
               "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}", "<|eot_id|>"),
    "mistral": (_SYSTEM_SPLIT + "{{ bos_token }}{% for message in turns %}{% if message['role'] == 'user' %}"
                "{{ '[INST] ' + (system + '\n\n' if loop.first and system else '') + message['content'] + "
                "' [/INST]' }}{% else %}{% generation %}{{ message['content'] + eos_token }}"
                "{% endgeneration %}{% endif %}{% endfor %}", None),
    "zephyr": ("{% for message in messages %}{{ '<|' + message['role'] + '|>\n' }}"
               "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + eos_token }}"
               "{% endgeneration %}{{ '\n' }}{% else %}{{ message['content'] + eos_token + '\n' }}{% endif %}"
               "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}", None),
}


def setup(tokenizer: Any, name: str, conversational: bool, train_on_prompt: bool) -> str:
    """Put the training template on `tokenizer` (and its EOS, for a named template whose
    turns end on another token). Returns a short description for reports."""
    if name == "none":
        if conversational:
            raise UserError("data.template: 'none' cannot render conversations; name a template "
                            f"({'|'.join(NAMED)}) or leave it at auto")
        return "none (rows are tokenized as plain text)"
    if name == "auto":
        if not conversational:
            return "none needed (plain text rows)"
        if train_on_prompt:  # no masks needed, so the stock template is used as it is
            if not tokenizer.chat_template:
                training_template(tokenizer)  # raises: says to name a template
            return "the model's own"
        marked = training_template(tokenizer)
        same = marked == tokenizer.chat_template
        tokenizer.chat_template = marked
        return "the model's own" + ("" if same else ", with generation markers added (renders identically)")
    template, end = NAMED[name]
    if end is not None:
        ids = tokenizer(end, add_special_tokens=False)["input_ids"]
        if ids != [tokenizer.get_vocab().get(end)]:
            raise UserError(f"data.template: '{name}' ends turns with '{end}', which is not one token "
                            "of this tokenizer, so the model could not learn to stop; pick a template "
                            "built on the model's own special tokens")
        tokenizer.eos_token = end
    tokenizer.chat_template = template
    return f"'{name}' (by name; turns end with {tokenizer.eos_token!r}, the EOS)"
