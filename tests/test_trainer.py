"""The shared trainer: assistant-only loss with a byte-identical marked template, metrics,
run directory contents, atomic overwrite."""
from __future__ import annotations

import json

import pytest
import yaml

from adapters_sft.errors import UserError

from adapters_sft.data.templates import has_markers, mark_chatml, renders_identically, training_template
from adapters_sft.trainer import build_trainer, train

from .conftest import SMOLLM2_TEMPLATE, make_tokenizer


def test_marked_template_renders_byte_identical_and_trains_every_assistant_turn_with_eos():
    tok = make_tokenizer()
    marked = training_template(tok)
    assert not has_markers(SMOLLM2_TEMPLATE) and has_markers(marked)
    assert marked == mark_chatml(SMOLLM2_TEMPLATE)
    assert renders_identically(tok, SMOLLM2_TEMPLATE, marked)
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "one two"},
            {"role": "user", "content": "what"}, {"role": "assistant", "content": "red"}]
    enc = tok.apply_chat_template(conv, chat_template=marked, tokenize=True, return_dict=True,
                                  return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.convert_ids_to_tokens(trained) == ["one", " ", "two", "<|im_end|>", "red", "<|im_end|>"]


def test_trl_receives_assistant_only_masks(tiny_recipe, tmp_path):
    trainer, _, _ = build_trainer(tiny_recipe("lora"), tmp_path / "w")
    row = trainer.train_dataset[0]
    tok = trainer.processing_class
    trained = [label for label in row["labels"] if label != -100]
    assert 0 < len(trained) < len(row["input_ids"])
    assert trained[-1] == tok.convert_tokens_to_ids("<|im_end|>")
    assert "user" not in tok.decode(trained)


def test_run_directory_contract(tiny_recipe):
    recipe = tiny_recipe("lora", "eval.metric=exact_match", "eval.before_training=true",
                         "eval.max_new_tokens=4")
    result = train(recipe, echo=lambda *_: None)
    run = result.run_dir
    assert {p.name for p in run.iterdir()} >= {"recipe.yaml", "adapter", "tokenizer",
                                               "metrics.jsonl", "eval.json"}
    assert not (run / "checkpoints").exists()  # crash insurance only: gone once the run is complete
    saved = yaml.safe_load((run / "recipe.yaml").read_text())
    assert saved["strategy"]["name"] == "lora" and saved["versions"]["trl"]
    assert has_markers((run / "tokenizer" / "chat_template.jinja").read_text())
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == [1, 2, 3]
    scores = json.loads((run / "eval.json").read_text())
    assert scores["before"]["total"] == scores["after"]["total"] == 8
    assert not list(run.parent.glob(".run.*"))


def test_overwrite_true_replaces_an_old_run_only_when_the_new_one_is_complete(tiny_recipe):
    first = train(tiny_recipe("lora"), echo=lambda *_: None).run_dir
    (first / "old-marker").write_text("x")
    second = train(tiny_recipe("head-only", "overwrite=true"), echo=lambda *_: None).run_dir
    assert second == first and not (second / "old-marker").exists()
    assert (second / "weights" / "trained.safetensors").is_file()


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_prompt_completion_trains_on_the_completion_and_is_scored(tiny_recipe, tmp_path):
    rows = [{"prompt": f"what is {w}", "completion": f" {w} {w}"} for w in ("one", "two", "red", "cat")] * 4
    train_file, eval_file = _write(tmp_path / "pc.jsonl", rows), _write(tmp_path / "pc_eval.jsonl", rows[:3])
    recipe = tiny_recipe("lora", f"data.train={train_file}", f"data.eval={eval_file}",
                         "eval.metric=exact_match", "eval.max_new_tokens=3")
    trainer, _, splits = build_trainer(recipe, tmp_path / "w")
    assert splits.kind == "prompt-completion"
    row = trainer.train_dataset[0]
    # the tokenizer has a chat template, so the prompt is rendered as a user turn and only
    # the completion (answer + end of turn) carries loss
    trained = [t for t, label in zip(row["input_ids"], row["labels"]) if label != -100]
    assert trainer.processing_class.convert_ids_to_tokens(trained) == [" ", "one", " ", "one", "<|im_end|>"]
    result = train(recipe, echo=lambda *_: None)
    assert result.scores["after"]["total"] == 3


def test_text_data_trains_on_everything_and_refuses_exact_match(tiny_recipe, tmp_path):
    text = _write(tmp_path / "t.jsonl", [{"text": "one two three four"}] * 8)
    trainer, _, _ = build_trainer(tiny_recipe("lora", f"data.train={text}", "data.eval=null"), tmp_path / "w")
    row = trainer.train_dataset[0]
    assert all(label != -100 for label in row["labels"])
    with pytest.raises(UserError, match=r"eval\.metric: exact_match needs a reference answer"):
        train(tiny_recipe("lora", f"data.train={text}", f"data.eval={text}", "eval.metric=exact_match"))


def test_train_on_prompt_needs_no_marked_template(tiny_recipe, tmp_path, tiny_model_dir, monkeypatch):
    def no_marked_template(tokenizer):
        raise UserError("model: no marked template")

    monkeypatch.setattr("adapters_sft.data.templates.training_template", no_marked_template)
    with pytest.raises(UserError, match="no marked template"):
        build_trainer(tiny_recipe("lora"), tmp_path / "a")
    trainer, _, _ = build_trainer(tiny_recipe("lora", "data.train_on_prompt=true"), tmp_path / "b")
    row = trainer.train_dataset[0]
    assert all(label != -100 for label in row["labels"])  # the prompt carries loss too


def test_generation_stops_on_the_tokenizers_eos_even_if_the_model_config_differs():
    """A named template can make its end-of-turn the EOS; a base model reloaded later still
    carries its old generation config, so generate() must stop on the tokenizer's EOS too."""
    from types import SimpleNamespace

    from adapters_sft.scores.generative import stop_ids

    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[7, 2]))
    assert stop_ids(model, SimpleNamespace(eos_token_id=2)) == [2, 7]
    assert stop_ids(SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=None)),
                     SimpleNamespace(eos_token_id=5)) == [5]
