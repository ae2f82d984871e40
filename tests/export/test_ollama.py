"""The Modelfile's TEMPLATE and SYSTEM, rendered by Go's text/template (the engine Ollama
uses) with the data Ollama gives it, must produce exactly the prompt the run's Jinja chat
template produces. Needs the Go toolchain (Debian: apt-get install golang-go); skipped without."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from adapters_sft.export.ollama import modelfile
from tests.conftest import make_tokenizer

RENDER = Path(__file__).resolve().parent.parent / "ollama_render.go"

CONVERSATIONS = [
    [{"role": "user", "content": "what is one"}],
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what is two"}],
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
     {"role": "user", "content": "what is the date today"}],
]


def _ollama_prompt(file: str, conversation: list[dict], keep_system: bool, tmp_path: Path) -> str:
    template = re.search(r'TEMPLATE """(.*?)"""', file, re.S).group(1)
    system = re.search(r'SYSTEM """(.*?)"""', file, re.S)
    messages = [{"Role": m["role"], "Content": m["content"]} for m in conversation]
    if system and not any(m["role"] == "system" for m in conversation):
        messages.insert(0, {"Role": "system", "Content": system.group(1)})  # Ollama adds SYSTEM
    request = {"template": template, "messages": messages, "keep_system": keep_system,
               "system": "\n\n".join(m["Content"] for m in messages if m["Role"] == "system")}
    done = subprocess.run(["go", "run", str(RENDER)], input=json.dumps(request), capture_output=True,
                          text=True, timeout=300, env={**__import__("os").environ,
                                                       "GOCACHE": str(tmp_path / "gocache")})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain (apt-get install golang-go)")
@pytest.mark.parametrize("keep_system", [True, False], ids=["current-ollama", "older-ollama"])
def test_modelfile_template_renders_as_the_runs_chat_template(keep_system, tmp_path):
    tokenizer = make_tokenizer()  # SmolLM2's ChatML template, default system prompt included
    file = modelfile("run.f16.gguf", tokenizer)
    for conversation in CONVERSATIONS:
        expected = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        assert _ollama_prompt(file, conversation, keep_system, tmp_path) == expected
