"""`adapters-sft plan`: will a recipe fit, and if not, what would make it fit; before anything
loads. The estimate is of the peak of the tensors a training step holds (what
`torch.cuda.max_memory_allocated` measures), term by term, from the model's config.json alone:

  static.py       base weights (dtype, 4/8-bit storage), trainable parameters, gradients,
                  optimizer states: counted exactly on the model built without weights
  activations.py  what the forward pass keeps for the backward pass, traced on one layer
                  without memory; the loss head
  target.py       the GPU (or CPU) it is for, and what it has for tensors

The settings are the run's own: the recipe's values, else the defaults training would use on
the target (bf16 and gradient checkpointing on a GPU; fp32 without on a CPU). The static terms
are checked exactly against real models in tests/plan/; how the whole estimate compares with
measured peaks is in docs/benchmarks.md.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from .target import GIB, Target
from .term import Term

if TYPE_CHECKING:
    from ..recipe import Recipe

DEFAULT_BATCH = 8          # TrainingArguments.per_device_train_batch_size
DEFAULT_OPTIM = "adamw_torch_fused"  # TrainingArguments.optim in transformers 5


class NotPlanned(UserError):
    """A recipe the plan does not model (training goes ahead unplanned)."""


@dataclasses.dataclass
class Settings:
    dtype: str
    checkpointing: bool
    batch: int
    length: int
    optim: str
    offload: bool = False          # training.activation_offloading (TRL's), on a GPU
    mlp_tile: int | None = None    # training.mlp_tile_tokens (tiled_mlp.py)


@dataclasses.dataclass
class Estimate:
    recipe: str
    model: str
    target: Target
    settings: Settings
    terms: list[Term]
    notes: list[str]
    processes: int = 1  # data-parallel processes: each on its own GPU, or sharing a CPU's RAM
    host: int = 0       # activations offloaded to host memory (pinned RAM), one process

    @property
    def tensors(self) -> int:
        """The estimated peak of one process's tensors (what max_memory_allocated measures)."""
        return sum(t.bytes for t in self.terms)

    @property
    def needed(self) -> int:
        """What the target must hold: one process per GPU; on a CPU, every process in its RAM."""
        shared = 1 if self.target.cuda else self.processes
        return shared * (self.tensors + self.target.overhead)

    @property
    def fits(self) -> bool:
        return self.needed <= self.target.memory

    def verdict(self) -> str:
        word = "fits" if self.fits else "does NOT fit"
        each = f" for {self.processes} processes" if self.processes > 1 and not self.target.cuda else \
            " a process" if self.processes > 1 else ""
        host = f"; {gib(self.host)} of activations offloaded to host RAM" if self.host else ""
        return (f"plan: {self.gpu_recipe_note()}needs about {gib(self.needed)}{each} of {gib(self.target.memory)} on "
                f"{self.target.name}: {word} ({self.settings.batch} x {self.settings.length} tokens, "
                f"{self.settings.dtype}, gradient checkpointing {'on' if self.settings.checkpointing else 'off'}"
                f"{host})")

    def gpu_recipe_note(self) -> str:
        """'' unless a recipe made for a GPU is planned on a machine without one: say so first,
        and how to plan the card it is for."""
        from .target import meant_for

        card = meant_for(self.recipe)
        if card is None or self.target.cuda:
            return ""
        return meant_for_note(self.recipe, *card) + "; here it "


def meant_for_note(recipe: str, count: int, size: str) -> str:
    gpus = f"{count} GPUs of {size[:-2]} GB" if count > 1 else f"a {size[:-2]} GB GPU"
    flags = f"--gpu {size}" + (f" --nproc {count}" if count > 1 else "")
    return (f"{recipe} is a recipe for {gpus} and this machine has no GPU "
            f"('adapters-sft plan {recipe} {flags}' plans that card)")


def gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def settings(recipe: Recipe, target: Target, longest: int | None = None) -> Settings:
    """The run's settings on `target`; rows of `longest` tokens where the data is known (the
    longest training row), else of data.max_length (the most any row can have)."""
    from ..loading import weight_dtype

    training = recipe.training
    dtype = weight_dtype(recipe, target.cuda, target.bf16)
    length = longest or recipe.data.max_length
    if not length:
        raise NotPlanned(f"{recipe.where('data.max_length')}data.max_length: unset, so rows have "
                         "no longest length to plan for; set data.max_length")
    tile = training.get("mlp_tile_tokens")
    return Settings(dtype, bool(training.get("gradient_checkpointing", target.cuda)),
                    int(training.get("per_device_train_batch_size", DEFAULT_BATCH)), int(length),
                    str(training.get("optim", DEFAULT_OPTIM)),
                    # off where there is no GPU, as training_args makes it
                    bool(training.get("activation_offloading")) and target.cuda,
                    None if tile is None else int(tile))


# What the plan reads from config.json: a missing one would be planned with transformers'
# default for the architecture (Llama's 4096 hidden size), silently.
NEEDED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "intermediate_size")


def complete(config: Any, source: str, where: str) -> Any:
    """`config` if the config.json at `source` gave every field the plan reads (under its own
    name or the architecture's alias, as GPT-2's n_embd), else a UserError naming the field."""
    from transformers import PretrainedConfig

    given = PretrainedConfig.get_config_dict(source, local_files_only=True)[0]
    given = given.get("text_config") or given  # a multimodal model: its language model's
    text = config.get_text_config()
    aliases = {v: k for k, v in getattr(type(text), "attribute_map", {}).items()}
    names = set(given) | {aliases[k] for k in given if k in aliases}
    for field in NEEDED:
        if hasattr(text, field) and field not in names:
            raise NotPlanned(f"{where}model: its config.json has no '{field}', which the plan "
                            f"needs (transformers would assume {getattr(text, field)!r}); add it "
                            "to config.json")
    return config


def plan_config(recipe: Recipe) -> Any:
    """The model's config.json: a local folder or alias, a hub id already in the local cache, or
    a copy we ship for the models of the shipped recipes (configs/); refused where it lacks a
    field the plan reads."""
    config, source = _find_config(recipe)
    return complete(config, source, recipe.where("model"))


def _find_config(recipe: Recipe) -> tuple[Any, str]:
    from pathlib import Path

    from ..models import load_config, resolve_model

    path = resolve_model(recipe.model)
    if Path(path).exists():
        return load_config(recipe.model, recipe.trust_remote_code), path
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, local_files_only=True,
                                          trust_remote_code=recipe.trust_remote_code), path
    except (OSError, ValueError):
        pass
    shipped = Path(__file__).parent / "configs" / f"{path.replace('/', '--')}.json"
    if shipped.is_file():
        return AutoConfig.from_pretrained(shipped), str(shipped)
    raise UserError(f"{recipe.where('model')}model: '{recipe.model}': no config.json here (not "
                    "in the local hub cache either); set model=FOLDER holding its config.json")


@dataclasses.dataclass
class Model:
    """What a plan needs that does not depend on the row length (reused by `longest`)."""
    config: Any
    static: Any  # static.Static
    dtype: Any


def model_terms(recipe: Recipe, target: Target) -> Model:
    """The model of `recipe` on `target` built without weights, with its static terms; refuses
    what the plan does not model."""
    import torch

    from ..loading import build_strategy, weight_dtype
    from ..registry import get_task
    from .static import static_terms

    task = get_task(recipe.task)
    if not task.generative:
        raise NotPlanned(f"{recipe.where('task')}task: plan estimates generative models; "
                         f"{recipe.task}'s memory is not modelled yet")
    if task.unplanned:
        raise NotPlanned(f"{recipe.where('task')}task: {task.unplanned}")
    if not task.chunked_loss_head or recipe.training.get("label_smoothing_factor"):
        raise NotPlanned(f"{recipe.where('task')}task: {recipe.task} computes its loss from the full "
                         "logits (TRL's chunked head is what the plan models); not modelled yet")
    config = plan_config(recipe)
    dtype = getattr(torch, weight_dtype(recipe, target.cuda, target.bf16))
    strategy = build_strategy(recipe)
    adapter = getattr(recipe.strategy, "adapter_dtype", None)
    if adapter is not None:
        adapter = getattr(torch, "bfloat16" if target.cuda and target.bf16 else "float32") \
            if adapter == "auto" else getattr(torch, adapter)
    static = static_terms(config, strategy, dtype, adapter, str(recipe.training.get("optim", DEFAULT_OPTIM)),
                          sharded=recipe.distributed.sharding != "none")
    return Model(config, static, dtype)


