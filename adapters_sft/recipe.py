"""Recipes: typed, validated run descriptions, loaded by name or path.

Precedence is defaults < YAML < command-line overrides (`strategy.r=8`). A recipe name is the
path of a shipped YAML file below the top-level `recipes/` without `.yaml` (`smollm2-135m/lora`); anything
that is an existing file is read as a path, so a `cp` copy runs unchanged. Every error names
the key and where it came from (`my.yaml:7` or `command line`).
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import re
from pathlib import Path
from typing import Any, Callable, Literal

import yaml

from .errors import UserError, did_you_mean
from .checkpoints import CheckpointSection
from .sharding import DistributedSection
from .fields import Range, build, check_keys, check_type, option
from .data.formats import FORMATS as DATA_FORMATS
from .data.templates import NAMED as TEMPLATES



class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and floats: only true/false are booleans (YAML 1.1
    would read `save_strategy: no`, a real SFTConfig value, as False), and 1e-4 is a float."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
# YAML 1.2 floats too: YAML 1.1 reads 1e-4 (no dot) as a string, a trap for learning rates.
# Added after the int resolver, so plain integers still resolve as int.
YAML12_FLOAT = re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$")
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", YAML12_FLOAT, list("-+0123456789."))


# A recipe is a few dozen keys a few levels deep. These bounds refuse what only an attack
# needs: aliases that expand a few lines into billions of nodes ("billion laughs"), and
# nesting deep enough to exhaust the recursive composer.
MAX_DEPTH = 64
MAX_NODES = 100_000


class TooLarge(yaml.YAMLError):
    """A document past MAX_DEPTH or MAX_NODES; `problem` and `problem_mark` as YAML's errors."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


