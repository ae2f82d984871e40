"""The run fingerprint: what must be equal for a checkpoint to continue the same computation
(recipe, data rows, strategy, processes, device kind, library versions), written by train into
the run (fingerprint.json) and compared by resume (`differences`). Its own module: the trainer
writes it and resume reads it, and neither should import the other for it."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data import Splits
    from .recipe import Recipe

# Recipe keys that may change between sessions without changing what is computed.
# where the run lives is not what it computes: a run resumes from wherever it is named
_FREE = ("versions", "overwrite", "checkpoint", "output_dir")


def _rows_hash(rows: list[Any]) -> str:
    from .data.mix import rows_hash  # one hash for a split's rows and for a mixed source's

    return rows_hash(rows)


def fingerprint(recipe: Recipe, splits: Splits) -> dict[str, Any]:
    """What must be equal for a checkpoint to continue the same computation."""
    import torch

    from .rundir import portable_paths, versions

    from .processes import world_size

    return {"name": recipe.name, "versions": versions(), "world_size": world_size(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "data": {"train": _rows_hash(splits.train.rows),
                     "eval": _rows_hash(splits.eval.rows) if splits.eval else None,
                     # a mix: every source's own rows, drawn or not (data/mix.py)
                     "sources": {f["source"]: f["hash"] for f in splits.mix} if splits.mix else None},
            # for model cards (export/card.py); not compared on resume: the hashes are
            "rows": {"train": len(splits.train.rows), "eval": len(splits.eval.rows) if splits.eval else 0},
            "strategy": recipe.strategy.name,
            # as saved in recipe.yaml (paths absolute), which is what resume reloads
            "recipe": {k: v for k, v in portable_paths(recipe.to_dict()).items() if k not in _FREE}}


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def differences(then: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """One phrase per thing that changed, most fundamental first."""
    out = []
    changed = {lib: (v, now["versions"].get(lib)) for lib, v in _as_dict(then.get("versions")).items()
               if now["versions"].get(lib) != v}
    if changed:
        out.append("library versions changed since the checkpoint (" + ", ".join(
            f"{lib} {a} -> {b}" for lib, (a, b) in changed.items()) + ")")
    if then.get("device", now["device"]) != now["device"]:
        out.append(f"the device changed since the checkpoint ({then.get('device')} -> "
                   f"{now['device']}), and with it the dtype and kernels")
    if then.get("world_size") != now["world_size"]:
        out.append(f"the number of processes changed since the checkpoint ({then.get('world_size')} "
                   f"-> {now['world_size']}), which changes the batches")
    for split in ("train", "eval"):
        if _as_dict(then.get("data")).get(split) != now["data"][split]:
            out.append(f"the data changed since the checkpoint (data.{split} rows hash "
                       f"{_as_dict(then.get('data')).get(split)} then, {now['data'][split]} now)")
    sources = _as_dict(_as_dict(then.get("data")).get("sources"))
    for name, digest in (now["data"].get("sources") or {}).items():
        if sources and sources.get(name) != digest:
            out.append(f"the data changed since the checkpoint (source {name} of data.train: rows hash "
                       f"{sources.get(name)} then, {digest} now)")
    if then.get("strategy") != now["strategy"]:
        out.append(f"the strategy changed since the checkpoint ({then.get('strategy')} -> "
                   f"{now['strategy']})")
    old, new = _flat(then.get("recipe", {})), _flat(now["recipe"])
    keys = [k for k in [*old, *(k for k in new if k not in old)]
            if old.get(k) != new.get(k) and not k.startswith("strategy.name")]
    if keys:
        out.append("the recipe changed since the checkpoint (" + ", ".join(
            f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:3]) + ")")
    return out
