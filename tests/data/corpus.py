"""One small dataset written in every format and file type, for equivalence tests."""
from __future__ import annotations

import csv
import json
from pathlib import Path

# (user, assistant) pairs; words the tiny test tokenizer knows, prose the real one splits freely
PAIRS = [("what is one", "one"), ("what is two", "two two"), ("convert the date", "a b c"),
         ("what is red", "red"), ("hello", "hi yes")]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_all(root: Path, pairs: list[tuple[str, str]] = PAIRS) -> dict[str, Path]:
    """{format label: file}; every file holds the same conversations."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    out = {
        "messages": _jsonl(root / "messages.jsonl", [
            {"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]}
            for u, a in pairs]),
        "prompt-completion (conversational)": _jsonl(root / "conv_pc.jsonl", [
            {"prompt": [{"role": "user", "content": u}], "completion": [{"role": "assistant", "content": a}]}
            for u, a in pairs]),
    }
    out["sharegpt"] = root / "sharegpt.json"
    out["sharegpt"].write_text(json.dumps([{"conversations": [{"from": "human", "value": u},
                                                               {"from": "gpt", "value": a}]}
                                           for u, a in pairs], indent=1), encoding="utf-8")
    out["alpaca"] = root / "alpaca.csv"
    with open(out["alpaca"], "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["instruction", "input", "output"])
        writer.writerows([(u, "", a) for u, a in pairs])
    out["prompt-completion"] = root / "pc.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": u, "completion": a} for u, a in pairs]),
                   out["prompt-completion"])
    return out
