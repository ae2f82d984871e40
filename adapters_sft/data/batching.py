"""How generative training batches its rows (`data.packing: auto | true | false`), chosen
before the model loads from the tokenized lengths, and the padding each choice would cost.

  false  padded batches in random order (TRL's default): every row of a batch is padded to
         the batch's longest, and the padding is computed for nothing.
  true   packed, padding-free batches (TRL's `packing=True`, best-fit decreasing into rows of
         `data.max_length`): a batch is one long row with per-sequence `position_ids`, and no
         padding. transformers keeps the sequences apart: FlashAttention through the sequence
         boundaries, SDPA and eager through a block-diagonal mask it builds from the
         `position_ids` (tests/data/test_batching.py checks every example's loss is the same
         packed and unpacked, for each attention implementation selected on CPU).
  auto   packed where the attention is a FlashAttention variant (it attends within each
         sequence only, so packing costs nothing); elsewhere SDPA and eager attend over the
         whole packed row under a dense mask, so a batch size that fits padded can run out of
         memory packed (measured: docs/benchmarks.md), and `auto` groups rows of similar
         length into a batch instead (transformers' length-grouped sampler, still shuffled in
         blocks) when random order would waste more than GROUP_ABOVE of the batch on padding;
         else random order, as is.

Keys a recipe sets itself under `training:` (packing, padding_free, train_sampling_strategy)
win over this choice.
"""
from __future__ import annotations

import random
from typing import Any

FLASH = ("flash_attention_2", "flash_attention_3", "kernels-community/flash-attn",
         "kernels-community/vllm-flash-attn3")
GROUP_ABOVE = 0.10  # of the batch's tokens: below it, grouping gains little and keeps batches random
OWN_KEYS = ("packing", "padding_free", "train_sampling_strategy")


def padding(lengths: list[int], order: list[int], batch: int) -> float:
    """The share of a padded batch's tokens that are padding, over batches taken in `order`."""
    total = real = 0
    for start in range(0, len(order), batch):
        rows = [lengths[i] for i in order[start:start + batch]]
        total += max(rows) * len(rows)
        real += sum(rows)
    return 1 - real / total if total else 0.0


def grouped_order(lengths: list[int], batch: int, seed: int) -> list[int]:
    """The order transformers' length-grouped sampler gives these lengths with this seed."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    generator = torch.Generator()
    generator.manual_seed(seed)
    return list(LengthGroupedSampler(batch, lengths=lengths, generator=generator))


def choose(packing: Any, lengths: list[int], batch: int, seed: int, attention: str | None,
           training: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(the Trainer config values, the line `check` prints) for `data.packing` on these
    (truncated) row lengths with `batch` rows per device."""
    randomly = list(range(len(lengths)))
    random.Random(seed).shuffle(randomly)
    as_is = padding(lengths, randomly, batch)
    grouped = padding(lengths, grouped_order(lengths, batch, seed), batch)
    figures = f"padding: random order {as_is:.1%}, length-grouped {grouped:.1%}, packed 0%"
    own = [k for k in OWN_KEYS if k in training]
    if own:
        return {}, f"batching: as training.{own[0]} sets it ({figures})"
    flash = attention in FLASH
    if packing is True or (packing == "auto" and flash):
        why = "" if packing is True else f", as {attention} attends within each sequence"
        return ({"packing": True, "packing_strategy": "bfd"},
                f"batching: packed, padding-free (data.packing={str(packing).lower()}{why}; {figures})")
    if packing == "auto" and as_is > GROUP_ABOVE:
        return ({"train_sampling_strategy": "group_by_length"},
                f"batching: length-grouped (data.packing=auto; {figures})")
    reason = "" if packing is False else f", under the {GROUP_ABOVE:.0%} where length grouping starts"
    return {}, f"batching: random order (data.packing={str(packing).lower()}; {figures}{reason})"
