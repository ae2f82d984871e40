"""task: kto on a tiny model: every row's loss starts at 0.5 with zero rewards (the policy is
its reference), a few steps widen the held-out reward margin, pairs are unpaired and shuffled
once, TRL's two rules (2 rows per device, both labels) are refused before any model loads,
and a KTO run is scored by `eval` and merged like any other."""
from __future__ import annotations

import json

import pytest

from adapters_sft.cli.main import main
from adapters_sft.errors import UserError
from adapters_sft.preflight import preflight
from adapters_sft.trainer import build_trainer, train

LORA = {"r": 4, "alpha": 8, "dropout": 0.0}


@pytest.fixture
def kto_recipe(tiny_recipe, unpaired_data):
    def make(strategy: str, *overrides: str, **opts):
        return tiny_recipe(strategy, "task=kto", f"data.train={unpaired_data['train']}",
                           f"data.eval={unpaired_data['eval']}", *overrides, **opts)
    return make


def test_kto_loss_starts_at_one_half_with_zero_rewards(kto_recipe, tmp_path):
    trainer, _, _ = build_trainer(kto_recipe("lora", **LORA), tmp_path / "w")
    metrics = trainer.evaluate()
    # each row: 1 - sigmoid(beta * (0 - KL)) with a zero reward and a zero KL estimate
    assert metrics["eval_loss"] == pytest.approx(0.5, abs=1e-6)
    assert metrics["eval_rewards/chosen"] == metrics["eval_rewards/rejected"] == 0.0
    assert metrics["eval_kl"] == 0.0


def test_a_few_steps_widen_the_margin_and_eval_and_merge_read_the_run(kto_recipe, tmp_path, capsys):
    recipe = kto_recipe("lora", "training.max_steps=12", "training.learning_rate=5e-2", "training.beta=1.0",
                        "eval.metric=preference",
                        "eval.before_training=true", **LORA)
    result = train(recipe, echo=lambda line: None)
    before, after = result.scores["before"], result.scores["after"]
    assert before["reward_margin"] == 0.0 and before["loss"] == pytest.approx(0.5, abs=1e-6)
    assert after["reward_margin"] > 0.1 and after["reward_chosen"] > after["reward_rejected"]
    assert after["loss"] < 0.5 and "reward_accuracy" not in after  # unpaired rows: no pairs to rank
    assert after["answers"]["total"] == 8  # greedy answers: the desirable rows only
    capsys.readouterr()
    assert main(["eval", str(result.run_dir)]) == 0
    assert "margin" in capsys.readouterr().out
    scored = json.loads((result.run_dir / "evals" / "heldout" / "eval.json").read_text())
    assert scored["reward_margin"] == pytest.approx(after["reward_margin"], rel=1e-3)
    assert main(["merge", str(result.run_dir), "--out", str(tmp_path / "merged")]) == 0


def test_rows_sorted_by_label_are_shuffled_once_and_pairs_unpaired(kto_recipe, dpo_recipe):
    prepared = preflight(kto_recipe("lora", **LORA), echo=lambda line: None).prepared
    labels = [row["label"] for row in prepared.train]
    assert len(labels) == 64 and sum(labels) == 32
    assert 0 < sum(labels[:8]) < 8  # the file holds 32 desirable rows first; the first batch mixes
    again = preflight(kto_recipe("lora", **LORA), echo=lambda line: None).prepared
    assert [r["completion"] for r in again.train] == [r["completion"] for r in prepared.train]
    from_pairs = preflight(dpo_recipe("lora", task="kto", **LORA), echo=lambda line: None).prepared
    assert from_pairs.report.splits[0] == "train: 64 rows (32 desirable, 32 undesirable; from 32 pairs)"
    assert {(r["label"], r["completion"][0]["content"].split()[0] == r["completion"][0]["content"].split()[-1])
            for r in from_pairs.train} == {(True, False), (False, True)}  # chosen desirable, rejected not


def test_one_row_per_device_is_refused_before_any_model_loads(kto_recipe):
    with pytest.raises(UserError, match=r"training.per_device_train_batch_size: KTO estimates .* at least 2 "
                                        r"per device .*loss_type=apo_zero_unpaired"):
        preflight(kto_recipe("lora", "training.per_device_train_batch_size=1"), echo=lambda line: None)
    # the unpaired loss without the estimate takes one row per device
    preflight(kto_recipe("lora", "training.per_device_train_batch_size=1",
                         "training.loss_type=apo_zero_unpaired"), echo=lambda line: None)


def test_one_label_only_is_refused_naming_the_split(kto_recipe, tmp_path):
    only = tmp_path / "good.jsonl"
    only.write_text("".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i}", "label": True}) + "\n"
                            for i in range(8)))
    with pytest.raises(UserError, match=r"data.eval: every row is labelled desirable; KTO learns from both"):
        preflight(kto_recipe("lora", f"data.eval={only}"), echo=lambda line: None)


@pytest.mark.parametrize("task", ["dpo", "sft"])
def test_unpaired_rows_under_another_task_point_to_kto(task, kto_recipe):
    with pytest.raises(UserError, match=r"unpaired .*\(prompt, completion, label\).* set task=kto"):
        preflight(kto_recipe("lora", f"task={task}"), echo=lambda line: None)
