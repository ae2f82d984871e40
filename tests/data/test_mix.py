"""Data mixing (data/mix.py): a list of sources in their own formats, sized by weight or row
count, shown source by source by `check`, trained as one set, covered by the fingerprint,
and bad mixes refused in one line."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from adapters_sft.cli.main import main
from adapters_sft.data import mix
from adapters_sft.fingerprint import differences, fingerprint
from tests.conftest import WORDS


def src(**kw) -> mix.Source:
    return mix.Source(path="x", **kw)


@pytest.mark.parametrize("sizes, sources, expected", [
    ([100, 50], [src(), src(weight=0.2)], [100, 25]),        # 25 of 125 is 20%
    ([100, 10], [src(), src(weight=0.5)], [100, 100]),       # past its size: repeated
    ([100, 50], [src(rows=30), src()], [30, 50]),
    ([100, 50], [src(weight=0.75), src(weight=0.25)], [112, 38]),  # all weighted: the total stays
])
def test_each_source_gives_its_share(sizes, sources, expected):
    assert mix.counts(sizes, sources) == expected


def test_a_draw_repeats_every_row_before_any_row_a_third_time():
    rows, where = mix.draw([{"i": i} for i in range(4)], [f"f:{i}" for i in range(4)], 10, seed=0)
    seen = [r["i"] for r in rows]
    assert sorted(seen[:4]) == sorted(seen[4:8]) == [0, 1, 2, 3] and len(seen) == 10
    assert where[0] == f"f:{seen[0]}"


def write_sources(tmp_path: Path) -> tuple[Path, Path]:
    """Conversations in JSONL, and prompt-completion rows in CSV: two files, two formats."""
    chats = tmp_path / "chats.jsonl"
    chats.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"{WORDS[i]} {WORDS[i + 1]}"},
        {"role": "assistant", "content": WORDS[i + 2]}]}) + "\n" for i in range(12)))
    table = tmp_path / "pairs.csv"
    with table.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["prompt", "completion"])
        for i in range(8):
            out.writerow([f"what is {WORDS[10 + i]}", f"{WORDS[20 + i]} {WORDS[21 + i]}"])
    return chats, table


def mixed(chats: Path, table: Path, weight: float = 0.25) -> str:
    return f"data.train=[{{path: {chats}}}, {{path: {table}, weight: {weight}}}]"


def test_check_shows_every_source_with_its_rows_tokens_and_mask(tiny_recipe, tmp_path, capsys):
    chats, table = write_sources(tmp_path)
    tiny_recipe("lora")
    assert main(["check", str(tmp_path / "lora.yaml"), mixed(chats, table)]) == 0
    out = capsys.readouterr().out
    assert "train: a mix of 2 sources (data.train):" in out
    assert f"[0] {chats} (messages): 12 rows, 75.0% of the mix;" in out
    assert f"[1] {table} (prompt-completion, trained as conversations): 4 rows of 8, 25.0% of the mix;" in out
    assert "train: 16 rows;" in out
    examples = [line for line in out.splitlines() if line.startswith("example (")]
    assert len(examples) == 2 and str(table) in examples[1]
    # the prompt-completion row trains on its completion only, like the conversations
    shown = out.split(examples[1])[1].split("\n\n")[0]
    assert shown.count("[[") == 1 and shown.split("[[")[0].rstrip().endswith("assistant")
    assert shown.split("[[")[1].startswith(tuple(WORDS[20:28]))


def test_a_mix_trains_and_the_fingerprint_covers_each_source(tiny_recipe, tmp_path, capsys):
    chats, table = write_sources(tmp_path)
    recipe = tiny_recipe("lora", mixed(chats, table))
    from adapters_sft.trainer import train

    result = train(recipe, echo=lambda *_: None)
    saved = json.loads((result.run_dir / "fingerprint.json").read_text())
    assert set(saved["data"]["sources"]) == {str(chats), str(table)}
    assert saved["rows"]["train"] == 16
    from adapters_sft.data import load_splits

    with table.open("a") as f:
        f.write("what is red,blue green\n")  # a row that may not be drawn still changes the source
    now = fingerprint(recipe, load_splits(recipe))
    said = differences(saved, now)
    assert any(f"source {table} of data.train" in d for d in said), said
    import yaml

    train_refs = yaml.safe_load((result.run_dir / "recipe.yaml").read_text())["data"]["train"]
    assert [Path(s["path"]).is_absolute() for s in train_refs] == [True, True]


@pytest.mark.parametrize("value, said", [
    ("[{path: A, weight: 0.5, rows: 3}]", "data.train[0]: give weight or rows, not both"),
    ("[{path: A, weight: 0.6}, {path: B, weight: 0.5}, {path: A}]", "the weights add up to 1.1"),
    ("[{path: A, weight: 1.5}]", "data.train[0].weight: must be in (0, 1)"),
    ("[{path: A, size: 3}]", "unknown key 'data.train[0].size'"),
    ("[{weight: 0.5}]", "data.train[0].path: missing"),
    ("[]", "data.train: an empty list"),
    ("[{path: A, format: jsonl}]", "data.train[0].format: must be auto or one of"),
])
def test_a_bad_mix_is_one_line(tiny_recipe, tmp_path, capsys, value, said):
    chats, _ = write_sources(tmp_path)
    tiny_recipe("lora")
    assert main(["validate", str(tmp_path / "lora.yaml"), f"data.train={value.replace('A', str(chats)).replace('B', str(chats))}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err, err


def test_sources_of_two_kinds_that_do_not_mix_are_refused(tiny_recipe, tmp_path, capsys):
    chats, _ = write_sources(tmp_path)
    text = tmp_path / "plain.jsonl"
    text.write_text("".join(json.dumps({"text": f"{w} {w}"}) + "\n" for w in WORDS[:6]))
    tiny_recipe("lora")
    assert main(["check", str(tmp_path / "lora.yaml"), f"data.train=[{chats}, {text}]"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"data.train[1]: {text} holds text rows but data.train[0] holds messages rows" in err
