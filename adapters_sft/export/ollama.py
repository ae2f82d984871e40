"""An Ollama `Modelfile` beside an exported GGUF.

Ollama templates are Go templates, not Jinja. For ChatML templates (SmolLM2, Qwen2, our
`chatml`) we write the equivalent Go template, with the default system prompt the Jinja
template inserts; for any other template we leave TEMPLATE out, and Ollama falls back on the
`tokenizer.chat_template` embedded in the GGUF, which it matches against the templates it knows.
"""
from __future__ import annotations

from typing import Any

# Ollama gives a template .System (every system message, joined) and .Messages, which in
# current releases still holds the system messages (older ones dropped them): the range
# skips them, or the system prompt would be rendered twice. Checked with Go's text/template
# in tests/export/test_ollama.py, for both shapes.
_CHATML = (
    '{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
    '{{- range .Messages }}{{- if ne .Role "system" }}<|im_start|>{{ .Role }}\n{{ .Content }}'
    '<|im_end|>\n{{ end }}{{- end }}'
    '<|im_start|>assistant\n')


def default_system(tokenizer: Any) -> str | None:
    """The system prompt a ChatML template adds when the conversation has none."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
    head = "<|im_start|>system\n"
    if text.startswith(head) and "<|im_end|>" in text:
        return text[len(head):text.index("<|im_end|>")]
    return None


def modelfile(gguf_name: str, tokenizer: Any) -> str:
    lines = ["# Ollama: ollama create NAME -f Modelfile && ollama run NAME",
             f"FROM ./{gguf_name}"]
    template = tokenizer.chat_template or ""
    if "<|im_start|>" in template:
        lines.append(f'TEMPLATE """{_CHATML}"""')
        system = default_system(tokenizer)
        if system:
            lines.append(f'SYSTEM """{system}"""')
    else:
        lines.append("# TEMPLATE: none written; Ollama uses the chat template embedded in the GGUF")
    if tokenizer.eos_token:
        lines.append(f'PARAMETER stop "{tokenizer.eos_token}"')
    return "\n".join(lines) + "\n"
