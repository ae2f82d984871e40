"""`adapters-sft eval RUN_DIR`: the classification report printed and saved, the generative
loss equal to the trainer's own, a user metric, and bad input in one line."""
from __future__ import annotations

import json
import sys

import pytest

from adapters_sft.cli.main import main
from adapters_sft.scores.classification import classification_report
from adapters_sft.trainer import train


def test_classification_eval_prints_saves_and_draws(cls_recipe, topic_data, capsys):
    result = train(cls_recipe("full", "training.max_steps=8", "eval.metric=accuracy"), echo=lambda *_: None)
    capsys.readouterr()
    assert main(["eval", str(result.run_dir)]) == 0
    out = capsys.readouterr().out
    saved = json.loads((result.run_dir / "evals" / "heldout" / "eval.json").read_text())
    assert (result.run_dir / "heldout.json").is_file()  # the held-out rows the run saved
    # the verb reloads the run from disk and agrees with the score taken at the end of training
    assert saved == json.loads((result.run_dir / "eval.json").read_text())["after"]
    assert out.startswith(f"accuracy {saved['accuracy']:.3f}")
    assert "macro F1" in out and "confusion matrix (rows: true class, columns: predicted)" in out
    for name in ("animal", "color", "sky"):
        assert any(line.split()[:1] == [name] and len(line.split()) == 4 for line in out.splitlines())
    png = (result.run_dir / "evals" / "heldout" / "confusion.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    # --data: another file, saved under its own name; the first report stays
    other = topic_data["train"]
    assert main(["eval", str(result.run_dir), "--data", str(other), "--limit", "9"]) == 0
    again = json.loads((result.run_dir / "evals" / "train" / "eval.json").read_text())
    assert again["total"] == 9 and (result.run_dir / "evals" / "heldout" / "eval.json").is_file()


def test_classification_eval_refuses_unknown_labels(cls_recipe, tmp_path, capsys):
    run = train(cls_recipe("head-only"), echo=lambda *_: None).run_dir
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "cat", "label": "animal"}\n{"text": "dog", "label": "pets"}\n')
    capsys.readouterr()
    assert main(["eval", str(run), "--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{bad}:2: label 'pets' is not one the run was trained on (animal, color, sky)" in err
    assert not (run / "evals").exists()


def test_generative_eval_loss_matches_the_trainer(tiny_recipe, capsys):
    recipe = tiny_recipe("lora", "training.per_device_eval_batch_size=8")
    result = train(recipe, echo=lambda *_: None)
    theirs = result.trainer.evaluate()["eval_loss"]  # 8 held-out rows in one batch
    capsys.readouterr()
    assert main(["eval", str(result.run_dir), "--batch-size", "8", "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    saved = json.loads((result.run_dir / "evals" / "heldout" / "eval.json").read_text())
    assert saved["loss"] == pytest.approx(theirs, rel=1e-4)
    assert saved["perplexity"] == pytest.approx(2.718281828 ** theirs, rel=1e-4)
    assert saved["answers"]["total"] == 8 and "exact match" in out and "perplexity" in out


def test_generative_eval_with_a_user_metric(tiny_recipe, tmp_path, monkeypatch, capsys):
    (tmp_path / "my_metric.py").write_text(
        "def ref_words(answer, reference):\n    assert isinstance(answer, str)\n"
        "    return float(len(reference.split()))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    run = train(tiny_recipe("lora"), echo=lambda *_: None).run_dir
    assert main(["eval", str(run), "--metric", "my_metric:ref_words", "--max-new-tokens", "4"]) == 0
    saved = json.loads((run / "evals" / "heldout" / "eval.json").read_text())["answers"]
    assert saved["metric"] == "my_metric:ref_words" and saved["score"] == 2.0  # "<word> <word>" answers
    assert main(["eval", str(run), "--metric", "my_metric:nope"]) == 2
    assert "--metric: cannot load 'my_metric:nope'" in capsys.readouterr().err
    sys.modules.pop("my_metric", None)


def test_eval_of_something_that_is_not_a_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a finished run" in capsys.readouterr().err


def test_preference_rows_for_an_sft_run_are_refused_in_one_line(tiny_recipe, tmp_path, capsys):
    run = train(tiny_recipe("lora", "eval.metric=none"), echo=lambda *_: None).run_dir
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "what is two", "chosen": "two", "rejected": "three"}) + "\n")
    capsys.readouterr()
    assert main(["eval", str(run), "--data", str(pairs)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--data: preference rows score a preference run; this is an sft run" in err
    assert not (run / "evals").exists()
