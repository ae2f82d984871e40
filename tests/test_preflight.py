"""One set of rules: every refusal of train's pre-flight (preflight.rules) is made by validate
and check too, with the same line, exit status 2, and nothing written."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from adapters_sft.cli.main import main


@pytest.fixture
def recipe_file(tmp_path, tiny_model_dir, tiny_data) -> Path:
    body = {"model": str(tiny_model_dir), "strategy": {"name": "lora"},
            "data": {"train": str(tiny_data["train"])}, "training": {"max_steps": 1},
            "output_dir": str(tmp_path / "run")}
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps(body, indent=1))
    return path


def _bad_config(tmp_path: Path) -> str:
    folder = tmp_path / "broken-model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama",')
    return f"model={folder}"


def _classification_rows(tmp_path: Path) -> str:
    rows = tmp_path / "labels.jsonl"
    rows.write_text("".join(json.dumps({"text": f"row {i}", "label": "a" if i % 2 else "b"}) + "\n"
                            for i in range(6)))
    return f"data.train={rows}"


# (case, overrides or a function of tmp_path giving one, text the shared line holds); one per
# rule of preflight.rules, in its order
REFUSALS = [
    ("missing model folder", "model=/no/such/model", "does not exist"),
    ("near-miss alias", "model=smollm2-135m", "did you mean 'smollm2-135m-instruct'"),
    ("config.json not JSON", _bad_config, "not valid JSON"),
    ("sharding without CUDA", "distributed.sharding=fsdp", "distributed.sharding"),
    ("missing data file", "data.train=/no/such.jsonl", "not found"),
    ("classification rows, sft task", _classification_rows, "holds classification rows (text, label)"),
    ("unknown training key", "training.lr=0.1", "did you mean 'learning_rate'"),
    ("training number out of range", "training.learning_rate=-1", "training.learning_rate: must be"),
    ("evaluation without held-out rows", "training.eval_strategy=steps", "needs held-out data"),
    ("tracker not installed", "training.report_to=no_such_tracker", "not a reporting integration"),
    ("qlora without bitsandbytes", "strategy=qlora", "needs bitsandbytes"),
    ("low-rank optimizer not installed", "training.optim=galore_adamw", "needs the galore-torch package"),
    ("exact match without held-out rows", "eval.metric=exact_match", "eval.metric: needs held-out data"),
    ("init_from that is not a run", "init_from=/no/such/run", "init_from:"),
]


@pytest.mark.parametrize("case, override, text", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_validate_check_and_train_refuse_alike(case, override, text, recipe_file, tmp_path,
                                               monkeypatch, capsys):
    if case == "qlora without bitsandbytes":
        monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    if case == "low-rank optimizer not installed":
        monkeypatch.setitem(sys.modules, "galore_torch", None)
    item = override(tmp_path) if callable(override) else override
    lines = {}
    for verb in ("validate", "check", "train"):
        assert main([verb, str(recipe_file), item]) == 2, verb
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("adapters-sft: error: "), (verb, err)
        lines[verb] = err
    assert lines["validate"] == lines["check"] == lines["train"], lines
    assert text in lines["train"], lines["train"]
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.partial").exists()


def test_every_rule_has_a_case():
    """A rule added to preflight.rules without a case here fails this list."""
    import ast
    import inspect
    import textwrap

    from adapters_sft import preflight

    tree = ast.parse(textwrap.dedent(inspect.getsource(preflight.rules)))
    called = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    # each is a rule with a case above, or plumbing (get_task, schema, world_size, Ready, paths)
    assert called == {
        "check_model", "check_recipe", "load_data", "get_task", "task.check_data", "world_size",
        "trainer_keys.check_recipe", "trainer_keys.schema", "strategy.preflight", "task.check_recipe",
        "build_strategy", "check_eval", "init_from.check", "load_config", "training_args", "Ready",
        "partial_dir", "Path", "strategy.check_training", "low_rank.check", "_own_groups", "strategy.check_processes",
        "_one_optimizer_builder", "replay.check", "replay.mix_in"}, called


def test_replay_into_rows_that_are_not_conversations_is_refused_alike(recipe_file, tmp_path, capsys):
    """replay.check, before replay.mix_in (which generates the rows: check and train only)."""
    text = tmp_path / "plain.jsonl"
    text.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(6)))
    lines = {}
    for verb in ("validate", "check", "train"):
        assert main([verb, str(recipe_file), f"data.train={text}", "data.replay=0.2"]) == 2, verb
        lines[verb] = capsys.readouterr().err
    assert lines["validate"] == lines["check"] == lines["train"], lines
    assert lines["train"].count("\n") == 1 and "data.replay: replays conversations" in lines["train"]
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.partial").exists()


def test_check_and_train_refuse_a_strategy_the_trainers_config_rules_out(recipe_file, tmp_path, capsys):
    """strategy.check_training needs the Trainer's config, which validate does not build: check
    and train refuse alike (AdaLoRA's schedule in 1 step), and nothing is written."""
    lines = {}
    for verb in ("check", "train"):
        assert main([verb, str(recipe_file), "strategy.name=adalora", "strategy.tinit=1"]) == 2, verb
        lines[verb] = capsys.readouterr().err
        assert lines[verb].count("\n") == 1, lines[verb]
    assert lines["check"] == lines["train"] and "leave no budgeting step" in lines["train"]
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.partial").exists()
