"""loss.png: a run's curves from its metrics.jsonl, drawn when the run finishes and at each
checkpoint (so an interrupted run has its curves too): training and held-out loss, learning
rate, and real tokens per second (measure.py), each against the optimizer step; a grpo run
adds the mean reward of its sampled answers, overall and per reward function, and the KL to
the reference."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# (metrics key, label, panel): both losses share the first panel
PANELS = (("loss", "training loss", 0), ("eval_loss", "held-out loss", 0), ("learning_rate", "learning rate", 1),
          ("tokens_per_second", "tokens/s (real tokens)", 2))
REWARD_PANEL = 3  # drawn only for runs that log a reward (task grpo); their KL takes panel 2,
# which their batches leave empty (measure.py counts no tokens for GRPO's)


def series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    # a reward that scored no answer of a step logs null (TRL's nanmean of nothing)
    points = [(r["step"], float(r[key])) for r in records
              if r.get(key) is not None and "step" in r and not r.get("final")]
    return [s for s, _ in points], [v for _, v in points]


def draw_loss(metrics: Path, out: Path, title: str = "") -> list[str]:
    """Draw `out` from the records in `metrics`; the curves drawn (those with data)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    records = []
    for line in metrics.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line cut off by a kill
    rewards = sorted({k for r in records for k in r if k.startswith("rewards/") and k.endswith("/mean")})
    extra = ([("reward", "reward (weighted)", REWARD_PANEL)] +
             [(k, k.split("/")[1], REWARD_PANEL) for k in rewards] + [("kl", "KL to the reference", 2)]) \
        if any("reward" in r for r in records) else []
    fig, axes = plt.subplots(1, 4 if extra else 3, figsize=(17 if extra else 13, 3.6))
    drawn = []
    for key, label, panel in (*PANELS, *extra):
        steps, values = series(records, key)
        if not steps:
            continue
        ax = axes[panel]
        ax.plot(steps, values, marker="o" if key == "eval_loss" else None, markersize=3, label=label)
        ax.set_xlabel("step")
        ax.set_title({0: "loss", REWARD_PANEL: "reward of sampled answers"}.get(panel, label))
        drawn.append(label)
    for ax in axes:
        if len(ax.lines) > 1:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, out)
    return drawn
