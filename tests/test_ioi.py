"""IOI data, algorithms, labels and scoring."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from algorithms import ioi
from algorithms import ioi_data as data
from causalab.causal.counterfactual import sample_counterfactuals
from causalab.errors import SamplingError
from causalab.neural.wordlevel import word_level_tokenizer

torch.set_num_threads(1)
SEEDS = st.integers(0, 2**31 - 1)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_sizes_and_vocabulary():
    assert len(data.NAMES) >= 100 and len(set(data.NAMES)) == len(data.NAMES)
    assert len(data.TEMPLATES) >= 15 and len(data.PLACES) >= 10 and len(data.OBJECTS) >= 10
    tok = word_level_tokenizer(data.VOCAB)
    for name in data.NAMES:
        assert tok(" " + name, add_special_tokens=False)["input_ids"] == [data.TOKEN_ID[name]]


@settings(max_examples=30, deadline=None)
@given(SEEDS, st.integers(1, 40))
def test_sentences_and_token_positions(seed, n):
    v = data.sample_sentences(n, gen(seed))
    assert (v["name_a"] != v["name_b"]).all()
    assert ((v["s2"] == v["name_a"]) | (v["s2"] == v["name_b"])).all()
    enc = data.token_ids(v)
    rows = torch.arange(n)
    ids = enc["input_ids"]
    io = data.indirect_object(v)
    assert torch.equal(ids[rows, enc["pos_s2"]], data.NAME_TOKENS[v["s2"]])
    assert torch.equal(ids[rows, enc["pos_io"]], data.NAME_TOKENS[io])
    assert ((enc["pos_io"] < enc["pos_s2"]) & (enc["pos_s2"] < enc["pos_last"])).all()
    last_words = {data.VOCAB[int(t)] for t in ids[rows, enc["pos_last"]]}
    assert last_words <= {"to", "for"}
    beyond = torch.arange(ids.shape[1])[None, :] > enc["pos_last"][:, None]
    assert (ids[beyond] == data.PAD).all() and torch.equal(enc["attention_mask"].sum(1), enc["pos_last"] + 1)
    # the indirect object appears once, the subject twice
    count = lambda tok: (ids == tok[:, None]).sum(1)
    assert (count(data.NAME_TOKENS[io]) == 1).all() and (count(data.NAME_TOKENS[v["s2"]]) == 2).all()
    # the vectorised ids equal the word-level tokenizer's on the rendered text
    tok = word_level_tokenizer(data.VOCAB)
    assert torch.equal(tok(data.render(v), padding=True, return_tensors="pt")["input_ids"], ids[:, : int(enc["pos_last"].max()) + 1])


@settings(max_examples=30, deadline=None)
@given(SEEDS)
def test_pattern_algorithm_and_counterfactual_labels(seed):
    task = ioi.ioi_pattern_task()
    alg = task.algorithm
    v = alg.sample_inputs(64, gen(seed))
    out = alg.run(v)
    assert torch.equal(out["output"], data.indirect_object(v))
    assert torch.equal(out["pattern"] == ioi.ABAB, v["s2"] == v["name_a"])
    d = task.counterfactuals(64, gen(seed))
    base, src = d.base, d.sources["pattern"]
    src_abab = src["s2"] == src["name_a"]
    expected = torch.where(src_abab, base["name_b"], base["name_a"])  # ABAB -> B, ABBA -> A of the *base*
    assert torch.equal(d.counterfactual_outputs["output"], expected)
    flips = src_abab != (base["s2"] == base["name_a"])
    assert torch.equal(d.label_changed("output"), flips)
    labels = task.labels(d)
    other = torch.where(expected == base["name_a"], base["name_b"], base["name_a"])
    assert torch.equal(labels, torch.stack([data.NAME_TOKENS[expected], data.NAME_TOKENS[other]], 1))
    factual = task.label(alg.run(base))
    assert torch.equal(factual, data.NAME_TOKENS[data.indirect_object(base)])


@settings(max_examples=25, deadline=None)
@given(SEEDS)
def test_rich_algorithm_counterfactuals(seed):
    task = ioi.ioi_rich_task(intervention_sets=[("io_position",), ("io_name",), ("s_name",)])
    d = task.counterfactuals(96, gen(seed))
    base, cf = d.base, d.counterfactual_outputs["output"]
    assert torch.equal(task.algorithm.run(base)["output"], data.indirect_object(base))
    for k, (var,) in enumerate(d.intervention_sets):
        rows = d.set_index == k
        src = {key: x[rows] for key, x in d.sources[var].items()}
        b = {key: x[rows] for key, x in base.items()}
        names = torch.stack([b["name_a"], b["name_b"]], 1).sort(1).values
        assert torch.equal(torch.stack([src["name_a"], src["name_b"]], 1).sort(1).values, names)  # same two names
        src_io = data.indirect_object(src)
        if var == "io_name":  # the source's indirect object, whatever the base's order
            want = src_io
        elif var == "io_position":  # the name at the source's IO slot, read in the base's order
            want = torch.where(src_io == src["name_a"], b["name_a"], b["name_b"])
        else:  # s_name: the source's subject, so the base's other name
            want = torch.where(src["s2"] == b["name_a"], b["name_b"], b["name_a"])
        assert torch.equal(cf[rows], want)
    labels = task.labels(d)
    assert (labels[:, 0] != labels[:, 1]).all()


def test_disjoint_names_split():
    task = ioi.ioi_pattern_disjoint_task()
    train, val, test = task.counterfactual_splits([300, 50, 200], gen(0))
    assert (len(train), len(val), len(test)) == (300, 50, 200)

    def names(d):
        vals = [d.base["name_a"], d.base["name_b"]] + [s[k] for s in d.sources.values() for k in ("name_a", "name_b")]
        return set(torch.cat(vals).tolist())

    assert names(train) | names(val) and not (names(train) | names(val)) & names(test)
    tr, te = data.split_pools(0.3, seed=1, templates=True)
    assert not set(tr.names.tolist()) & set(te.names.tolist())
    assert not set(tr.templates.tolist()) & set(te.templates.tolist())


def test_seen_sentences_split_repairs_the_training_sentences():
    task = ioi.ioi_pattern_seen_task()
    train, val, test = task.splits([300, 50, 400], gen(0))
    assert (len(train), len(val), len(test)) == (300, 50, 400)

    def rows(values):
        return {tuple(int(values[k][i]) for k in sorted(values)) for i in range(len(values["s2"]))}

    seen = rows(train.base) | rows(train.sources["pattern"])
    assert rows(test.base) <= seen and rows(test.sources["pattern"]) <= seen
    # labels still follow the algorithm: the base's names ordered by the source's pattern
    cf = test.counterfactual_outputs["output"]
    abab = test.sources["pattern"]["s2"] == test.sources["pattern"]["name_a"]
    assert torch.equal(cf, torch.where(abab, test.base["name_b"], test.base["name_a"]))
    # fitting and validation pairs are ioi_pattern's for the same generator (so the same fit)
    p_train, p_val, p_test = ioi.ioi_pattern_task().splits([300, 50, 400], gen(0))
    for a, b in ((p_train, train), (p_val, val)):
        assert all(torch.equal(a.base[k], b.base[k]) and torch.equal(a.sources["pattern"][k], b.sources["pattern"][k])
                   for k in a.base)
    assert not rows(p_test.base) <= seen  # the plain split's test sentences are new


def test_split_and_pool_errors():
    import pytest

    with pytest.raises(SamplingError, match="test_share"):
        data.split_pools(1.0)
    with pytest.raises(SamplingError, match="two distinct names"):
        data.Pools(torch.tensor([3]), data.ALL.templates, data.ALL.places, data.ALL.objects)


def test_scoring():
    logits = torch.tensor([[0.0, 2.0, 1.0, 5.0], [0.0, 1.0, 3.0, 0.0]])
    labels = torch.tensor([[1, 2], [1, 2]])
    assert ioi.logit_diff_correct(logits, labels).tolist() == [True, False]  # argmax is 3 in row 0: logit diff only
    assert ioi.logit_diff_correct(logits, torch.tensor([3, 2])).tolist() == [True, True]
    assert torch.allclose(ioi.expected_name_loss(logits, labels), torch.nn.functional.cross_entropy(logits, labels[:, 0]))


def test_encoder_with_another_tokenizer():
    """A tokenizer other than the canonical one goes through text; positions still point at the names."""
    vocab = list(data.SPECIAL_TOKENS) + sorted(set(data.VOCAB) - set(data.SPECIAL_TOKENS), reverse=True)
    tok = word_level_tokenizer(vocab)
    enc = ioi.IOIEncoder(tok)
    assert enc.tokenizer is tok
    v = data.sample_sentences(16, gen(3))
    x = enc.encode(v)
    rows = torch.arange(16)
    assert torch.equal(x["input_ids"][rows, x["pos_s2"]], enc.name_tokens[v["s2"]])
    assert torch.equal(x["input_ids"][rows, x["pos_io"]], enc.name_tokens[data.indirect_object(v)])
    assert torch.equal(x["pos_last"], data.token_ids(v)["pos_last"])
    assert ioi.IOIEncoder(word_level_tokenizer(data.VOCAB)).tokenizer is None  # canonical: vectorised path


def test_counterfactual_sampling_is_batched_and_seeded():
    alg = ioi.pattern_algorithm()
    a = sample_counterfactuals(alg, 1000, ["pattern"], seed=5)
    b = sample_counterfactuals(alg, 1000, ["pattern"], seed=5)
    assert torch.equal(a.counterfactual_outputs["output"], b.counterfactual_outputs["output"])
    assert 0.4 < a.label_changed("output").float().mean() < 0.6


def test_random_models_take_a_larger_vocabulary():
    from algorithms import ioi_models
    from causalab.errors import ConfigError

    small = ioi_models.build_target("random", 0, size="tiny")
    big = ioi_models.build_target("random", 0, size="tiny", vocab_size=1000)
    task = ioi.ioi_pattern_task()
    inputs = task.encode(task.algorithm.sample_inputs(4, gen(0)))
    assert small.logits(inputs).shape[1] == len(data.VOCAB) and big.logits(inputs).shape[1] == 1000
    with pytest.raises(ConfigError, match="vocab_size.: must be an integer >= 214"):
        ioi_models.build_target("random", 0, size="tiny", vocab_size=100)


def test_one_pattern_task_asks_for_the_base_answer_and_disjoint_variant_splits_names():
    task = ioi.ioi_pattern_abab_task()
    train, val, test = task.splits([200, 50, 100], gen(0))
    for d in (train, val, test):
        for values in (d.base, d.sources["pattern"]):
            assert torch.equal(values["s2"], values["name_a"])  # ABAB only: the first-mentioned name repeats
        # every counterfactual is the base's own answer, its indirect object (the second name)
        assert torch.equal(d.counterfactual_outputs["output"], d.base["name_b"])
        labels = task.labels(d)
        assert torch.equal(labels[:, 0], data.NAME_TOKENS[d.base["name_b"]])
        assert torch.equal(labels[:, 1], data.NAME_TOKENS[d.base["name_a"]])
    train, val, test = ioi.ioi_pattern_abab_disjoint_task().splits([200, 50, 100], gen(0))
    fit_names = set(torch.cat([train.base["name_a"], train.base["name_b"], val.base["name_a"]]).tolist())
    assert torch.equal(test.base["s2"], test.base["name_a"])
    assert not fit_names & set(torch.cat([test.base["name_a"], test.base["name_b"]]).tolist())
