"""`merge`: fold what a run trained into a standalone model, and prove it is faithful.

    reference = the model as trained (adapter on its base), float32   -> logits on probe texts
    merged    = strategy.merge(reference), cast to --dtype, saved, reloaded with plain
                transformers from the saved folder                     -> logits on the same texts

The saved folder holds sharded safetensors, config, generation config and the tokenizer with the
chat template used in training. It is built in a hidden sibling folder and renamed into place
only once the drift check (drift.py) passes; otherwise it is removed and the merge fails.

QLoRA runs also report what quantization cost: the training-time model (4/8-bit base + adapter)
and the adapter on the original full-precision base, each against the merged model.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from ..errors import CheckFailed, UserError
from ..run_reader import Opened, open_run
from . import drift

DTYPES = ("auto", "float32", "float16", "bfloat16")


def check_out(out: Path, overwrite: bool, run: Path) -> None:
    """Refuse an existing --out unless --overwrite; never one inside a run or holding one (the
    run itself, or any other), nor an interrupted training run's output_dir."""
    from .. import checkpoints
    from ..rundir import CHECKPOINTS, RECIPE, enclosing_run, partial_dir

    resolved = out.resolve()
    inside = enclosing_run(resolved)
    if inside is not None or run.resolve().is_relative_to(resolved):
        how = "is or is inside the run" if inside is not None else "holds the run"
        raise UserError(f"--out: '{out}' {how} '{inside or run}', and writing there would destroy "
                        "it; choose a path outside every run, e.g. merged/NAME")
    if checkpoints.latest(partial_dir(out) / CHECKPOINTS)[0] is not None:
        raise UserError(f"--out: '{out}' is the output_dir of an interrupted training run (its "
                        f"checkpoints are in {partial_dir(out)}); choose another path")
    if not out.exists():
        return
    if not overwrite:
        raise UserError(f"--out: '{out}' already exists; choose another path or add --overwrite")
    if next(out.rglob(RECIPE), None) is not None or \
            Path.cwd().resolve().is_relative_to(resolved):
        raise UserError(f"--out: '{out}' holds a run or the current folder, so --overwrite "
                        "will not replace it; choose another path")


def resolve_dtype(dtype: str, recipe: Any) -> str:
    """'auto': the recipe's dtype, else the dtype the base checkpoint was saved in."""
    if dtype not in DTYPES:
        raise UserError(f"--dtype: '{dtype}' is not one of {', '.join(DTYPES)}")
    if dtype != "auto":
        return dtype
    if recipe.dtype in DTYPES[1:]:
        return recipe.dtype
    from ..models import load_config

    saved = getattr(load_config(recipe.model, recipe.trust_remote_code), "dtype", None)
    name = str(saved).replace("torch.", "") if saved is not None else "float32"
    return name if name in DTYPES[1:] else "float32"


@dataclasses.dataclass
class MergeResult:
    out: Path
    dtype: str
    source: str                      # where the probe texts came from
    drift: drift.Drift               # reference vs merged (the check)
    quantization: dict[str, drift.Drift]
    model: Any = None                # the reloaded merged model (for export), if kept
    probes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    logits: list[Any] = dataclasses.field(default_factory=list)  # the merged model's, if kept
    seqs: list[Any] = dataclasses.field(default_factory=list)    # the probes as token ids, if kept


def merge_run(run_dir: str | Path | Opened, out: str | Path, dtype: str = "auto",
              overwrite: bool = False, echo: Callable[[str], Any] = print,
              keep_model: bool = False) -> MergeResult:
    """Merge `run_dir` into `out`, check drift, and write the folder only if the check passes.
    `run_dir` may be the run already opened and checked as mergeable (export's GGUF path)."""
    import torch
    from transformers import AutoModelForCausalLM

    from ..scores.generative import stop_ids
    from ..models import load_model
    from ..rundir import staged, write_json
    from ..loading import model_load_kwargs

    out = Path(out)
    if isinstance(run_dir, Opened):
        run = run_dir
    else:
        run = open_run(run_dir, "merge")
        run.strategy.check_mergeable()
        run.check_base()
    dtype = resolve_dtype(dtype, run.recipe)
    check_out(out, overwrite, run.path)
    rows, source = drift.probe_rows(run.recipe, run=run.path)
    seqs = drift.encode(run.tokenizer, [drift.full_text(r, run.tokenizer) for r in rows])
    echo(f"merging {run.path} ({run.recipe.strategy.name}) -> {out} as {dtype}; probes: {source}")

    before: dict[str, list[Any]] = {}
    if "quantization_config" in run.strategy.load_options():
        for label, kwargs in (("training-time quantized model", model_load_kwargs(run.recipe, run.strategy)),
                              ("adapter on the original full-precision base", {"dtype": torch.float32})):
            model = run.strategy.restore(load_model(run.recipe.model, kwargs), run.artifact)
            before[label] = drift.logits(model.eval(), seqs)
            del model
    model = run.strategy.load_for_merge(run.recipe, run.artifact).eval()
    reference = drift.logits(model, seqs)
    merged = run.strategy.merge(model).to(getattr(torch, dtype))
    merged.generation_config.eos_token_id = stop_ids(merged, run.tokenizer)
    merged.generation_config.pad_token_id = run.tokenizer.pad_token_id
    with staged(out) as tmp:
        merged.save_pretrained(tmp, max_shard_size="2GB")
        run.tokenizer.save_pretrained(tmp)
        del model, merged
        reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=getattr(torch, dtype)).eval()
        after = drift.logits(reloaded, seqs)
        result = MergeResult(out, dtype, source, drift.compare(reference, after),
                             {label: drift.compare(b, after) for label, b in before.items()})
        echo(result.drift.line("drift (as trained vs merged)"))
        for label, d in result.quantization.items():
            echo(d.line(f"quantization cost ({label} vs merged)"))
        write_json(tmp / "merge_report.json", _report(run, result))
        if not keep_model:  # an export's own folder gets the card, not its merged scratch copy
            from .card import write_card

            write_card(tmp, run, "safetensors", "")
        if not result.drift.within(dtype):
            mean, agree = drift.TOLERANCE[dtype]
            raise CheckFailed(f"merge drifted beyond the {dtype} tolerance (mean |Δlogit| <= {mean}, "
                              f"agreement >= {agree:.0%}): {result.drift.line('drift')}; "
                              f"nothing was written to {out}")
    if keep_model:  # an export compares its own output with these, without recomputing
        result.model, result.probes, result.logits, result.seqs = reloaded, rows, after, seqs
    echo(f"merged model written to {out}")
    return result


def _report(run: Opened, result: MergeResult) -> dict[str, Any]:
    mean, agree = drift.TOLERANCE[result.dtype]
    return {"run": str(run.path), "strategy": run.recipe.strategy.name, "base": run.recipe.model,
            "dtype": result.dtype, "probes": result.source,
            "tolerance": {"mean_abs": mean, "agreement": agree},
            "drift": dataclasses.asdict(result.drift),
            "quantization": {k: dataclasses.asdict(v) for k, v in result.quantization.items()}}
