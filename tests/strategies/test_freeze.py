"""freeze and gradual unfreezing: what trains is checked on the parameters themselves, step by
step, not on config values."""
from __future__ import annotations

import pytest
import torch
from transformers import TrainerCallback

from adapters_sft.errors import UserError
from adapters_sft.recipe import load_recipe
from adapters_sft.trainer import build_trainer, train


class Snapshots(TrainerCallback):
    """The watched parameters after every optimizer step (index 0: before training)."""

    def __init__(self, watch: dict[str, str]) -> None:
        self.watch, self.seen = watch, []

    def grab(self, model) -> None:
        params = dict(model.named_parameters())
        self.seen.append({k: params[n].detach().clone() for k, n in self.watch.items()})

    def on_train_begin(self, args, state, control, model=None, **kw):
        self.grab(model)

    def on_step_end(self, args, state, control, model=None, **kw):
        self.grab(model)

    def first_change(self, key: str) -> int | None:
        """The first step (1-based) after which `key` differs from the step before."""
        for step in range(1, len(self.seen)):
            if not torch.equal(self.seen[step][key], self.seen[step - 1][key]):
                return step
        return None


LLAMA = {"head": "lm_head.weight", "top": "model.layers.1.mlp.up_proj.weight",
         "bottom": "model.layers.0.mlp.up_proj.weight", "embed": "model.embed_tokens.weight"}


def test_freeze_gradual_thaws_one_block_every_k_steps(tiny_recipe, tmp_path):
    snaps = Snapshots(LLAMA)
    recipe = tiny_recipe("freeze", "training.max_steps=6", trainable_layers=2, unfreeze_every=2)
    trainer, _, _ = build_trainer(recipe, tmp_path / "w", callbacks=[snaps])
    trainer.train()
    assert snaps.first_change("head") == 1
    assert snaps.first_change("top") == 3      # frozen for steps 1-2, thawed at global step 2
    assert snaps.first_change("bottom") == 5   # frozen for steps 1-4
    assert snaps.first_change("embed") is None  # below the floor: never trains
    assert trainer.callback_handler.callbacks[-1].unfrozen_at == [2, 4]


def test_full_gradual_ends_with_the_embeddings(tiny_recipe, tmp_path):
    snaps = Snapshots({"norm": "model.norm.weight", **{k: LLAMA[k] for k in ("top", "bottom", "embed")}})
    recipe = tiny_recipe("full", "training.max_steps=4", unfreeze_every=1)
    trainer, _, _ = build_trainer(recipe, tmp_path / "w", callbacks=[snaps])
    trainer.train()
    # tied head = the embeddings: on top only the final norm trains at first
    assert [snaps.first_change(k) for k in ("norm", "top", "bottom", "embed")] == [1, 2, 3, 4]


def test_gradual_by_epoch_on_a_classifier(cls_recipe, tmp_path):
    snaps = Snapshots({"head": "classifier.weight", "l2": "bert.encoder.layer.2.output.dense.weight",
                       "l1": "bert.encoder.layer.1.output.dense.weight"})
    # 48 rows / batch 16 = 3 steps per epoch
    recipe = cls_recipe("freeze", "training.max_steps=-1", "training.num_train_epochs=3",
                        "training.per_device_train_batch_size=16", trainable_layers=2,
                        unfreeze_every="epoch")
    trainer, _, _ = build_trainer(recipe, tmp_path / "w", callbacks=[snaps])
    trainer.train()
    assert [snaps.first_change(k) for k in ("head", "l2", "l1")] == [1, 4, 7]


def test_freeze_by_regex_and_what_is_saved(tiny_recipe):
    result = train(tiny_recipe("freeze", trainable_layers=0, trainable=[r"layers\.0\.self_attn\.q_proj"]),
                   echo=lambda *_: None)
    trained = {n for n, p in result.trainer.model.named_parameters() if p.requires_grad}
    assert trained == {"model.layers.0.self_attn.q_proj.weight", "model.norm.weight", "lm_head.weight"}
    from safetensors import safe_open

    with safe_open(str(result.run_dir / "weights" / "trained.safetensors"), "pt") as f:
        assert set(f.keys()) == trained


@pytest.mark.parametrize("opts, message", [
    ({"trainable_layers": 5}, r"strategy\.trainable_layers: 5, but the model has 2 transformer blocks"),
    ({"trainable": ["nothing_like_this"]}, r"strategy\.trainable: 'nothing_like_this' matches no parameter"),
])
def test_freeze_refuses_what_the_model_has_not(tiny_recipe, tmp_path, opts, message):
    with pytest.raises(UserError, match=message):
        build_trainer(tiny_recipe("freeze", **opts), tmp_path / "w")


@pytest.mark.parametrize("opts, message", [
    ("strategy.unfreeze_every=0", r"strategy\.unfreeze_every: must be at least 1, got 0"),
    ("strategy.unfreeze_every=weekly", r"strategy\.unfreeze_every: a number of steps"),
    ("strategy.trainable=[\"(\"]", r"strategy\.trainable: '\(' is not a regex"),
])
def test_bad_freeze_options_are_named(opts, message):
    with pytest.raises(UserError, match=r"^command line: " + message):
        load_recipe("minilm-l6/freeze", [opts])
