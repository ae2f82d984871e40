"""The pre-flight report: what the model will learn, and the problems that stop a run.

Works on TRL-prepared rows (input_ids, labels; -100 = no loss) before truncation, so it can
say what `data.max_length` would cut. Fatal problems (`Report.fatal`) make `check` exit 2
and `train` refuse to start; warnings are printed and training goes on.
"""
from __future__ import annotations

import collections
import dataclasses
import statistics
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .load import Splits

SHOWN = 3  # locations listed per problem


@dataclasses.dataclass
class Report:
    max_length: int | None
    truncation_mode: str = "keep_start"
    notes: list[str] = dataclasses.field(default_factory=list)
    splits: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    fatal: list[str] = dataclasses.field(default_factory=list)
    example: list[tuple[str, bool]] | None = None  # (text, trained) pieces of one row
    example_where: str = ""
    # a mixed data.train: (where, pieces) of the first row of each source after the first
    more_examples: list[tuple[str, list[tuple[str, bool]]]] = dataclasses.field(default_factory=list)

    def render(self, color: bool) -> str:
        lines = [*self.notes, *self.splits]
        how = "trained tokens in green" if color else "trained tokens between [[ and ]]"
        shown = [(self.example_where, self.example)] if self.example is not None else []
        for where, pieces in [*shown, *self.more_examples]:
            lines.append(f"example ({where}; {how}):")
            lines.append("".join((f"\x1b[1;32m{t}\x1b[0m" if color else f"[[{t}]]") if trained else t
                                 for t, trained in pieces))
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"problem: {f}" for f in self.fatal]
        lines.append("problems: none; ready to train" if not self.fatal else
                     f"{len(self.fatal)} problem(s): training would be refused")
        return "\n".join(lines)


