"""Advice that leads somewhere: a refusal's suggested change, applied, is accepted."""
from __future__ import annotations

import json

import pytest

from adapters_sft.cli.main import main
from adapters_sft.errors import UserError


def _refusal(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_prompt_only_rows_are_told_both_ways_to_finish_them(tmp_path, capsys):
    rows = tmp_path / "prompts.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"what is {i}"}) + "\n" for i in range(4)))
    for recipe in ("smollm2-135m/dpo", "smollm2-135m/lora"):
        err = _refusal(["validate", recipe, f"data.train={rows}", "data.eval=null"], capsys)
        assert "'completion'" in err and "'chosen' and 'rejected'" in err
    # each suggestion, applied, is accepted by the recipe it fits
    paired = tmp_path / "pairs.jsonl"
    paired.write_text("".join(json.dumps({"prompt": f"what is {i}", "chosen": "yes", "rejected": "no"})
                              + "\n" for i in range(4)))
    assert main(["validate", "smollm2-135m/dpo", f"data.train={paired}", "data.eval=null", "eval.metric=none"]) == 0
    answered = tmp_path / "answered.jsonl"
    answered.write_text("".join(json.dumps({"prompt": f"what is {i}", "completion": " four"}) + "\n"
                                for i in range(4)))
    assert main(["validate", "smollm2-135m/lora", f"data.train={answered}", "data.eval=null", "eval.metric=none"]) == 0


@pytest.mark.parametrize("turns", [[5], ["hi"], [None]])
def test_preference_conversations_whose_turns_are_not_objects_are_one_line(turns, tmp_path, capsys):
    rows = tmp_path / "p.jsonl"
    answer = {"role": "assistant", "content": "a"}
    rows.write_text(json.dumps({"conversations": turns, "chosen": answer,
                                "rejected": {**answer, "content": "b"}}) + "\n")
    err = _refusal(["validate", "smollm2-135m/dpo", f"data.train={rows}", "data.eval=null"], capsys)
    assert "conversations[0] must be an object" in err and "Traceback" not in err


def test_init_from_an_unsupported_run_suggests_what_works(tiny_recipe, tmp_path):
    from adapters_sft import init_from
    from adapters_sft.trainer import train

    run = train(tiny_recipe("adapter", "training.max_steps=1", "eval.metric=none",
                            f"output_dir={tmp_path / 'bottleneck'}"), echo=lambda _: None).run_dir
    for strategy in ("lora", "adapter"):  # whatever this recipe's strategy, the same advice
        recipe = tiny_recipe(strategy, f"init_from={run}", f"output_dir={tmp_path / 'next'}")
        with pytest.raises(UserError, match="not supported") as refused:
            init_from.check(recipe)
        assert "strategy=adapter" not in str(refused.value) and "remove init_from" in str(refused.value)
        assert init_from.check(tiny_recipe(strategy, "init_from=null")) is None  # the fix, applied
