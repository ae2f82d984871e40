"""Classification scores against a hand-worked example."""
from __future__ import annotations

import types

import numpy as np
import pytest

from adapters_sft.scores.classification import classification_report, compute_metrics, draw_confusion, table

NAMES = ["a", "b", "c"]
GOLD = [0, 0, 0, 1, 1, 2, 2, 2]
PRED = [0, 0, 1, 1, 0, 2, 2, 0]


def test_hand_worked_scores():
    r = classification_report(PRED, GOLD, NAMES)
    # a: 2 of 3 right, predicted 4 times; b: 1 of 2, predicted 2 times; c: 2 of 3, predicted 2 times
    assert r["confusion"] == [[2, 1, 0], [1, 1, 0], [1, 0, 2]]
    assert r["accuracy"] == pytest.approx(5 / 8)
    a, b, c = (r["per_class"][n] for n in NAMES)
    assert (a["precision"], a["recall"]) == (pytest.approx(2 / 4), pytest.approx(2 / 3))
    assert (b["precision"], b["recall"]) == (pytest.approx(1 / 2), pytest.approx(1 / 2))
    assert (c["precision"], c["recall"]) == (pytest.approx(1.0), pytest.approx(2 / 3))
    assert a["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert r["macro_f1"] == pytest.approx((a["f1"] + b["f1"] + c["f1"]) / 3)
    assert r["macro_precision"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert [c["support"] for c in r["per_class"].values()] == [3, 2, 3]


def test_a_class_never_predicted_pulls_the_macro_average_down():
    r = classification_report([0, 0, 0, 0], [0, 0, 0, 1], ["x", "y"])
    assert r["accuracy"] == 0.75
    assert r["per_class"]["y"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["macro_f1"] == pytest.approx((2 * 0.75 / 1.75) / 2)


def test_trainer_metrics_use_the_same_report():
    logits = np.eye(3)[PRED] + 0.01  # argmax gives PRED
    scores = compute_metrics(NAMES)(types.SimpleNamespace(predictions=logits, label_ids=np.array(GOLD)))
    r = classification_report(PRED, GOLD, NAMES)
    assert scores == {k: r[k] for k in ("accuracy", "macro_precision", "macro_recall", "macro_f1")}


def test_table_and_picture(tmp_path):
    r = classification_report(PRED, GOLD, NAMES)
    text = table(r)
    assert "accuracy 0.625" in text and "macro F1" in text
    assert text.splitlines()[-3].split() == ["a", "2", "1", "0"]  # the confusion rows come last
    draw_confusion(r, tmp_path / "c.png", "title")
    data = (tmp_path / "c.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