def check_size(text: str) -> None:
    """Walk the parser's events (no recursion, nothing built) counting nesting depth and the
    nodes the document expands to, each alias counting as the whole node it names."""
    sizes: dict[str, int] = {}
    open_nodes: list[list[Any]] = []  # [anchor, nodes so far] for each collection being read
    total = 0

    def add(count: int, mark: Any) -> None:
        nonlocal total
        total += count
        for node in open_nodes:
            node[1] += count
        if total > MAX_NODES:
            raise TooLarge(f"expands to more than {MAX_NODES:,} nodes (aliases included)", mark)

    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            add(sizes.get(event.anchor, 1), event.start_mark)
        elif isinstance(event, (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            add(1, event.start_mark)
            if isinstance(event, yaml.ScalarEvent):
                if event.anchor:
                    sizes[event.anchor] = 1
            else:
                open_nodes.append([event.anchor, 1])
                if len(open_nodes) > MAX_DEPTH:
                    raise TooLarge(f"nests deeper than {MAX_DEPTH} levels", event.start_mark)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, count = open_nodes.pop()
            if anchor:
                sizes[anchor] = count


def read_yaml(text: str) -> Any:
    check_size(text)
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


@dataclasses.dataclass
class DataSection:
    train: str | list = option("", "training data: a .jsonl/.json/.csv/.parquet file, a folder of them, "
                                   "builtin:NAME (bundled) or hub:ID[:CONFIG][@SPLIT]; or a list of "
                                   "sources to mix, each one of those or {path, weight | rows, format, "
                                   "columns} (docs/data.md)")
    eval: str | None = option(None, "held-out data, same forms as train")
    val_size: float | None = option(None, "carve a seeded held-out split from train when eval is "
                                          "not given: a fraction (0.1) or a row count (50)",
                                    Range(0, low_open=True))
    format: str = option("auto", "auto, " + ", ".join(DATA_FORMATS))
    columns: dict = option({}, "rename your columns to the expected ones, e.g. {question: prompt}")
    template: str = option("auto", "chat template: auto (the model's own), none (plain text), or "
                                   "by name: " + ", ".join(TEMPLATES))
    max_length: int | None = option(512, "truncate tokenized rows to this many tokens", Range(1))
    train_on_prompt: bool = option(False, "also put loss on prompt / user tokens")
    replay: float | None = option(None, "mix in this share of the base model's own answers to general "
                                        "prompts (self-replay, against forgetting; docs/forgetting.md)",
                                  Range(0, 1, True, True))
    replay_prompts: str | None = option(None, "data.replay's prompts: a JSONL file with a 'prompt' per "
                                              "row or one per line (default: the bundled replay prompts)")
    packing: bool | Literal["auto"] = option("auto", "generative batches: true packs rows into "
                                                     "padding-free batches, false pads them in random "
                                                     "order, auto picks by attention and lengths "
                                                     "(data/batching.py; check shows the choice)")

    def __post_init__(self) -> None:
        if isinstance(self.train, list):
            from .data.mix import sources

            sources(self.train, "data.train")
        elif not self.train:
            raise UserError("data.train: missing; point it at a data file (data.train=PATH)")
        if self.format not in ("auto", *DATA_FORMATS):
            raise UserError(f"data.format: must be auto or one of {', '.join(DATA_FORMATS)}, "
                            f"got '{self.format}'")
        if self.template not in ("auto", "none", *TEMPLATES):
            raise UserError(f"data.template: must be auto, none or one of {', '.join(TEMPLATES)}, "
                            f"got '{self.template}'{did_you_mean(self.template, TEMPLATES)}")
        if self.val_size is not None and self.eval:
            raise UserError("data.val_size: set only when data.eval is empty (it carves held-out "
                            "rows from data.train); remove one of them")
        for theirs, ours in self.columns.items():
            if not isinstance(theirs, str) or not isinstance(ours, str):
                raise UserError(f"data.columns: map column names to names, got {theirs!r}: {ours!r}")


METRICS = ("none", "exact_match", "accuracy", "preference", "reward")


@dataclasses.dataclass
class EvalSection:
    metric: str = option("none", "held-out score after training: none; exact_match (generation: "
                                 "greedy answer equals the reference); accuracy (classification: "
                                 "accuracy, macro and per-class precision/recall/F1, confusion matrix); preference "
                                 "(task dpo: reward accuracy, reward margin and DPO loss on held-out pairs; task reward: "
                                 "pairwise accuracy); reward (task grpo: each reward on the greedy answers, "
                                 "and the exact-match share where a reward is exact_match)")
    before_training: bool = option(False, "also score the untrained model, for a before/after")
    max_new_tokens: int = option(32, "generation budget per held-out prompt", Range(1))
    batch_size: int = option(16, "prompts generated at once", Range(1))
    limit: int | None = option(None, "score only the first N held-out rows", Range(1))
    general: bool | str = option(True, "generative runs, with eval.metric: what training cost the "
                                       "model outside its task, on general prompts (the bundled ones, "
                                       "or FILE: JSONL with a 'prompt' per row, or one per line); "
                                       "false turns it off (docs/forgetting.md)")

    def __post_init__(self) -> None:
        if isinstance(self.general, str) and not self.general.strip():
            raise UserError("eval.general: empty; give true, false or a prompts FILE")
        if self.metric not in METRICS:
            raise UserError(f"eval.metric: must be one of {', '.join(METRICS)}, got '{self.metric}'"
                            f"{did_you_mean(self.metric, METRICS)}")


@dataclasses.dataclass
class Recipe:
    model: str = option("", "built-in alias, hub id, or local folder")
    task: str = option("sft", "sft (a generative model, TRL's SFTTrainer), classification (a "
                              "sequence-classification head on (text, label) data, transformers' "
                              "Trainer), dpo, orpo, simpo (preference pairs), kto (answers "
                              "labelled desirable or not; docs/preference.md), grpo (its own samples, "
                              "scored by rewards), reward (a reward model on preference pairs; both "
                              "docs/grpo.md), "
                              "or another registered task (adapters-sft ls)")
    strategy: Any = option({}, "strategy name and its options (see `adapters-sft show`)")
    data: DataSection = option(None, "where the data is and how to read it")
    training: dict = option({}, "keys passed to the task's config: TRL's SFTConfig (classification: "
                                "transformers' TrainingArguments; dpo: DPOConfig, ...), plus dropout, "
                                "layer_lr_decay and early_stopping_patience (see docs/strategies.md)")
    versions: dict = option({}, "library versions a run was trained with (written by train)")
    eval: EvalSection = option(None, "held-out scoring")
    checkpoint: CheckpointSection = option(None, "when to save resumable checkpoints (they hold what "
                                                 "trains, optimizer and RNG state; see docs/resume.md)")
    distributed: DistributedSection = option(None, "how a run in several processes holds the model: "
                                                    "data-parallel, or sharded with FSDP or DeepSpeed "
                                                    "(docs/distributed.md)")
    init_from: str | None = option(None, "a finished run to start from instead of the base model "
                                         "(SFT -> DPO): same model and strategy; see docs/preference.md")
    rewards: list = option([], "task grpo: the reward functions, e.g. [{name: exact_match, column: answer}, "
                               "{name: ./my_rewards.py:score, weight: 0.5}] (docs/grpo.md)")
    output_dir: str = option("", "run directory (default runs/<recipe name>)")
    overwrite: bool = option(False, "replace an existing run directory")
    dtype: str = option("auto", "weight dtype: auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16")
    trust_remote_code: bool = option(False, "run model code shipped with a hub checkpoint")
    seed: int = option(42, "seed for weights init, data order and dropout",
                       Range(0, 2 ** 32 - 1))  # numpy's seed range, which set_seed uses
    name: str = dataclasses.field(default="", metadata={"help": "recipe name"}, init=False)
    source: str = dataclasses.field(default="", metadata={"help": "recipe file"}, init=False)
    where: Callable[[str], str] = dataclasses.field(default=lambda key: "", repr=False,
                                                    compare=False, init=False)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["strategy"] = dataclasses.asdict(self.strategy)
        for key in ("name", "source", "where"):
            out.pop(key)
        return out

    @property
    def training_split(self) -> tuple[Any, dict[str, Any]]:
        """(our own `training:` keys, checked: training/own_keys.OwnKeys; the rest, for the
        Trainer's config), split once and kept: the loader, the Trainer's config, model loading
        and the trainer all read it. Split again only if `training` was changed since."""
        import copy

        from .training import own_keys

        kept = self.__dict__.get("_training_split")  # not a field: to_dict() leaves it out
        if kept is None or kept[0] != self.training:
            kept = (copy.deepcopy(self.training), own_keys.split(self))
            self.__dict__["_training_split"] = kept
        return kept[1]


_SECTIONS = {"data": DataSection, "eval": EvalSection, "checkpoint": CheckpointSection,
             "distributed": DistributedSection}


def recipes_root() -> Path:
    """The shipped recipes: the top-level recipes/ folder, installed as the package
    adapters_sft.recipes, so a checkout (editable install) and a wheel find it the same way."""
    return Path(str(importlib.resources.files("adapters_sft.recipes")))


def recipe_names() -> list[str]:
    root = recipes_root()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def find_recipe(ref: str) -> tuple[str, Path]:
    """(name, path) for a recipe name or a path to a YAML file."""
    path = Path(ref)
    if path.is_file():
        return path.stem, path
    shipped = recipes_root() / f"{ref}.yaml"
    if shipped.is_file():
        return ref, shipped
    if ref.endswith((".yaml", ".yml")) or "/" in ref and Path(ref).parent.is_dir():
        raise UserError(f"recipe file '{ref}' not found; check the path, or run "
                        "'adapters-sft ls' for shipped recipe names")
    raise UserError(f"unknown recipe '{ref}'{did_you_mean(ref, recipe_names())}; "
                    "run 'adapters-sft ls' to list recipes, or give a path to a YAML file")


class DuplicateKey(Exception):
    def __init__(self, key: str, first: int, second: int) -> None:
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


def _key_lines(text: str) -> dict[str, int]:
    """Dotted key -> 1-based line number, so errors can say file:line. A key given twice in
    one mapping raises DuplicateKey: YAML would silently keep the last one."""
    lines: dict[str, int] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = f"{prefix}.{k.value}" if prefix else str(k.value)
                if key in lines:
                    raise DuplicateKey(key, lines[key], k.start_mark.line + 1)
                lines[key] = k.start_mark.line + 1
                walk(v, key)

    walk(yaml.compose(text, Loader=_Loader), "")
    return lines


def parse_override(item: str) -> tuple[str, Any]:
    """'strategy.r=8' -> ('strategy.r', 8); values are read as YAML scalars."""
    if "=" not in item:
        raise UserError(f"command line: '{item}' is not key=value (e.g. training.max_steps=20)")
    key, raw = item.split("=", 1)
    try:
        value = read_yaml(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise UserError(f"command line: '{'.'.join(parts[:i + 1])}' is not a section, "
                            f"so '{key}' cannot be set")
        node = nxt
    node[parts[-1]] = value


def read_recipe_file(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """(mapping, dotted key -> line) of a recipe file; bad YAML is a UserError with file:line."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = read_yaml(text) or {}
        lines = _key_lines(text)
    except OSError as exc:
        raise UserError(f"{path}: cannot read recipe ({exc.strerror}); check the path and its "
                        "permissions") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 text; save the recipe as UTF-8") from None
    except DuplicateKey as dup:
        raise UserError(f"{path}:{dup.second}: '{dup.key}' is given twice (lines {dup.first} and "
                        f"{dup.second}), and only one can count; keep one of them") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{path}:{mark.line + 1}" if mark else str(path)
        if isinstance(exc, TooLarge):
            raise UserError(f"{at}: the YAML {exc.problem}, more than any recipe needs; write "
                            "the values out without deep nesting or repeated aliases") from None
        raise UserError(f"{at}: invalid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}:1: a recipe is a mapping of keys (model:, strategy:, data:, ...)")
    return raw, lines


def load_recipe(ref: str, overrides: list[str] | None = None) -> Recipe:
    """Read, merge and validate a recipe. Imports no ML library (fast for `validate`)."""
    name, path = find_recipe(ref)
    raw, lines = read_recipe_file(path)
    if isinstance(raw.get("strategy"), str):  # shorthand `strategy: lora`
        raw["strategy"] = {"name": raw["strategy"]}
    parsed = [parse_override(item) for item in overrides or []]
    # `strategy=lora` on the command line means what `strategy: lora` means in YAML
    parsed = [("strategy.name", v) if k == "strategy" and isinstance(v, str) else (k, v) for k, v in parsed]
    from_cli = {key for key, _ in parsed}
    new_name = dict(parsed).get("strategy.name")
    if new_name is not None and isinstance(raw.get("strategy"), dict) \
            and raw["strategy"].get("name") != new_name:
        # Switching strategy on the command line: the recipe's options were for the old
        # one, so the new strategy starts from its own defaults plus command-line keys.
        raw["strategy"] = {}
    for key, value in parsed:
        _set_dotted(raw, key, value)

    def where(key: str) -> str:
        if any(k == key or k.startswith(key + ".") for k in from_cli):
            return "command line: "
        return f"{path}:{lines[key]}: " if key in lines else f"{path}: "

    return _validate(raw, name, path, where)


def _check_top_level(raw: dict[str, Any], where: Callable[[str], str]) -> None:
    """Unknown top-level keys first: a misspelled `stratgy:` would otherwise be reported as
    the section it failed to set (`strategy.name: missing`)."""
    check_keys(Recipe, raw, "", where)


def _validate(raw: dict[str, Any], name: str, path: Path, where: Callable[[str], str]) -> Recipe:
    from .registry import get_strategy

    raw = dict(raw)
    _check_top_level(raw, where)
    strategy_raw = raw.pop("strategy", None)
    if strategy_raw is not None and not isinstance(strategy_raw, dict):
        raise UserError(f"{where('strategy')}strategy: expected a strategy name or a mapping "
                        f"such as {{name: lora, r: 8}}, got {strategy_raw!r}")
    if not isinstance(strategy_raw, dict) or "name" not in strategy_raw:
        raise UserError(f"{where('strategy')}strategy.name: missing; e.g. strategy: {{name: lora}}")
    cls = get_strategy(check_type(strategy_raw["name"], str, "strategy.name", where),
                       where("strategy.name") + "strategy.name")
    strategy_opts = cls.from_dict(strategy_raw, where).opts
    sections = {key: build(cls_, raw.pop(key, None) or {}, key, where)
                for key, cls_ in _SECTIONS.items()}
    training = raw.pop("training", None) or {}
    if not isinstance(training, dict):
        raise UserError(f"{where('training')}training: expected a mapping of SFTConfig keys")
    recipe = build(Recipe, {**raw, **sections, "strategy": {}, "training": training}, "", where)
    recipe.strategy = strategy_opts
    if not recipe.model:
        raise UserError(f"{where('model')}model: missing; give a built-in alias "
                        "(smollm2-135m-instruct), a hub id or a local folder")
    from .registry import get_task

    task = get_task(recipe.task, f"{where('task')}task")
    if recipe.rewards and not task.uses_rewards:
        raise UserError(f"{where('rewards')}rewards: task {recipe.task} does not learn from rewards; set "
                        "task=grpo, or remove rewards")
    if recipe.dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise UserError(f"{where('dtype')}dtype: must be auto, float32, bfloat16 or float16, "
                        f"got '{recipe.dtype}'")
    recipe.name, recipe.source = name, str(path)
    recipe.where = where  # later checks (training keys against SFTConfig) name file:line too
    recipe.training_split  # our own training: keys (dropout, ...) checked now; TRL's at training/args
    recipe.output_dir = recipe.output_dir or str(Path("runs") / name)
    return recipe
