"""Training data, from files to the token ids and loss masks TRL trains on.

  sources.py    where rows come from (JSONL, JSON, CSV, Parquet, folders, bundled, hub)
  formats.py    detect, validate and normalise the formats
  load.py       a recipe's splits: rows with their file:line, val_size, duplicates
  mix.py        a list of sources as one training set, each with its share
  replay.py     data.replay: the base model's own answers to general prompts, mixed in
  templates.py  chat templates: generation markers for the model's own, or one by name
  tokenize.py   TRL's tokenization before the model loads; pad token
  check.py      the pre-flight report and the problems that stop a run
"""
from .load import Split, Splits, load_splits
from .sources import iter_jsonl

__all__ = ["Split", "Splits", "iter_jsonl", "load_splits"]
