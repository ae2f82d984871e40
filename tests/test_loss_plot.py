"""loss.png: drawn from metrics.jsonl at the end of a run and at each checkpoint, with the
curves that have data; a line cut off by a kill is skipped."""
from __future__ import annotations

import json
import types

from adapters_sft.loss_plot import draw_loss
from adapters_sft.rundir import LOSS_PLOT, METRICS, MetricsWriter
from adapters_sft.trainer import train

PNG = b"\x89PNG\r\n\x1a\n"


def test_the_curves_with_data_are_drawn_and_a_cut_line_is_skipped(tmp_path):
    metrics = tmp_path / METRICS
    rows = [{"step": s, "loss": 2.0 / s, "learning_rate": 1e-3, "tokens_per_second": 100.0 + s} for s in (1, 2, 3)]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 4, "lo')
    out = tmp_path / LOSS_PLOT
    assert draw_loss(metrics, out) == ["training loss", "learning rate", "tokens/s (real tokens)"]
    assert out.read_bytes()[:8] == PNG and not list(tmp_path.glob("*.tmp.png"))
    with metrics.open("a") as f:
        f.write("\n" + json.dumps({"step": 3, "eval_loss": 1.5}) + "\n")
    assert "held-out loss" in draw_loss(metrics, out)


def test_a_run_with_nothing_logged_yet_draws_empty_panels_without_warning(tmp_path):
    import warnings

    metrics = tmp_path / METRICS
    metrics.write_text(json.dumps({"step": 1, "train_runtime": 1.0, "final": True}) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert draw_loss(metrics, tmp_path / LOSS_PLOT) == []


def test_a_checkpoint_draws_the_curves_so_far(tmp_path):
    writer = MetricsWriter(tmp_path / METRICS, "r")
    writer.write({"step": 1, "loss": 1.0})
    writer.as_callback().on_save(None, types.SimpleNamespace(), None)
    assert (tmp_path / LOSS_PLOT).read_bytes()[:8] == PNG


def test_a_finished_run_has_its_curves(tiny_recipe):
    run = train(tiny_recipe("lora", "eval.metric=none"), echo=lambda *_: None).run_dir
    assert (run / LOSS_PLOT).read_bytes()[:8] == PNG


def test_a_grpo_run_draws_its_rewards_and_kl(tmp_path):
    metrics = tmp_path / METRICS
    rows = [{"step": s, "loss": 0.01, "learning_rate": 1e-3, "reward": 0.1 * s, "rewards/exact_match/mean": 0.05 * s,
             "rewards/regex/mean": 0.1 * s, "kl": 0.01 * s} for s in (1, 2, 3)]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    drawn = draw_loss(metrics, tmp_path / LOSS_PLOT)
    assert drawn == ["training loss", "learning rate", "reward (weighted)", "exact_match", "regex",
                     "KL to the reference"]
