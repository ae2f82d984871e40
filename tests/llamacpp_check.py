"""What the llama.cpp tests compare: a run's held-out prompts, as its tokenizer renders and
encodes them and as its merged model continues them in transformers, against what llama.cpp
makes of the exported GGUF (tests/llamacpp_probe.py, in a child process so that a crash in
llama.cpp fails the test with its exit status instead of killing pytest)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

PROBE = Path(__file__).resolve().parent / "llamacpp_probe.py"


def reference(run_dir: Path, new_tokens: int, rows: int = 4) -> dict[str, Any]:
    """Prompts rendered by the run's template, their ids, and the merged model's greedy
    continuations in transformers (float32)."""
    import torch

    from adapters_sft.rundir import read_heldout
    from adapters_sft.run_reader import load_run

    model, tokenizer, _ = load_run(run_dir)
    merged = (model.merge_and_unload() if hasattr(model, "merge_and_unload") else model).eval()
    conversations = [r["messages"][:-1] for r in read_heldout(run_dir)[0].rows[:rows]]
    texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
             for c in conversations]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    continuations = []
    with torch.no_grad():
        for prompt in ids:
            out = merged.generate(torch.tensor([prompt]), max_new_tokens=new_tokens, do_sample=False)
            continuations.append(out[0, len(prompt):].tolist())
    return {"texts": texts, "ids": ids, "continuations": continuations, "eos": tokenizer.eos_token_id,
            "conversations": conversations, "new_tokens": new_tokens}


def probe(gguf: Path, texts: list[str], tmp_path: Path, prompts: list[list[int]] = (),
          new_tokens: int = 0, conversations: list[list[dict]] = ()) -> dict[str, Any]:
    """llama.cpp's metadata, tokens of `texts`, greedy continuations of `prompts` and the
    embedded template's rendering of `conversations`, for one GGUF file."""
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"texts": texts, "prompts": list(prompts), "new_tokens": new_tokens,
                                   "conversations": list(conversations)}))
    done = subprocess.run([sys.executable, str(PROBE), str(gguf), str(request)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"llama.cpp failed (exit {done.returncode}): {done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def probe_run(gguf: Path, ref: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    return probe(gguf, ref["texts"], tmp_path, ref["ids"], ref["new_tokens"], ref["conversations"])


def until_eos(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


def assert_same_as_transformers(got: dict[str, Any], ref: dict[str, Any]) -> None:
    """(b) the same ids for the same text, (c) the same greedy continuations, token for token,
    (d) the embedded template renders the run's prompts."""
    assert got["tokens"] == ref["ids"]
    ours = [until_eos(c, ref["eos"]) for c in ref["continuations"]]
    theirs = [until_eos(c, got["eos"]) for c in got["continuations"]]
    assert theirs == ours
    assert got["rendered"] == ref["texts"]
