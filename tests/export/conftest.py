"""Fixtures for merge/export tests: tiny random models with a real byte-level BPE tokenizer
(trained here in milliseconds), so the GGUF writer has something llama.cpp-shaped to write, and
a helper that trains a few steps into a real run directory."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.conftest import SMOLLM2_TEMPLATE, WORDS


def make_bpe_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [" ".join(WORDS), "system user assistant what is the date today", "You are a helpful AI"]
    tok.train_from_iterator(corpus * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token=None)
    fast.chat_template = SMOLLM2_TEMPLATE
    return fast


def make_spm_tokenizer() -> Any:
    """A Llama-2 / Mistral style tokenizer: SentencePiece BPE (spaces as U+2581, byte fallback to
    <0xXX> tokens), trained here, with merges laid out as transformers lays out a converted
    SentencePiece model (every split of a token into two tokens, in the token's order), in
    transformers' LlamaTokenizer with the Mistral chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaTokenizer
    from transformers.tokenization_utils_base import generate_merges

    from adapters_sft.data.templates import NAMED

    tok = Tokenizer(models.BPE(byte_fallback=True, fuse_unk=True, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    specials = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256))]
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=specials, show_progress=False)
    corpus = [" ".join(WORDS), "what is the date today? [INST] [/INST] You are a helpful AI"]
    tok.train_from_iterator(corpus * 20, trainer)
    vocab = tok.get_vocab()
    fast = LlamaTokenizer(vocab=vocab, merges=generate_merges(vocab), add_bos_token=True)
    fast.chat_template = NAMED["mistral"][0]
    return fast


# Parts of llama.cpp's source (reference vocabularies, its converter): `make llamacpp` puts them here
LLAMA_CPP = Path(__file__).resolve().parents[2] / ".cache" / "llama.cpp"


def real_vocab_tokenizer(name: str) -> Any:
    """A real vocabulary from llama.cpp's models/ggml-vocab-NAME.gguf, rebuilt by transformers;
    Llama-3's as Meta's tokenizer.json has it (whole words before merges, BOS added)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(LLAMA_CPP / "models"), gguf_file=f"ggml-vocab-{name}.gguf")
    if name == "llama-bpe":
        from tokenizers import Tokenizer, processors

        spec = json.loads(tok.backend_tokenizer.to_str())
        spec["model"]["ignore_merges"] = True
        backend = Tokenizer.from_str(json.dumps(spec))
        bos = (tok.bos_token, tok.bos_token_id)
        backend.post_processor = processors.TemplateProcessing(single=f"{bos[0]} $A", special_tokens=[bos])
        tok._tokenizer = backend
    return tok


LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}  # small, so short
#                texts reach the scaled and the smoothed frequency bands


def build_model_dir(root: Path, model_type: str, tokenizer: Any, tie: bool = True, hidden: int = 64,
                    **extra: Any) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.for_model(
        model_type, vocab_size=len(tokenizer) + 5, hidden_size=hidden, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=256, tie_word_embeddings=tie, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **extra)
    model = AutoModelForCausalLM.from_config(config)
    out = root / f"{model_type}-{hidden}{'-' + '-'.join(extra) if extra else ''}"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def bpe_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random llama / qwen2 / qwen3 / gemma checkpoints sharing one byte-level BPE tokenizer."""
    root = tmp_path_factory.mktemp("bpe-models")
    tok = make_bpe_tokenizer()
    return {kind: build_model_dir(root, kind, tok) for kind in ("llama", "qwen2", "qwen3", "gemma")} | {
        "llama-wide": build_model_dir(root, "llama", tok, hidden=96),
        "llama3-rope": build_model_dir(root, "llama", tok, rope_parameters=LLAMA3_ROPE)}


@pytest.fixture(scope="session")
def spm_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random Llama-2 and Mistral shaped checkpoints with a SentencePiece BPE tokenizer."""
    root = tmp_path_factory.mktemp("spm-models")
    tok = make_spm_tokenizer()
    return {kind: build_model_dir(root, kind, tok, tie=False) for kind in ("llama", "mistral")}


@pytest.fixture
def train_run(tmp_path: Path, tiny_data: dict[str, Path]) -> Callable[..., Path]:
    """train_run(model_dir, strategy, name=..., **training) -> a finished run directory."""
    from adapters_sft.recipe import load_recipe
    from adapters_sft.trainer import train

    def make(model_dir: Path, strategy: str, name: str | None = None, **training: Any) -> Path:
        out = tmp_path / (name or f"run-{strategy}")
        body = {"model": str(model_dir), "strategy": {"name": strategy},
                "data": {"train": str(tiny_data["train"]), "eval": str(tiny_data["eval"]),
                         "max_length": 200},
                "training": {"max_steps": 4, "per_device_train_batch_size": 4,
                             "learning_rate": 2e-2, "logging_steps": 1, **training},
                "eval": {"metric": "none"}, "output_dir": str(out)}
        path = tmp_path / f"{out.name}.yaml"
        path.write_text(json.dumps(body))
        train(load_recipe(str(path)), echo=lambda line: None)
        return out

    return make
