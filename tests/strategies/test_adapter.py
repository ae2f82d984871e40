"""Bottleneck adapters start as the identity and save only their own tensors."""
from __future__ import annotations

import pytest
import torch

from adapters_sft.models import load_model
from adapters_sft.strategies.adapter import AdapterOptions, AdapterStrategy
from adapters_sft.errors import UserError
from adapters_sft.fields import build


@pytest.mark.parametrize("kind", ["houlsby", "pfeiffer"])
def test_fresh_adapters_leave_outputs_exactly_unchanged(kind, tiny_model_dir):
    ids = torch.tensor([[1, 5, 10, 11, 2, 7]])
    base = load_model(str(tiny_model_dir), {}).eval()
    with torch.no_grad():
        want = base(input_ids=ids).logits
    model = AdapterStrategy(AdapterOptions(name="adapter", kind=kind)).prepare(base).model.eval()
    n_adapters = sum(1 for n, _ in model.named_modules() if n.endswith(".adapter"))
    assert n_adapters == (4 if kind == "houlsby" else 2)
    with torch.no_grad():
        got = model(input_ids=ids).logits
    assert torch.equal(got, want)
    # ... and the adapters are live: a non-zero up-projection changes the output
    with torch.no_grad():
        next(m for n, m in model.named_modules() if n.endswith(".adapter")).up.bias.fill_(0.5)
        assert not torch.equal(model(input_ids=ids).logits, want)


def test_bad_options_name_their_key():
    with pytest.raises(UserError, match=r"^strategy\.kind: must be houlsby or pfeiffer"):
        AdapterOptions(name="adapter", kind="parallel")
    with pytest.raises(UserError, match=r"^strategy\.reduction_factor: must be at least 1, got 0"):
        build(AdapterOptions, {"name": "adapter", "reduction_factor": 0}, "strategy")