# What stays on the GPU of what activation offloading moves out: TRL keeps the tensors it is
# still copying out (its forward stash, max_fwd_stash_size=5) and those it brought back for the
# layer the backward pass is in; we count the 5 largest a layer keeps, from reading its code
# (trl/models/activation_offloading.py), not measured on a GPU.
OFFLOAD_STASH = 5


def estimate(recipe: Recipe, target: Target, longest: int | None = None,
             processes: int = 1, model: Model | None = None) -> Estimate:
    """The term-by-term estimate of `recipe`'s peak memory on `target`; loads no weights.
    `longest`: the longest training row in tokens, when the data has been read; `processes`:
    data-parallel processes (DDP adds a bucket copy of the gradients to each); `model`: what
    model_terms returned for this recipe and target, to plan several lengths at little cost."""
    from ..registry import get_task
    from .activations import activation_bytes, hidden_dtype, loss_head_bytes

    task = get_task(recipe.task)
    m = model or model_terms(recipe, target)
    config, static, dtype = m.config, m.static, m.dtype
    s = settings(recipe, target, longest)
    from .. import tiled_mlp

    if getattr(static.model, "_plan_tile", None) != s.mlp_tile:  # walking the model costs
        tiled_mlp.apply(static.model, s.mlp_tile)
        static.model._plan_tile = s.mlp_tile
    sharding = recipe.distributed.sharding
    rows = task.sequences_per_row * s.batch
    try:
        acts, one = activation_bytes(static.model, rows, s.length, s.checkpointing, static.quantized,
                                     static.bits, static.peft, target.cuda, s.mlp_tile)
    except RuntimeError as exc:  # the layers run on the meta device, which holds no values
        if "meta" not in str(exc):
            raise
        raise NotPlanned(f"{recipe.where('strategy.name')}strategy.name: {recipe.strategy.name}'s "
                         "layers read tensor values as they compute, which the plan's measurement "
                         "(on the meta device, without weights) cannot; its memory is not modelled "
                         "yet") from None
    layers = config.num_hidden_layers
    kept = f"{layers} layers keep their input" if s.checkpointing else f"{layers} layers"
    host = 0
    if s.offload:  # TRL's offloading: what the layers keep goes to host memory, but its stash
        stash = acts * min(OFFLOAD_STASH, layers) // layers if s.checkpointing else min(acts, one)
        host, acts = acts - stash, stash
        kept += f"; {gib(host)} of it offloaded to host RAM, {min(OFFLOAD_STASH, layers)} " \
                "layers' worth in flight" if s.checkpointing else "; offloaded to host RAM but a layer's worth"
    # TRL's head computes in autocast's dtype on a GPU, in the hidden states' own on a CPU
    computes = dtype.itemsize if target.cuda else hidden_dtype(static.model).itemsize
    head = loss_head_bytes(static.model, rows, s.length, computes, target.cuda)
    tiles = f", its MLP in {s.mlp_tile}-token tiles" if s.mlp_tile and rows * s.length > s.mlp_tile else ""
    if s.checkpointing and one > head:
        backward = Term("backward peak", one, f"one layer re-run by checkpointing{tiles}")
    else:
        backward = Term("backward peak", head, "the loss head's backward: TRL's chunked log-probs, "
                                               "no full logits")
    terms = [
        Term("base weights", static.weights, "frozen parameters and buffers"),
        Term("trainable parameters", static.trainable, f"{static.trainable_numbers:,} numbers"),
        gradients(static.gradients, acts + backward.bytes,
                  int(recipe.training.get("gradient_accumulation_steps", 1))),
        Term("optimizer states", static.optimizer, static.optimizer_note),
        Term("activations", acts, f"kept for the backward pass: {rows} x {s.length} tokens, {kept}"),
        backward,
    ]
    notes = []
    if recipe.training.get("activation_offloading") and not target.cuda:
        notes.append("training.activation_offloading: off on a CPU (the activations are in RAM already)")
    if processes > 1 and sharding == "none":  # DDP's buckets: the saving of gradient_as_bucket_view, per its docs
        terms.append(Term("DDP buckets", static.gradients, "a copy of the gradients, for the all-reduce"))
    if sharding != "none":
        from .sharded import sharded_terms

        terms = sharded_terms(terms, static, sharding, recipe.distributed.cpu_offload, processes,
                              recipe.distributed.wrap)
        notes.append(f"distributed.sharding={sharding} over {processes} processes: an estimate from "
                     "how the engine is documented to split and gather, not yet measured on GPUs")
    if task.sequences_per_row > 1:
        notes.append(f"task {recipe.task}: {task.sequences_per_row} sequences a row, run together")
    if task.uses_reference and not static.peft:  # PEFT's reference is the adapter switched off
        terms.append(Term("reference model", static.weights + static.trainable,
                          f"task {recipe.task}: a frozen copy of the model"))
    return Estimate(recipe.name, recipe.model, target, s, terms, notes, processes, host)


