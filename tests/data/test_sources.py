"""Sources: folders, bundled data, hub ids, column mapping and the seeded validation split."""
from __future__ import annotations

import json

import pytest

from adapters_sft.data import load_splits
from adapters_sft.data.load import read_split
from adapters_sft.data.sources import parse_hub, read
from adapters_sft.errors import UserError

from .corpus import PAIRS, write_all


def test_a_folder_reads_every_file_in_name_order_with_locations(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    (root / "b.jsonl").write_text(json.dumps({"text": "two"}) + "\n")
    (root / "a.json").write_text(json.dumps([{"text": "one"}]))
    (root / ".hidden.jsonl").write_text("not json\n")  # editors' swap files are skipped
    (root / "notes.txt").write_text("ignored")
    rows = list(read(str(root), "data.train"))
    assert [r.value["text"] for r in rows] == ["one", "two"]
    assert rows[0].where.endswith("a.json: record 1") and rows[1].where.endswith("b.jsonl:1")


def test_every_file_type_reads_the_same_rows(tmp_path):
    files = write_all(tmp_path)
    for label, path in files.items():
        split, fmt = read_split(str(path), "data.train")
        assert len(split.rows) == len(PAIRS) and fmt == label.split(" ")[0], label


def test_builtin_data_and_a_near_miss(tmp_path):
    assert len(read_split("builtin:dates/train", "data.train")[0].rows) == 400
    with pytest.raises(UserError, match=r"no bundled dataset 'dates/trian' \(did you mean 'dates/train'\?\)"):
        list(read("builtin:dates/trian", "data.train"))


def test_hub_reference_goes_through_datasets_load_dataset(monkeypatch):
    """No hub here: check our parsing and hand-off; `datasets` does the download."""
    from datasets import Dataset

    calls = []

    def fake_load(name, config, split):
        calls.append((name, config, split))
        return Dataset.from_list([{"instruction": "what is one", "output": "one"}])

    monkeypatch.setattr("datasets.load_dataset", fake_load)
    split, fmt = read_split("hub:tatsu-lab/alpaca:default@train[:10]", "data.train")
    assert calls == [("tatsu-lab/alpaca", "default", "train[:10]")] and fmt == "alpaca"
    assert split.where == ["hub:tatsu-lab/alpaca:default@train[:10]: record 1"]
    assert parse_hub("hub:org/name") == ("org/name", None, "train")


def test_an_unreachable_hub_is_one_clear_error(monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    # offline mode fails at once, as an unreachable hub does after its retries
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match=r"data.train: cannot load hub dataset 'no-such-org/no-such-set'"):
        list(read("hub:no-such-org/no-such-set", "data.train"))


def test_columns_map_user_names_and_errors_name_the_users_column(tiny_recipe, tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"question": "what is one", "answer": "one"}) + "\n"
                    + json.dumps({"question": "what is two"}) + "\n")
    with pytest.raises(UserError, match=r"qa.jsonl:2: missing field 'answer' \(data.columns -> completion\)"):
        load_splits(tiny_recipe("lora", f"data.train={path}", "data.eval=null",
                                'data.columns={"question": "prompt", "answer": "completion"}'))
    path.write_text(json.dumps({"question": "what is one", "answer": "one"}) + "\n")
    splits = load_splits(tiny_recipe("lora", f"data.train={path}", "data.eval=null",
                                     'data.columns={"question": "prompt", "answer": "completion"}'))
    assert splits.train.rows == [{"prompt": "what is one", "completion": "one"}]


@pytest.mark.parametrize("val_size,held", [(0.25, 8), (5, 5)])
def test_val_size_carves_a_seeded_split(val_size, held, tiny_recipe):
    a = load_splits(tiny_recipe("lora", "data.eval=null", f"data.val_size={val_size}"))
    b = load_splits(tiny_recipe("lora", "data.eval=null", f"data.val_size={val_size}"))
    c = load_splits(tiny_recipe("lora", "data.eval=null", f"data.val_size={val_size}", "seed=7"))
    assert len(a.eval.rows) == held and len(a.train.rows) == 32 - held
    assert a.eval.where == b.eval.where != c.eval.where  # same seed, same split
    assert not set(a.eval.where) & set(a.train.where)


@pytest.mark.parametrize("bad", ["0", "1.5", "32", "40"])
def test_val_size_that_leaves_a_side_empty_is_refused(bad, tiny_recipe):
    with pytest.raises(UserError, match="data.val_size: (.* leaves no rows for one side|must be above 0)"):
        load_splits(tiny_recipe("lora", "data.eval=null", f"data.val_size={bad}"))


def test_val_size_with_an_eval_file_is_refused(tiny_recipe):
    with pytest.raises(UserError, match="data.val_size: set only when data.eval is empty"):
        tiny_recipe("lora", "data.val_size=0.1")


def test_a_forced_format_that_does_not_fit_says_so(tiny_recipe, tiny_data):
    with pytest.raises(UserError, match=r"train.jsonl:1: this row is messages, not alpaca as data.format says"):
        load_splits(tiny_recipe("lora", "data.format=alpaca"))
    assert load_splits(tiny_recipe("lora", "data.format=messages")).format == "messages"


def test_csv_fields_keep_unicode_line_separators(tmp_path):
    """U+2028, U+2029 and U+0085 are text inside a field, not row breaks (str.splitlines()
    would split them); quoted newlines stay in their field; line numbers stay right."""
    path = tmp_path / "d.csv"
    path.write_bytes("prompt,completion\r\none\u2028two,a\u0085b\r\n\"three\nfour\",c\u2029d\r\nfive,e\r\n"
                     .encode("utf-8"))
    rows = list(read(str(path), "data.train"))
    assert [r.value for r in rows] == [{"prompt": "one\u2028two", "completion": "a\u0085b"},
                                       {"prompt": "three\nfour", "completion": "c\u2029d"},
                                       {"prompt": "five", "completion": "e"}]
    assert [r.where.rsplit(":", 1)[1] for r in rows] == ["2", "3", "5"]
