"""Every training log line says what its steps cost: real tokens per second, the share of
padding in its batches (computed exactly here from known lengths), and the peak memory; the
final record and the run's summary carry the whole session's figures."""
from __future__ import annotations

import json

import pytest

from adapters_sft.cli.train import report
from adapters_sft.trainer import train


def test_log_lines_carry_tokens_per_second_padding_and_peak_memory(tiny_recipe, tmp_path, capsys):
    # 4 rows a batch, in data order and padded: the padding is what the rows' lengths imply
    recipe = tiny_recipe("lora", "training.max_steps=4", "training.train_sampling_strategy=sequential",
                         "data.eval=null", "eval.metric=none")
    result = train(recipe, echo=lambda line: None)
    lines = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in lines if "loss" in r]
    assert len(steps) == 4 and all(r["tokens_per_second"] > 0 and r["peak_memory_gb"] > 0.05 for r in steps)
    dataset = result.trainer.train_dataset
    lengths = [len(ids) for ids in dataset["input_ids"]]
    for step, r in enumerate(steps):
        batch = lengths[4 * step:4 * step + 4]
        assert r["padding"] == pytest.approx(1 - sum(batch) / (4 * max(batch)), abs=1e-4)
    final = next(r for r in lines if r.get("final"))
    assert final["tokens_per_second"] > 0 and 0 <= final["padding"] < 1
    report(result)
    out = capsys.readouterr().out
    assert f"trained at {final['tokens_per_second']:g} tokens/s (real tokens), padding {final['padding']:.1%}" in out
    assert "(process RSS)" in out
