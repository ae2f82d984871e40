"""The textbook knobs act on the model and the trainer: dropout in the model, label smoothing in
the loss, early stopping that stops and keeps the best checkpoint, warmup as a ratio."""
from __future__ import annotations

import json

import pytest
import torch

from adapters_sft.errors import UserError
from adapters_sft.trainer import build_trainer, train


def test_dropout_reaches_every_dropout_of_the_model(cls_recipe, tiny_recipe, tmp_path):
    trainer, _, _ = build_trainer(cls_recipe("head-only", "training.dropout=0.3"), tmp_path / "a")
    config = trainer.model.config
    assert (config.hidden_dropout_prob, config.attention_probs_dropout_prob, config.classifier_dropout) == (0.3,) * 3
    assert {m.p for m in trainer.model.modules() if isinstance(m, torch.nn.Dropout)} == {0.3}
    trainer, _, _ = build_trainer(tiny_recipe("lora", "training.dropout=0.2"), tmp_path / "b")
    assert trainer.model.get_base_model().config.attention_dropout == 0.2


def test_label_smoothing_changes_the_loss_as_defined(cls_recipe, tmp_path):
    trainer, _, _ = build_trainer(cls_recipe("full", "training.label_smoothing_factor=0.2"), tmp_path / "w")
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(6)])
    trainer.model.eval()
    with torch.no_grad():
        smoothed = trainer.compute_loss(trainer.model, dict(batch))
        logp = torch.log_softmax(trainer.model(**{k: v for k, v in batch.items() if k != "labels"}).logits, -1)
    nll = -logp.gather(1, batch["labels"][:, None]).mean()
    uniform = -logp.mean()
    assert smoothed.item() == pytest.approx((0.8 * nll + 0.2 * uniform).item(), rel=1e-5)


def test_early_stopping_stops_and_keeps_the_best(cls_recipe):
    # lr 0: the metric never improves, so training stops after 1 + patience evaluations
    recipe = cls_recipe("head-only", "training.max_steps=-1", "training.num_train_epochs=20",
                        "training.learning_rate=0.0", "training.early_stopping_patience=2")
    result = train(recipe, echo=lambda *_: None)
    state = result.trainer.state
    assert state.epoch == pytest.approx(3)  # not 20
    assert state.best_model_checkpoint and state.best_metric is not None
    assert result.trainer.args.metric_for_best_model == "macro_f1"
    assert not (result.run_dir / "checkpoints").exists()  # made only to keep the best: removed


def test_the_best_epoch_is_the_one_kept(cls_recipe):
    recipe = cls_recipe("full", "training.max_steps=-1", "training.num_train_epochs=4",
                        "training.learning_rate=0.05", "training.load_best_model_at_end=true",
                        "training.metric_for_best_model=loss", "eval.metric=accuracy")
    result = train(recipe, echo=lambda *_: None)
    logged = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [row["eval_loss"] for row in logged if "eval_loss" in row]
    assert len(losses) == 4 and result.trainer.state.best_metric == pytest.approx(min(losses))
    assert result.trainer.evaluate()["eval_loss"] == pytest.approx(min(losses), rel=1e-5)


def test_warmup_below_one_is_a_ratio(tiny_recipe, tmp_path):
    trainer, _, _ = build_trainer(tiny_recipe("lora", "training.warmup_steps=0.5",
                                              "training.max_steps=10"), tmp_path / "w")
    assert trainer.args.get_warmup_steps(10) == 5


@pytest.mark.parametrize("override, message", [
    ("training.dropout=1.5", r"training\.dropout: must be in \[0, 1\)"),
    ("training.early_stopping_patience=0", r"training\.early_stopping_patience: must be at least 1"),
    ("training.dropuot=0.1", r"training\.dropuot: not an option of .* \(did you mean 'dropout'\?\)"),
])
def test_bad_knobs_are_named(cls_recipe, tmp_path, override, message):
    with pytest.raises(UserError, match=r"^command line: " + message):
        build_trainer(cls_recipe("head-only", override), tmp_path / "w")


def test_early_stopping_needs_held_out_data(cls_recipe):
    with pytest.raises(UserError, match=r"training\.early_stopping_patience: needs held-out data"):
        train(cls_recipe("head-only", "data.eval=null", "training.early_stopping_patience=2"))


def test_early_stopping_recipes_build_validate_and_check(cls_recipe, tmp_path, capsys):
    from adapters_sft.cli.main import main

    recipe = cls_recipe("head-only", "training.early_stopping_patience=2")
    trainer, _, _ = build_trainer(recipe, tmp_path / "w")  # loads its own data
    assert trainer.args.load_best_model_at_end and trainer.args.eval_strategy == "epoch"
    assert main(["validate", recipe.source, "training.early_stopping_patience=2"]) == 0
    assert main(["check", recipe.source, "training.early_stopping_patience=2"]) == 0
