"""Data handed from `train --nproc N` to the processes it starts, so the data is read and
tokenized once (by the launching command's pre-flight) rather than once per process.

The launcher writes into a private temporary folder the rows it read (`Splits`, as JSON: the
processes run the same checks on them and fingerprint them, without opening the data files
again) and its `Prepared`: the tokenizer as `save_pretrained` writes it, the tokenized splits as
`datasets` saves them (Arrow files), the rest as JSON. It names the folder in
ADAPTERS_SFT_PREPARED for the processes, which read it back instead of reading and preparing.
The folder is removed when the launch ends. Processes started another way (plain torchrun)
read and prepare their own.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

ENV = "ADAPTERS_SFT_PREPARED"


SPLITS = "splits.json"


def save(splits: Any, prepared: Any, folder: Path) -> None:
    (folder / SPLITS).write_text(json.dumps(dataclasses.asdict(splits)))
    prepared.tokenizer.save_pretrained(folder / "tokenizer")
    prepared.train.save_to_disk(str(folder / "train"))
    if prepared.eval is not None:
        prepared.eval.save_to_disk(str(folder / "eval"))
    rest = {"report": dataclasses.asdict(prepared.report), "chat": prepared.chat,
            "labels": prepared.labels, "batching": prepared.batching, "eval_rows": prepared.eval_rows}
    (folder / "prepared.json").write_text(json.dumps(rest))


def load(folder: Path) -> Any:
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    from .check import Report
    from .tokenize import Prepared

    rest = json.loads((folder / "prepared.json").read_text())
    report = Report(**rest["report"])
    if report.example is not None:  # JSON made the (text, trained) pairs lists
        report.example = [tuple(piece) for piece in report.example]
    report.more_examples = [(where, [tuple(p) for p in pieces]) for where, pieces in report.more_examples]
    held = load_from_disk(str(folder / "eval")) if (folder / "eval").is_dir() else None
    return Prepared(AutoTokenizer.from_pretrained(folder / "tokenizer"),
                    load_from_disk(str(folder / "train")), held, report, rest["chat"],
                    rest["labels"], rest["batching"], rest["eval_rows"])


def load_splits(folder: Path) -> Any:
    from .load import Split, Splits

    raw = json.loads((folder / SPLITS).read_text())
    held = Split(**raw["eval"]) if raw["eval"] is not None else None
    return Splits(Split(**raw["train"]), held, raw["format"], raw["kind"], raw["warnings"], raw.get("mix"),
                  raw.get("replay"))


def handed() -> Path | None:
    """The folder the launching command prepared the data into, in a process it started."""
    from ..processes import world_size

    folder = os.environ.get(ENV)
    return Path(folder) if folder and world_size() > 1 else None
