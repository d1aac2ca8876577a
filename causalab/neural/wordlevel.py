"""A word-level tokenizer built locally with `tokenizers` (no hub access): one word, one token."""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from causalab.errors import ConfigError


def word_level_tokenizer(
    vocab: Sequence[str], *, pad: str = "<pad>", unk: str = "<unk>", eos: str = "<eos>"
) -> PreTrainedTokenizerFast:
    """A fast tokenizer whose ids are the positions of ``vocab``; words split on whitespace and punctuation."""
    vocab = list(vocab)
    if len(set(vocab)) != len(vocab):
        dup = sorted({w for w in vocab if vocab.count(w) > 1})
        raise ConfigError(f"word-level vocabulary repeats words {dup[:5]}")
    missing = [t for t in (pad, unk, eos) if t not in vocab]
    if missing:
        raise ConfigError(f"word-level vocabulary lacks the special token(s) {missing}")
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token=unk))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=pad, unk_token=unk, eos_token=eos)
    tok.padding_side = "right"
    return tok