def gradients(size: int, freed: int, accumulation: int) -> Term:
    """Gradients are made during the backward pass while the activations are freed: without
    gradient accumulation only what they add beyond that counts at the peak (the optimizer
    step drops them: zero_grad sets them to None); with it, they are all kept between
    micro-batches, through the next one's peak."""
    if accumulation > 1:
        return Term("gradients", size, f"one per trainable number, kept across {accumulation} "
                                       "accumulated micro-batches")
    return Term("gradients", max(0, size - freed), f"{gib(size)}, made as the backward pass frees "
                                                    "activations: what exceeds those")


# Changes `advise` tries, each alone, in the order a user would (cheapest in quality first).
def _changes(est: Estimate, recipe: Recipe) -> list[list[str]]:
    s = est.settings
    out: list[list[str]] = []
    if not s.checkpointing:
        out.append(["training.gradient_checkpointing=true"])
    accumulation = int(recipe.training.get("gradient_accumulation_steps", 1))
    batch = s.batch // 2
    while batch >= 1:  # same effective batch through gradient accumulation
        out.append([f"training.per_device_train_batch_size={batch}",
                    f"training.gradient_accumulation_steps={accumulation * s.batch // batch}"])
        batch //= 2
    if s.optim.startswith("adamw_torch"):
        out.append(["training.optim=adamw_bnb_8bit"])
    length = s.length // 2
    while length >= 256:
        out.append([f"data.max_length={length}"])
        length //= 2
    if recipe.strategy.name in ("lora", "full", "freeze"):
        out.append(["strategy=qlora"])
    if recipe.distributed.sharding != "none" and not recipe.distributed.cpu_offload:
        out.append(["distributed.cpu_offload=true"])
    return out


def advise(ref: str, overrides: list[str], est: Estimate, recipe: Recipe) -> list[tuple[str, Estimate]]:
    """Single changes that make the recipe fit: the first of each kind (the largest batch, the
    longest max_length) that does."""
    from ..recipe import load_recipe

    found: list[tuple[str, Estimate]] = []
    kinds: set[str] = set()
    for change in _changes(est, recipe):
        kind = change[0].split("=")[0]
        if kind in kinds:
            continue
        try:
            other = estimate(load_recipe(ref, [*overrides, *change]), est.target, processes=est.processes)
        except UserError:
            continue
        if other.fits:
            found.append((" ".join(change), other))
            kinds.add(kind)
    return found
