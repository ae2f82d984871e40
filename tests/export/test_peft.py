"""export --format peft: a folder vanilla PEFT loads, giving the run's logits."""
from __future__ import annotations

import pytest
import torch

from adapters_sft.cli.main import main


@pytest.mark.parametrize("strategy", ["lora", "ia3"])
def test_peft_export_loads_in_plain_peft_with_the_runs_logits(strategy, bpe_models, train_run, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adapters_sft import load_run

    run = train_run(bpe_models["llama"], strategy)
    out = tmp_path / "peft"
    assert main(["export", str(run), "--format", "peft", "--out", str(out)]) == 0
    base = AutoModelForCausalLM.from_pretrained(bpe_models["llama"])
    plain = PeftModel.from_pretrained(base, out).eval()
    trained, tok, _ = load_run(run)
    ids = tok("what is cat", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(plain(input_ids=ids).logits, trained(input_ids=ids).logits)
        assert not torch.equal(plain(input_ids=ids).logits,
                               AutoModelForCausalLM.from_pretrained(bpe_models["llama"])(input_ids=ids).logits)
    assert AutoTokenizer.from_pretrained(out).chat_template == tok.chat_template


@pytest.mark.parametrize("strategy,reason", [("head-only", "PEFT cannot hold a trained head on its own"),
                                             ("full", "trains no PEFT adapter"),
                                             ("adapter", "bottleneck adapters are not a PEFT adapter type")])
def test_peft_export_says_why_not(strategy, reason, bpe_models, train_run, tmp_path, capsys):
    run = train_run(bpe_models["llama"], strategy)
    capsys.readouterr()
    assert main(["export", str(run), "--format", "peft", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert reason in err
    assert "--format safetensors" in err or "adapters-sft generate/chat" in err
    assert not (tmp_path / "p").exists()
