"""`plan --longest`: the longest `data.max_length` a recipe trains at on a GPU, at its batch size,
and the single setting that would go furthest beyond it.

The model and its static terms are built once per recipe and target (plan.model_terms); each
length tried then costs one traced layer. Memory grows with the length, so a binary search finds
the longest that fits, to the token. The model's own limit (`max_position_embeddings`) is not a
memory limit: a length past it is reported as such, not cut.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..errors import UserError

if TYPE_CHECKING:
    from ..recipe import Recipe
    from .target import Target

CEILING = 1 << 22  # 4M tokens: past every card we list
TILE = 4096        # the tile suggested for training.mlp_tile_tokens
START = 1024       # where the doubling starts


@dataclasses.dataclass
class Longest:
    tokens: int            # 0: not even one token fits
    limit: int | None      # the model's max_position_embeddings
    batch: int
    host: int = 0          # bytes of activations offloaded to host RAM at that length


class Models:
    """plan.model_terms for each recipe and kind of target, built once: the GPUs of one dtype
    share a model, and every change tried reuses its own."""

    def __init__(self) -> None:
        self.built: dict[tuple[int, bool, bool], Any] = {}

    def get(self, recipe: Recipe, target: Target) -> Any:
        from . import model_terms

        key = (id(recipe), target.cuda, target.bf16)
        if key not in self.built:
            self.built[key] = recipe, model_terms(recipe, target)  # the recipe kept: ids stay unique
        return self.built[key][1]


def longest(recipe: Recipe, target: Target, models: Models | None = None) -> Longest:
    from . import estimate, settings

    model = (models or Models()).get(recipe, target)
    fitting: dict[int, Any] = {}  # length -> its estimate, for those that fit

    def fits(length: int) -> bool:
        est = estimate(recipe, target, longest=length, model=model)
        if est.fits:
            fitting[length] = est
        return est.fits

    low, high = 0, START  # fits(low) (or low is 0), not fits(high)
    if not fits(1):
        high = 1
    while high < CEILING and fits(high):
        low, high = high, high * 2
    if high >= CEILING and fits(CEILING):
        low = high = CEILING
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    limit = getattr(model.config, "max_position_embeddings", None)
    host = fitting[low].host if low else 0
    return Longest(low, limit, settings(recipe, target, longest=1).batch, host)


def changes(recipe: Recipe) -> list[str]:
    """Single settings that shorten what a token costs, where the recipe has not set them."""
    training = recipe.training
    out = []
    if not training.get("activation_offloading"):
        out.append("training.activation_offloading=true")
    if training.get("mlp_tile_tokens") is None:
        out.append(f"training.mlp_tile_tokens={TILE}")
    if training.get("gradient_checkpointing") is False:
        out.append("training.gradient_checkpointing=true")
    if getattr(recipe.strategy, "dropout", 0):
        out.append("strategy.dropout=0")
    if getattr(recipe.strategy, "upcast_base", False):
        out.append("strategy.upcast_base=false")
    if str(training.get("optim", "adamw_torch")).startswith("adamw_torch"):
        out.append("training.optim=adamw_bnb_8bit")
    return out


def changed(ref: str, overrides: list[str], recipe: Recipe) -> dict[str, Recipe]:
    """The recipe under each of `changes`, loaded once; a change the recipe refuses is left out."""
    from ..recipe import load_recipe

    out = {}
    for change in changes(recipe):
        try:
            out[change] = load_recipe(ref, [*overrides, change])
        except UserError:
            continue
    return out


def furthest(variants: dict[str, Recipe], target: Target, base: Longest,
             models: Models) -> tuple[str, Longest] | None:
    """The single change (of `changed`) that trains the longest rows, if it beats `base`."""
    best: tuple[str, Longest] | None = None
    for change, other_recipe in variants.items():
        try:
            other = longest(other_recipe, target, models)
        except UserError:
            continue
        if other.tokens > (best[1].tokens if best else base.tokens):
            best = change, other
    return best


def line(result: Longest, target: Target, recipe: Recipe) -> str:
    s = recipe.strategy
    what = f"batch {result.batch}, {s.name}" + (f" r={s.r}" if hasattr(s, "r") else "")
    if result.host:
        what += f"; {result.host / 2**30:.1f} GiB of activations in host RAM"
    past = ""
    if result.limit and result.tokens > result.limit:
        past = f"; past the model's max_position_embeddings ({result.limit:,})"
    if result.tokens >= CEILING:
        return f"longest max_length on {target.name}: at least {CEILING:,} tokens ({what}{past})"
    return f"longest max_length on {target.name}: {result.tokens:,} tokens ({what}{past})"
