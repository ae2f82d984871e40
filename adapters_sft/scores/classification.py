"""Classification scores: accuracy, per-class and macro precision/recall/F1, the confusion
matrix, as a table and as a picture.

One function computes them for the `eval` verb, for the scores `train` writes and for
evaluation during training (`compute_metrics`), so the three can never disagree. Macro
averages weigh every class equally, including a class the model never predicts (its
precision counts as 0, the usual convention), so a model that ignores a class is not hidden
behind a high accuracy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def classification_report(predicted: list[int], gold: list[int], names: list[str]) -> dict[str, Any]:
    """Scores of `predicted` class ids against `gold` ones; `names[i]` names class i."""
    n = len(names)
    confusion = [[0] * n for _ in range(n)]  # rows: true class, columns: predicted class
    for g, p in zip(gold, predicted, strict=True):
        confusion[g][p] += 1
    per_class: dict[str, dict[str, float]] = {}
    for i, name in enumerate(names):
        hit = confusion[i][i]
        support = sum(confusion[i])
        said = sum(row[i] for row in confusion)
        precision = hit / said if said else 0.0
        recall = hit / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    total = len(gold)

    def macro(key: str) -> float:
        return sum(c[key] for c in per_class.values()) / n if n else 0.0

    return {"accuracy": sum(confusion[i][i] for i in range(n)) / total if total else 0.0,
            "macro_precision": macro("precision"), "macro_recall": macro("recall"),
            "macro_f1": macro("f1"), "total": total, "labels": list(names),
            "per_class": per_class, "confusion": confusion}


def headline(report: dict[str, Any]) -> dict[str, float]:
    """The scalar scores (what training logs as eval_accuracy, eval_macro_f1, ...)."""
    return {k: report[k] for k in ("accuracy", "macro_precision", "macro_recall", "macro_f1")}


def compute_metrics(names: list[str]) -> Callable[[Any], dict[str, float]]:
    """A `Trainer(compute_metrics=...)` function built on `classification_report`."""
    def compute(prediction: Any) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) \
            else prediction.predictions
        return headline(classification_report(logits.argmax(-1).tolist(),
                                              prediction.label_ids.tolist(), names))
    return compute


def table(report: dict[str, Any]) -> str:
    """The report as text: headline scores, per-class P/R/F1 and the confusion matrix."""
    names = report["labels"]
    width = max(8, *(len(n) for n in names))
    lines = [f"accuracy {report['accuracy']:.3f}   macro precision {report['macro_precision']:.3f}   "
             f"macro recall {report['macro_recall']:.3f}   macro F1 {report['macro_f1']:.3f}   "
             f"({report['total']} rows)", "",
             f"{'class':<{width}}  precision  recall     f1  support"]
    for name in names:
        c = report["per_class"][name]
        lines.append(f"{name:<{width}}  {c['precision']:9.3f}  {c['recall']:6.3f}  {c['f1']:5.3f}  "
                     f"{c['support']:7d}")
    cell = max(6, *(len(n) for n in names))
    lines += ["", "confusion matrix (rows: true class, columns: predicted)",
              f"{'':<{width}}  " + "  ".join(f"{n:>{cell}}" for n in names)]
    for name, row in zip(names, report["confusion"]):
        lines.append(f"{name:<{width}}  " + "  ".join(f"{v:>{cell}d}" for v in row))
    return "\n".join(lines)


def draw_confusion(report: dict[str, Any], path: Path, title: str = "") -> None:
    """The confusion matrix as a PNG heat map with counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    names, matrix = report["labels"], report["confusion"]
    size = 1.2 + 0.9 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max((v for row in matrix for v in row), default=0)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > peak / 2 else "black")
    scores = f"accuracy {report['accuracy']:.3f}, macro F1 {report['macro_f1']:.3f}"
    ax.set_title(f"{title}\n{scores}" if title else scores)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
