"""tokenizer.ggml.pre as llama.cpp names it: by the probe hash llama.cpp's converter uses, else
by a split rule llama.cpp implements exactly; anything else refused in one line."""
from __future__ import annotations

import pytest

from adapters_sft.errors import UserError
from adapters_sft.export.gguf_vocab import _SPLITS, style

from .conftest import make_bpe_tokenizer


def _bpe(pre_tokenizer_steps, byte_fallback: bool = False):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(byte_fallback=byte_fallback))
    tok.pre_tokenizer = pre_tokenizers.Sequence(pre_tokenizer_steps)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["what is the date today 12 345", "hello world, I'll go"] * 10, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def _split(regex: str):
    from tokenizers import Regex, pre_tokenizers

    return [pre_tokenizers.Split(Regex(regex), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]


def test_gpt2_style_byte_level_is_named_gpt_2():
    # 'gpt2' (what transformers' reader calls it) is refused by llama.cpp's loader
    assert style(make_bpe_tokenizer()).pre == "gpt-2"


@pytest.mark.parametrize("name", ["llama-bpe", "qwen2"])
def test_llama3_and_qwen2_split_rules_get_llama_cpp_names(name):
    regex = next(r for r, n in _SPLITS.items() if n == name)
    assert style(_bpe(_split(regex))).pre == name


def test_an_unknown_split_rule_is_refused_not_mislabelled():
    with pytest.raises(UserError, match=r"llama.cpp does not know this tokenizer's pre-tokenizer .*probe hash"):
        style(_bpe(_split(r"\p{L}+|\p{N}+|[^\s\p{L}\p{N}]+|\s+")))


def test_byte_fallback_without_sentencepiece_spaces_is_refused():
    from tokenizers import pre_tokenizers

    with pytest.raises(UserError, match=r"only byte-level BPE .* SentencePiece BPE .* this one is BPE with byte fallback"):
        style(_bpe([pre_tokenizers.ByteLevel(add_prefix_space=False)], byte_fallback=True))
