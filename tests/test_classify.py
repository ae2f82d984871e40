"""`task: classification` with every strategy, on a tiny BERT encoder and a tiny Llama (score
head): exactly the intended parameters train, the run reloads to the same logits, the labels
come from the data, and mismatched task and data are refused."""
from __future__ import annotations

import json
import re

import pytest
import torch

from adapters_sft.errors import UserError
from adapters_sft.run_reader import load_run
from adapters_sft.trainer import build_trainer, train

# strategy -> (options, pattern every trainable name matches, pattern some trainable name matches)
CASES = {
    "head-only": ({}, r"^classifier\.", r"^classifier\.weight$"),
    "lora": ({"r": 4, "alpha": 8, "dropout": 0.0}, r"lora_[AB]|classifier\.modules_to_save",
             r"classifier\.modules_to_save\.default\.weight"),
    "ia3": ({}, r"ia3_l|classifier\.modules_to_save", r"classifier\.modules_to_save\.default\.weight"),
    "full": ({}, r".", r"bert\.embeddings\."),
    "freeze": ({"trainable_layers": 1}, r"^(bert\.encoder\.layer\.2\.|bert\.pooler\.|classifier\.)",
               r"^bert\.encoder\.layer\.2\."),
    # PEFT's other methods: the new head trains and saves with the adapter (PEFT's SEQ_CLS)
    **{name: ({}, rf"{trained}|classifier\.modules_to_save", r"classifier\.modules_to_save\.default\.weight")
       for name, trained in (("loha", "hada_w"), ("vera", "vera_lambda"), ("oft", "oft_R"),
                             ("adalora", r"lora_[ABE]"))},
    # virtual tokens before the text, and the head (PEFT's SEQ_CLS keeps it trainable)
    "prompt-tuning": ({"num_virtual_tokens": 4}, r"prompt_encoder|classifier\.modules_to_save",
                      r"classifier\.modules_to_save\.default\.weight"),
}


def _batch(tokenizer):
    return tokenizer(["cat one two", "sun red", "blue dog moon"], padding=True, return_tensors="pt")


@pytest.mark.parametrize("name", CASES)
def test_each_strategy_trains_a_classifier_and_reloads_it(name, cls_recipe):
    opts, every, some = CASES[name]
    result = train(cls_recipe(name, **opts), echo=lambda *_: None)
    model = result.trainer.model.eval()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(re.search(every, n) for n in trainable), trainable
    assert any(re.search(some, n) for n in trainable), trainable
    labels = json.loads((result.run_dir / "labels.json").read_text())
    assert labels == ["animal", "color", "sky"]  # from the data, sorted
    reloaded, tokenizer, recipe = load_run(result.run_dir)
    assert recipe.task == "classification"
    assert reloaded.config.id2label == {0: "animal", 1: "color", 2: "sky"}
    with torch.no_grad():
        expected = model(**_batch(tokenizer)).logits
        got = reloaded(**_batch(tokenizer)).logits
    assert expected.shape == (3, 3)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_head_only_leaves_the_body_untouched(cls_recipe, tmp_path):
    trainer, _, _ = build_trainer(cls_recipe("head-only"), tmp_path / "w")
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p)}
    assert changed == {"classifier.weight", "classifier.bias"}


def test_a_decoder_llm_gets_a_score_head_on_its_last_token(cls_recipe, tiny_model_dir):
    recipe = cls_recipe("lora", f"model={tiny_model_dir}", r=4, alpha=8, dropout=0.0)
    result = train(recipe, echo=lambda *_: None)
    model = result.trainer.model.eval()
    base = model.get_base_model()
    assert type(base).__name__ == "LlamaForSequenceClassification"
    assert base.config.pad_token_id == result.trainer.processing_class.pad_token_id
    reloaded, tokenizer, _ = load_run(result.run_dir)
    batch = _batch(tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits, rtol=0, atol=1e-5)
        # right padding must not change a row's score: the head reads the last real token
        alone = reloaded(**tokenizer(["sun red"], return_tensors="pt")).logits
    torch.testing.assert_close(alone[0], reloaded(**batch).logits[1], rtol=0, atol=1e-5)


def test_scores_before_and_after_come_from_the_same_report(cls_recipe):
    recipe = cls_recipe("full", "eval.metric=accuracy", "eval.before_training=true",
                        "training.max_steps=12")
    result = train(recipe, echo=lambda *_: None)
    saved = json.loads((result.run_dir / "eval.json").read_text())
    for when in ("before", "after"):
        assert set(saved[when]) >= {"accuracy", "macro_f1", "per_class", "confusion"}
        assert sum(map(sum, saved[when]["confusion"])) == 12
    assert (result.run_dir / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # evaluation during training (each epoch; step 12 ends epoch 2, and the run) is the same code
    logged = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    last = [row for row in logged if "eval_accuracy" in row][-1]
    assert last["step"] == 12
    assert last["eval_accuracy"] == pytest.approx(saved["after"]["accuracy"])
    assert last["eval_macro_f1"] == pytest.approx(saved["after"]["macro_f1"])


def test_task_and_data_must_agree(cls_recipe, tiny_recipe, topic_data):
    with pytest.raises(UserError, match=r"data\.train: holds classification rows .* set task=classification"):
        train(tiny_recipe("lora", f"data.train={topic_data['train']}", "data.eval=null"))
    with pytest.raises(UserError, match=r"task: classification needs \(text, label\) rows, but data\.train holds messages"):
        train(cls_recipe("lora", "data.train=" + str(tiny_recipe("lora").data.train), "data.eval=null"))
    with pytest.raises(UserError, match=r"eval\.metric: accuracy scores a classifier"):
        train(tiny_recipe("lora", "eval.metric=accuracy"))


def test_generative_verbs_refuse_a_classification_run(cls_recipe, tmp_path):
    from adapters_sft.export.merge import merge_run
    from adapters_sft.run_reader import load_model_or_run

    run = train(cls_recipe("head-only"), echo=lambda *_: None).run_dir
    with pytest.raises(UserError, match=r"a classification run, and merge works on generative runs; "
                                        r"score it with 'adapters-sft eval"):
        merge_run(run, tmp_path / "m")
    with pytest.raises(UserError, match="chat works on generative runs"):
        load_model_or_run(str(run), "chat")
    assert not (tmp_path / "m").exists()


def test_bottleneck_adapters_train_the_score_head_too(cls_recipe, tiny_model_dir):
    result = train(cls_recipe("adapter", f"model={tiny_model_dir}", reduction_factor=4),
                   echo=lambda *_: None)
    model = result.trainer.model.eval()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "score.weight" in trainable and any(".adapter." in n for n in trainable)
    reloaded, tokenizer, _ = load_run(result.run_dir)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**_batch(tokenizer)).logits, model(**_batch(tokenizer)).logits,
                                   rtol=0, atol=1e-5)


def test_bottleneck_adapters_refuse_a_bert_with_a_clear_reason(cls_recipe, tmp_path):
    with pytest.raises(UserError, match=r"'adapter' found no transformer blocks with an 'mlp' .* use 'lora'"):
        build_trainer(cls_recipe("adapter"), tmp_path / "w")