def _spread(values: list[int]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"min {ordered[0]} / median {statistics.median(ordered):g} / p95 {p95} / max {ordered[-1]}"


def _at(places: list[str]) -> str:
    more = f" and {len(places) - SHOWN} more" if len(places) > SHOWN else ""
    return ", ".join(places[:SHOWN]) + more


def _spans(labels: list[int]) -> list[tuple[int, int]]:
    """(start, end) of each run of trained positions."""
    return [(s, e) for s, e in _runs(labels) if labels[s] != -100]


def analyse(report: Report, name: str, dataset: Any, where: list[str], tokenizer: Any, masked: bool) -> None:
    """Add one split's figures and problems to `report`."""
    eos = tokenizer.eos_token_id
    m, keep_end = report.max_length, report.truncation_mode == "keep_end"
    lengths, trained = [], []
    no_target, no_eos, cut, lost, eos_cut = [], [], 0, [], []
    learnable = 0  # rows with a trained token after the first, within max_length
    for row, place in zip(dataset, where):
        ids, labels = row["input_ids"], row["labels"]
        lengths.append(len(ids))
        window = labels if m is None or len(ids) <= m else (labels[-m:] if keep_end else labels[:m])
        learnable += any(lab != -100 for lab in window[1:])  # a row's first token is never predicted
        spans = _spans(labels)
        trained.append(sum(e - s for s, e in spans))
        if not spans:
            no_target.append(place)
            continue
        # Masked targets must each end on EOS; a whole-sequence target must at least train it.
        ok = all(ids[e - 1] == eos for s, e in spans) if masked else any(
            i == eos and lab != -100 for i, lab in zip(ids, labels))
        if not ok:
            no_eos.append(place)
        if m is not None and len(ids) > m:
            cut += 1
            kept = labels[-m:] if keep_end else labels[:m]
            if all(lab == -100 for lab in kept):
                lost.append(place)
            elif eos not in [i for i, lab in zip(ids[-m:] if keep_end else ids[:m], kept) if lab != -100]:
                eos_cut.append(place)
    report.splits.append(f"{name}: {len(lengths)} rows; tokens per row {_spread(lengths)}; "
                         f"trained tokens per row {_spread(trained)}")
    if m is not None:
        report.splits.append(f"{name}: data.max_length={m} truncates {cut} row(s); "
                             f"{len(lost)} lose their whole target and are dropped"
                             + (f" ({_at(lost)})" if lost else ""))
    if eos_cut:
        report.warnings.append(f"{name}: {len(eos_cut)} row(s) keep part of their target but lose "
                               f"its EOS to truncation ({_at(eos_cut)}); raise data.max_length")
    if len(lost) == len(lengths) and lengths:
        report.fatal.append(f"{name}: every row loses its whole target to truncation; raise data.max_length")
    elif lengths and not learnable and name == "train":
        report.fatal.append(f"{name}: no row keeps a token to learn within data.max_length={m} (a "
                            "causal LM learns each token from those before it, never a row's first), "
                            "so every step would have zero loss; raise data.max_length")
    if no_target:
        report.fatal.append(f"{name}: {len(no_target)} row(s) have no trainable tokens ({_at(no_target)}); "
                            "check the chat template's generation markers or the completions")
    if no_eos:
        report.fatal.append(f"{name}: {len(no_eos)} row(s) have targets that do not end with the EOS "
                            f"{tokenizer.eos_token!r} ({_at(no_eos)}), so the model would not learn to "
                            "stop; use a template whose turns end with the EOS (data.template)")
    if report.example is None and lengths:
        report.example, report.example_where = _pieces(dataset[0], tokenizer), f"{name} {where[0]}"


def mix(report: Report, facts: list[dict[str, Any]], dataset: Any, where: list[str], origin: list[int],
        tokenizer: Any) -> None:
    """A mixed data.train (data/mix.py): each source's rows, share, tokens and trained tokens as
    tokenized, and the first row of each source after the first, its trained tokens marked."""
    from .mix import describe

    tokens, trained, first = [0] * len(facts), [0] * len(facts), {}
    for i, (row, src) in enumerate(zip(dataset, origin)):
        tokens[src] += len(row["input_ids"])
        trained[src] += sum(lab != -100 for lab in row["labels"])
        first.setdefault(src, i)
    report.splits.append(f"train: a mix of {len(facts)} sources (data.train):")
    for i, fact in enumerate(facts):
        report.splits.append(f"  [{i}] {describe(fact)}; {tokens[i]} tokens, {trained[i]} trained")
    for src in sorted(first)[1:]:
        report.more_examples.append((f"train {where[first[src]]}", _pieces(dataset[first[src]], tokenizer)))


def _pieces(row: dict[str, Any], tokenizer: Any) -> list[tuple[str, bool]]:
    """Decoded text in runs of trained / untrained tokens."""
    pieces: list[tuple[str, bool]] = []
    for start, end in _runs(row["labels"]):
        text = tokenizer.decode(row["input_ids"][start:end], skip_special_tokens=False)
        pieces.append((text, row["labels"][start] != -100))
    return pieces


def _runs(labels: list[int]) -> list[tuple[int, int]]:
    runs, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or (labels[i] == -100) != (labels[start] == -100):
            runs.append((start, i))
            start = i
    return runs


def classification(report: Report, tokenizer: Any, splits: Splits) -> None:
    """Rows, label set and text lengths for (text, label) data; fewer than 2 labels is fatal."""
    for name, split in (("train", splits.train), ("eval", splits.eval)):
        if split is None:
            continue
        counts = collections.Counter(r["label"] for r in split.rows)
        lengths = [len(ids) for ids in tokenizer([r["text"] for r in split.rows])["input_ids"]]
        labels = ", ".join(f"{k!r}: {v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])))
        report.splits.append(f"{name}: {len(split.rows)} rows; tokens per text {_spread(lengths)}; "
                             f"labels {{{labels}}}")
        if name == "train" and len(counts) < 2:
            report.fatal.append(f"train: only one label ({_at(list(map(repr, counts)))}); a classifier "
                                "needs at least two")
        if name == "eval":
            unseen = set(counts) - {r["label"] for r in splits.train.rows}
            if unseen:
                report.fatal.append(f"eval: labels never seen in training: {sorted(map(repr, unseen))}")
