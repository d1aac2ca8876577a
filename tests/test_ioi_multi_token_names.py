"""IOI under a tokenizer that splits names: each name is scored on its first token, as the paper does, and says so."""

import warnings

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

import causalab as cl
from algorithms import ioi_data as data
from algorithms.ioi import IOIEncoder
from causalab.errors import ConfigError
from causalab.neural.lm import random_lm

torch.set_num_threads(1)


def subword_tokenizer(split: dict[str, tuple[str, str]]) -> PreTrainedTokenizerFast:
    """IOI's words, with the names in ``split`` known only as two pieces (WordPiece: ``Cath`` + ``##erine``)."""
    vocab = [w for w in data.VOCAB if w not in split]
    for first, rest in split.values():
        vocab += [p for p in (first, rest) if p not in vocab]
    core = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>")
    tok.padding_side = "right"
    return tok


SPLIT = {"Catherine": ("Cath", "##erine"), "Elizabeth": ("Eliza", "##beth")}


def test_split_names_are_scored_on_their_first_token():
    tok = subword_tokenizer(SPLIT)
    assert tok(" Catherine", add_special_tokens=False)["input_ids"] == tok.convert_tokens_to_ids(["Cath", "##erine"])
    encoder = IOIEncoder(tok)
    assert encoder.multi_token_names == ("Catherine", "Elizabeth")
    i = data.NAMES.index("Catherine")
    assert int(encoder.name_tokens[i]) == tok.convert_tokens_to_ids("Cath")
    assert "first token of each name (2 of 111 names" in encoder.scoring()
    assert IOIEncoder(subword_tokenizer({})).scoring() == "one token per name"


def test_names_that_begin_alike_are_refused_by_name():
    with pytest.raises(ConfigError, match="names 'Carol' and 'Caroline' begin with the same token"):
        IOIEncoder(subword_tokenizer({"Caroline": ("Carol", "##ine")}))


def test_a_model_with_a_splitting_tokenizer_scores_and_says_how():
    tok = subword_tokenizer(SPLIT)
    lm = random_lm(len(tok), tokenizer=tok, arch="llama", size="tiny", seed=0)
    with pytest.warns(UserWarning, match="scored on the first token of each name"):
        task = cl.make_task("ioi_pattern").for_target(lm)
    assert "scored on the first token of each name" in task.description
    # sentences that use the split names: the named positions point at each name's first token
    values = data.sample_sentences(64, torch.Generator().manual_seed(0))
    cath = data.NAMES.index("Catherine")
    values["name_a"][:8] = cath
    values["s2"][:8] = torch.where(values["s2"][:8] == values["name_b"][:8], values["name_b"][:8], cath)
    enc = task.encode(values)
    io = data.indirect_object(values)
    rows = torch.arange(64)
    assert torch.equal(enc["input_ids"][rows, enc["pos_io"]], task.encoder.name_tokens[io])
    # and a map is fitted and scored on such a model
    site = cl.Site(1, "last")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pairs = task.counterfactuals(96, torch.Generator().manual_seed(1))
    train, test = (cl.prepare(lm, site, task, d) for d in pairs.split([64, 32]))
    phi = cl.make_alignment("rotation", lm.width(site))
    partition = cl.Partition.contiguous(task.variables, size=4, width=lm.width(site))
    cl.fit_alignment(lm, site, phi, partition, task, train, train, cl.FitConfig(epochs=1, batch_size=32))
    assert 0.0 <= cl.evaluate(lm, site, phi, partition, task, test).iia <= 1.0
