"""Preference rows (task dpo): every layout users have in the wild (explicit prompt, implicit
shared prefix, a conversation with chosen/rejected messages, sharegpt spelling, plain text)
normalises to the same TRL pair; unpaired rows (task kto) likewise to TRL's (prompt,
completion, label); bad rows are refused with file:line and the field; `check` shows a pair
with the part each side trains on."""
from __future__ import annotations

import json

import pytest

from adapters_sft.data import load_splits
from adapters_sft.data.formats import RowProblem, detect, normalise
from adapters_sft.errors import UserError

USER, GOOD, BAD = "what is two", "two", "three"
PAIR = {"prompt": [{"role": "user", "content": USER}], "chosen": [{"role": "assistant", "content": GOOD}],
        "rejected": [{"role": "assistant", "content": BAD}]}

LAYOUTS = {
    "explicit": PAIR,
    "implicit": {"chosen": [{"role": "user", "content": USER}, {"role": "assistant", "content": GOOD}],
                 "rejected": [{"role": "user", "content": USER}, {"role": "assistant", "content": BAD}]},
    "messages": {"messages": [{"role": "user", "content": USER}], "chosen": {"role": "assistant", "content": GOOD},
                 "rejected": {"role": "assistant", "content": BAD}},
    "sharegpt": {"conversations": [{"from": "human", "value": USER}], "chosen": {"from": "gpt", "value": GOOD},
                 "rejected": {"from": "gpt", "value": BAD}},
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_normalises_to_one_pair(layout):
    row = LAYOUTS[layout]
    assert detect(row) == "preference"
    assert normalise(row, "preference") == PAIR


def test_plain_text_pairs_stay_text():
    assert normalise({"prompt": USER, "chosen": GOOD, "rejected": BAD}, "preference") == \
        {"prompt": USER, "chosen": GOOD, "rejected": BAD}


@pytest.mark.parametrize("row, problem", [
    ({"prompt": USER, "chosen": GOOD, "rejected": GOOD}, "are the same answer"),
    ({"prompt": USER, "chosen": GOOD}, "missing field 'rejected'"),
    ({"chosen": GOOD, "rejected": BAD}, "missing field 'prompt'"),
    ({"prompt": USER, "chosen": "", "rejected": BAD}, "field 'chosen' is empty"),
    ({"chosen": [{"role": "user", "content": "a"}, {"role": "assistant", "content": GOOD}],
      "rejected": [{"role": "user", "content": "b"}, {"role": "assistant", "content": BAD}]}, "share no first turn"),
    ({"prompt": [{"role": "user", "content": USER}], "chosen": [{"role": "user", "content": GOOD}],
      "rejected": [{"role": "assistant", "content": BAD}]}, "'chosen' must hold the assistant's answer only"),
])
def test_bad_pairs_name_the_field(row, problem):
    with pytest.raises(RowProblem, match=problem):
        normalise(row, "preference")


def test_bad_row_is_refused_with_its_file_and_line(tiny_recipe, tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(PAIR) + "\n" + json.dumps({**PAIR, "rejected": PAIR["chosen"]}) + "\n")
    with pytest.raises(UserError, match=r"pairs.jsonl:2: 'chosen' and 'rejected' are the same answer"):
        load_splits(tiny_recipe("lora", "task=dpo", f"data.train={path}", "data.eval=null"))


def test_check_shows_a_pair_with_what_each_side_trains_on(tiny_recipe, tmp_path, capsys):
    from adapters_sft.cli.main import main

    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(PAIR) + "\n")
    recipe = tmp_path / "dpo.yaml"
    recipe.write_text(json.dumps(tiny_recipe("lora").to_dict() | {"task": "dpo", "eval": {"metric": "none"},
                                                                     "data": {"train": str(path)}}))
    assert main(["check", str(recipe), "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert "trained as preference pairs" in out and "train: 1 pairs" in out
    assert f"[chosen] [[{GOOD}<|im_end|>\n]]" in out and f"[rejected] [[{BAD}<|im_end|>\n]]" in out
    assert f"<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n[chosen]" in out


UNPAIRED = {"prompt": PAIR["prompt"], "completion": PAIR["chosen"], "label": True}
UNPAIRED_LAYOUTS = {
    "explicit": UNPAIRED,
    "messages": {"messages": PAIR["prompt"] + PAIR["chosen"], "label": True},
    "sharegpt": {"conversations": [{"from": "human", "value": USER}, {"from": "gpt", "value": GOOD}], "label": 1},
}


@pytest.mark.parametrize("layout", UNPAIRED_LAYOUTS)
def test_every_unpaired_layout_normalises_to_one_row(layout):
    row = UNPAIRED_LAYOUTS[layout]
    assert detect(row) == "unpaired-preference"
    assert normalise(row, "unpaired-preference") == UNPAIRED


def test_plain_unpaired_rows_stay_text_and_labels_stay_booleans():
    assert normalise({"prompt": USER, "completion": BAD, "label": 0}, "unpaired-preference") == \
        {"prompt": USER, "completion": BAD, "label": False}


@pytest.mark.parametrize("row, problem", [
    ({"prompt": USER, "completion": GOOD, "label": "good"}, r"'label' must be true .* got 'good'"),
    ({"prompt": USER, "completion": GOOD, "label": 2}, r"'label' must be true .* got 2"),
    ({"prompt": USER, "label": True}, "missing field 'completion'"),
    ({"messages": PAIR["prompt"], "label": True}, "has no assistant turn"),
    ({"messages": PAIR["prompt"] + PAIR["chosen"] + PAIR["prompt"], "label": False}, r"messages\[2\]: the last turn"),
])
def test_bad_unpaired_rows_name_the_field(row, problem):
    with pytest.raises(RowProblem, match=problem):
        normalise(row, "unpaired-preference")


def test_a_row_without_its_label_among_unpaired_rows_is_named(tiny_recipe, tmp_path):
    path = tmp_path / "kto.jsonl"
    path.write_text(json.dumps(UNPAIRED) + "\n" + json.dumps({"prompt": USER, "completion": GOOD}) + "\n")
    with pytest.raises(UserError, match=r"kto.jsonl:2: .*prompt-completion.*unpaired-preference"):
        load_splits(tiny_recipe("lora", "task=kto", f"data.train={path}", "data.eval=null"))


def test_check_shows_an_unpaired_row_with_its_label(tiny_recipe, tmp_path, capsys):
    from adapters_sft.cli.main import main

    path = tmp_path / "kto.jsonl"
    path.write_text(json.dumps({**UNPAIRED, "label": False}) + "\n" + json.dumps(UNPAIRED) + "\n")
    recipe = tmp_path / "kto.yaml"
    recipe.write_text(json.dumps(tiny_recipe("lora").to_dict() | {"task": "kto", "eval": {"metric": "none"},
                                                                     "data": {"train": str(path)}}))
    assert main(["check", str(recipe), "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert "train: 2 rows (1 desirable, 1 undesirable)" in out
    assert f"[undesirable] [[{GOOD}<|im_end|>\n]]" in out


def test_check_of_pairs_under_task_sft_is_refused_naming_the_task(tiny_recipe, tmp_path, capsys):
    from adapters_sft.cli.main import main

    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(PAIR) + "\n")
    args = [tiny_recipe("lora").source, f"data.train={path}", "data.eval=null"]
    assert main(["check", *args, "--color", "never"]) == 2  # as train refuses them
    assert "set task=dpo" in capsys.readouterr().err
    assert main(["check", *args, "task=dpo", "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert "train: 1 pairs" in out and f"[chosen] [[{GOOD}<|im_end|>\n]]" in out
