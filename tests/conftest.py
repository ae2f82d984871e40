"""Shared fixtures: a tiny random Llama with a tiny ChatML tokenizer, saved as a real local
checkpoint, so the whole train() path runs in seconds. Proof on the real SmolLM2 model lives
in tests marked `integration`.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pytest

# The same ChatML template SmolLM2-135M-Instruct ships (no generation markers).
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}")

WORDS = ("hi hello what is the date today convert answer yes no one two three four five six "
         "seven eight nine ten red blue green cat dog sun moon a b c d e f").split()

logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", category=FutureWarning)


def make_tokenizer():
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<|im_start|>", "<|im_end|>", "<pad>"]
    vocab = {w: i for i, w in enumerate(specials + ["system", "user", "assistant", "\n", " "] + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern=Regex(r" |\n"), behavior="isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|im_end|>",
                                   bos_token="<|im_start|>", pad_token="<pad>")
    fast.add_special_tokens({"additional_special_tokens": specials[1:3]})
    fast.chat_template = SMOLLM2_TEMPLATE
    return fast


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-block Llama (tied head, like SmolLM2) + tokenizer, in safetensors."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = make_tokenizer()
    config = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def conversation(i: int) -> dict:
    q, a = WORDS[i % 12], WORDS[(i * 5 + 3) % len(WORDS)]
    return {"messages": [{"role": "user", "content": f"what is {q}"},
                         {"role": "assistant", "content": f"{a} {q}"}]}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    paths = {}
    for split, n in (("train", 32), ("eval", 8)):
        paths[split] = root / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps(conversation(i + (100 if split == "eval" else 0))) + "\n"
                                        for i in range(n)))
    return paths


@pytest.fixture
def tiny_recipe(tmp_path: Path, tiny_model_dir: Path, tiny_data: dict[str, Path]):
    """A function building a validated recipe for the tiny model: tiny_recipe('lora', k=v...)."""
    from adapters_sft.recipe import load_recipe

    def make(strategy: str, *overrides: str, **strategy_opts):
        body = {"model": str(tiny_model_dir), "strategy": {"name": strategy, **strategy_opts},
                "data": {"train": str(tiny_data["train"]), "eval": str(tiny_data["eval"]),
                         "max_length": 64},
                "training": {"max_steps": 3, "per_device_train_batch_size": 4,
                             "learning_rate": 1e-2, "save_strategy": "no", "logging_steps": 1},
                "output_dir": str(tmp_path / "run")}
        path = tmp_path / f"{strategy}.yaml"
        path.write_text(json.dumps(body))  # JSON is YAML
        return load_recipe(str(path), list(overrides))

    return make


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` need CUDA; skip them (visibly) where there is none, as in CI."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# Three topics a tiny classifier can learn from single words.
TOPIC_WORDS = {"animal": ("cat", "dog"), "sky": ("sun", "moon"), "color": ("red", "blue", "green")}


def topic_rows(n: int, offset: int = 0) -> list[dict]:
    rows = []
    fillers = WORDS[:12]
    for i in range(n):
        label = list(TOPIC_WORDS)[i % 3]
        word = TOPIC_WORDS[label][(i + offset) % len(TOPIC_WORDS[label])]
        rows.append({"text": f"{fillers[(i + offset) % 12]} {word} {fillers[(i * 7 + offset) % 12]}",
                     "label": label})
    return rows


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 3-block BERT encoder + WordLevel tokenizer ([CLS] text [SEP]), in safetensors."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                        num_attention_heads=4, max_position_embeddings=64, pad_token_id=0)
    out = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def topic_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("topics")
    paths = {}
    for split, rows in (("train", topic_rows(48)), ("eval", topic_rows(12, offset=5))):
        paths[split] = root / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths


@pytest.fixture
def cls_recipe(tmp_path: Path, tiny_bert_dir: Path, topic_data: dict[str, Path]):
    """tiny_recipe for `task: classification` on the tiny BERT (model=... overrides it)."""
    from adapters_sft.recipe import load_recipe

    def make(strategy: str, *overrides: str, **strategy_opts):
        body = {"model": str(tiny_bert_dir), "task": "classification",
                "strategy": {"name": strategy, **strategy_opts},
                "data": {"train": str(topic_data["train"]), "eval": str(topic_data["eval"]),
                         "max_length": 32},
                "training": {"max_steps": 4, "per_device_train_batch_size": 8,
                             "learning_rate": 1e-2, "logging_steps": 1},
                "output_dir": str(tmp_path / "run")}
        path = tmp_path / f"cls-{strategy}.yaml"
        path.write_text(json.dumps(body))
        return load_recipe(str(path), list(overrides))

    return make


def _can_create_in(folder: Path) -> bool:
    import os

    probe = folder / ".write-probe"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    except OSError:
        return False
    probe.unlink()
    return True


@pytest.fixture
def read_only_dir(tmp_path: Path):
    """A folder nothing can be created in. Permission bits do not stop root, so as root the
    folder is made immutable (chattr +i); where neither works the test is skipped, saying so."""
    import shutil
    import subprocess

    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    if _can_create_in(folder) and shutil.which("chattr"):
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        if _can_create_in(folder):
            pytest.skip("cannot make a read-only folder here (running as root, and chattr +i failed)")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def install_plugin(root: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str, group: str,
                   entry: str) -> None:
    """A separately 'installed' package: `module`.py with `source`, plus a dist-info that
    declares `entry` ("name = module:Class") under the entry-point `group`."""
    import importlib

    (root / f"{module}.py").write_text(source)
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{entry}\n")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
