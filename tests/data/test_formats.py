"""The same conversations in every format (and file type) give identical token ids and loss
masks; plain text trains on everything and ends on EOS; classification rows are read and
checked."""
from __future__ import annotations

import json
import re

import pytest

from adapters_sft.data import load_splits
from adapters_sft.data.formats import RowProblem, normalise
from adapters_sft.data.tokenize import prepare
from adapters_sft.training.args import training_args

from .corpus import PAIRS, write_all


def _prepared(recipe, tmp_path):
    splits = load_splits(recipe)
    return splits, prepare(recipe, splits, training_args(recipe, tmp_path / "c"))


def test_every_format_gives_identical_ids_and_masks(tiny_recipe, tmp_path):
    files = write_all(tmp_path / "d")
    seen = {}
    for label, path in files.items():
        splits, ready = _prepared(tiny_recipe("lora", f"data.train={path}", "data.eval=null"), tmp_path)
        assert splits.kind in ("messages", "prompt-completion"), label
        seen[label] = [(r["input_ids"], r["labels"]) for r in ready.train]
    reference = seen.pop("messages")
    for label, rows in seen.items():
        assert rows == reference, f"{label} differs from messages"
    # and the masks are the right ones: each row trains exactly its answer and the end of turn
    tok = ready.tokenizer
    for (ids, labels), (_, answer) in zip(reference, PAIRS):
        trained = [t for t, lab in zip(ids, labels) if lab != -100]
        assert trained == tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]


def test_system_prompt_is_kept_by_every_format_that_has_one(tiny_recipe, tmp_path):
    conv = [{"role": "system", "content": "hello"}, {"role": "user", "content": "what is one"},
            {"role": "assistant", "content": "one"}]
    rows = {"messages": {"messages": conv},
            "sharegpt": {"conversations": [{"from": m["role"].replace("user", "human").replace(
                "assistant", "gpt"), "value": m["content"]} for m in conv]},
            "alpaca": {"system": "hello", "instruction": "what is one", "output": "one"}}
    ids = set()
    for name, row in rows.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(json.dumps(row) + "\n")
        _, ready = _prepared(tiny_recipe("lora", f"data.train={path}", "data.eval=null"), tmp_path)
        ids.add(tuple(ready.train[0]["input_ids"]))
        assert normalise(row, name)["messages"][0] == conv[0]
    assert len(ids) == 1


def test_alpaca_input_joins_the_instruction():
    row = normalise({"instruction": "convert", "input": "the date", "output": "a"}, "alpaca")
    assert row["messages"][0] == {"role": "user", "content": "convert\n\nthe date"}


def test_text_trains_everything_and_ends_on_eos(tiny_recipe, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"text": "one two three"}) + "\n")
    _, ready = _prepared(tiny_recipe("lora", f"data.train={path}", "data.eval=null"), tmp_path)
    row, tok = ready.train[0], ready.tokenizer
    assert row["labels"] == row["input_ids"]
    assert row["input_ids"] == tok("one two three")["input_ids"] + [tok.eos_token_id]


def test_plain_prompt_completion_stays_raw_with_template_none(tiny_recipe, tmp_path):
    path = tmp_path / "pc.jsonl"
    path.write_text(json.dumps({"prompt": "what is one", "completion": " one"}) + "\n")
    _, ready = _prepared(tiny_recipe("lora", f"data.train={path}", "data.eval=null", "data.template=none"), tmp_path)
    tok = ready.tokenizer
    ids, labels = ready.train[0]["input_ids"], ready.train[0]["labels"]
    assert tok.convert_ids_to_tokens(ids)[:5] == ["what", " ", "is", " ", "one"]  # no chat markup
    assert [t for t, lab in zip(ids, labels) if lab != -100] == tok(" one", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]


def test_classification_rows_are_read_and_checked(tiny_recipe, tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n"
                            for t, lab in [("red", "colour"), ("cat", "animal"), ("dog", "animal")]))
    from adapters_sft.registry import get_task

    recipe = tiny_recipe("lora", "task=classification", f"data.train={path}", "data.eval=null")
    splits = load_splits(recipe)
    ready = get_task("classification").tokenize(recipe, splits, training_args(recipe, tmp_path / "c"))
    assert splits.kind == "classification" and [r["label"] for r in splits.train.rows] == ["colour", "animal", "animal"]
    assert any("labels {'animal': 2, 'colour': 1}" in line for line in ready.report.splits)
    with pytest.raises(RowProblem, match="field 'label' must be a string or an integer, got float"):
        normalise({"text": "x", "label": 0.5}, "classification")


def test_prompt_rows_keep_every_other_column_for_the_rewards():
    from adapters_sft.data.formats import detect

    row = {"prompt": [{"role": "user", "content": "2+2?"}], "answer": "4", "difficulty": 1}
    assert detect(row) == "prompt" and detect({"prompt": "2+2?", "answer": "4"}) == "prompt"
    assert normalise(row, "prompt") == row
    assert normalise({"prompt": "2+2?", "answer": "4"}, "prompt") == {"prompt": "2+2?", "answer": "4"}


@pytest.mark.parametrize("row, words", [
    ({"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
     "must be a non-empty list of messages ending with a user turn"),
    ({"prompt": "", "answer": "4"}, "field 'prompt' is empty"),
    ({"prompt": "2+2?", "completions": "4"}, "column 'completions' is a name TRL's GRPOTrainer uses itself"),
    ({"prompt": "2+2?", "trainer_state": 1}, "rename it (data.columns: {trainer_state: trainer_state_ref})"),
])
def test_bad_prompt_rows_name_the_field(row, words):
    with pytest.raises(RowProblem, match=re.escape(words)):
        normalise(row, "prompt")


def test_prompts_without_answers_under_task_sft_point_to_grpo(tiny_recipe, tmp_path):
    from adapters_sft.errors import UserError
    from adapters_sft.preflight import rules

    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "what is hi", "answer": "hi"}) + "\n")
    with pytest.raises(UserError, match=r"data.train: holds prompts without answers; give each prompt a "
                                        r".completion. \(task sft\), or .chosen. and .rejected. answers \(task "
                                        r"dpo\), or keep them as they are and learn from rewards: task=grpo with "
                                        r"rewards:$"):
        rules(tiny_recipe("lora", f"data.train={data}", "data.eval=null"), full=False)
