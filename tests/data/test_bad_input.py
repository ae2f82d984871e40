"""The bad-input corpus (tests/data/bad/): each file gives `check` and `train` one line on
stderr naming the file, the line or record, and the field; exit status 2; nothing written."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters_sft.cli.main import main

BAD = Path(__file__).parent / "bad"

# (file, where: ":line" or ": record N", text the message must hold)
CASES = [
    ("invalid_json.jsonl", ":3", "invalid JSON"),
    ("truncated.jsonl", ":2", "invalid JSON (Unterminated string starting at column 49) (the line ends "
                              "before its JSON does: cut short?)"),
    ("array_saved_as.jsonl", "", "holds one JSON list of records, not one record per line; rename it "
                                 "to array_saved_as.json"),
    ("missing_field.jsonl", ":2", "missing field 'output'"),
    ("wrong_type.jsonl", ":2", "field 'prompt' must be a string, got int"),
    ("unknown_role.jsonl", ":2", "messages[1].role is 'robot'; expected one of system, user, assistant"),
    ("empty_assistant.jsonl", ":3", "messages[1].content: empty assistant turn"),
    ("empty.jsonl", "", "holds no rows"),
    ("not_utf8.jsonl", ":2", "not UTF-8 text"),
    ("missing_column.csv", ":2", "missing field 'output'"),
    ("starts_with_assistant.jsonl", ":1", "messages[1]: the conversation starts with an assistant turn"),
    ("label_wrong_type.jsonl", ":2", "field 'label' must be a string or an integer, got list"),
    ("label_mixed_types.jsonl", ":3", "field 'label' is of type str but"),
    ("mixed_formats.jsonl", ":3", "mixed_formats.jsonl:1 is messages; keep one format per file"),
    ("mixed_folder", "/b.csv:2", "this file is alpaca but "),
    ("lone_surrogate.jsonl", ":2", "lone surrogate escape (\\ud800)"),
    ("lone_surrogate.json", ": record 2", "lone surrogate escape (\\udfff)"),
    ("unknown_format.jsonl", ":1", "cannot tell the format from fields ['answer', 'question']"),
    ("not_a_list.json", "", "expected a JSON list of records, got a dict"),
    ("invalid.json", ":4", "invalid JSON (Expecting ',' delimiter"),
    ("extra_fields.csv", ":3", "3 fields but the header has 2"),
    ("sharegpt_bad_from.json", ": record 1", "conversations[1].from is 'bot'"),
    ("no_assistant.jsonl", ":1", "has no assistant turn"),
    ("system_not_first.jsonl", ":1", "messages[1]: a system message may only come first"),
    ("empty_text.jsonl", ":2", "field 'text' is empty"),
    ("not_an_object.jsonl", ":2", "expected a JSON object (one record), got list"),
    ("does_not_exist.jsonl", "", "not found"),
]


def _recipe(tmp_path: Path, model: Path) -> Path:
    body = {"model": str(model), "strategy": {"name": "lora"}, "data": {"train": "set-below"},
            "training": {"max_steps": 1}, "output_dir": str(tmp_path / "run")}
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps(body))
    return path


def _one_line_exit_2(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("adapters-sft: error: ") and "Traceback" not in err
    return err


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 15 and all((BAD / name).exists() for name, _, _ in CASES
                                    if name != "does_not_exist.jsonl")


@pytest.mark.parametrize("name,where,text", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("verb", ["check", "train"])
def test_bad_file_one_line_exit_2_nothing_written(verb, name, where, text, tmp_path, tiny_model_dir, capsys):
    recipe = _recipe(tmp_path, tiny_model_dir)
    err = _one_line_exit_2([verb, str(recipe), f"data.train={BAD / name}"], capsys)
    assert f"{name}{where}" in err and text in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml"]  # no run, no partial run


def test_a_10_mb_line_is_refused_without_echoing_it(tmp_path, tiny_model_dir, capsys):
    big = tmp_path / "big.jsonl"
    big.write_text(json.dumps({"text": "one"}) + "\n" + json.dumps({"text": "x" * 10_000_000}) + "\n")
    err = _one_line_exit_2(["check", str(_recipe(tmp_path, tiny_model_dir)), f"data.train={big}"], capsys)
    assert "big.jsonl:2: line is 9.5 MB, over the 4 MB limit" in err and len(err) < 400, err


def test_several_bad_lines_are_reported_together(tmp_path, tiny_model_dir, capsys):
    ok = json.dumps({"text": "one"})
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join([ok, "{", ok, '{"text": 3}', ok, '{"text": ""}', "{"]) + "\n")
    err = _one_line_exit_2(["check", str(_recipe(tmp_path, tiny_model_dir)), f"data.train={data}"], capsys)
    assert all(f"d.jsonl:{n}:" in err for n in (2, 4, 6)) and "(and possibly more)" in err, err


def test_mixed_folder_names_both_files(tmp_path, tiny_model_dir, capsys):
    err = _one_line_exit_2(["check", str(_recipe(tmp_path, tiny_model_dir)),
                            f"data.train={BAD / 'mixed_folder'}"], capsys)
    assert f"{BAD / 'mixed_folder' / 'a.jsonl'} (read first) is messages" in err, err
    assert "every file of a folder must hold one format" in err, err


def test_label_types_differ_between_train_and_eval(tmp_path, tiny_model_dir, capsys):
    train, held = tmp_path / "t.jsonl", tmp_path / "e.jsonl"
    train.write_text("".join(json.dumps({"text": f"one {i}", "label": i % 2}) + "\n" for i in range(4)))
    held.write_text("".join(json.dumps({"text": f"two {i}", "label": "ab"[i % 2]}) + "\n" for i in range(2)))
    err = _one_line_exit_2(["check", str(_recipe(tmp_path, tiny_model_dir)), "task=classification",
                            f"data.train={train}", f"data.eval={held}"], capsys)
    assert "e.jsonl:1: label 'a' is str but training labels are int" in err, err
    assert "write labels the same way in both files" in err, err
