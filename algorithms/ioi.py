"""Indirect object identification (IOI) on transformer language models.

"Then, A and B went to the store. S2 gave a ring to" -> the name that was not repeated.

Two algorithms over the same sentences (inputs: name ids ``name_a``, ``name_b``, the
repeated name ``s2``, and ``template``, ``place``, ``obj``):

- ``ioi_pattern`` (the paper's ABAB/ABBA algorithm): one binary variable ``pattern``
  (0 = ABAB, the second mention is A; 1 = ABBA, it is B); the output is B under ABAB
  and A under ABBA. Interchanging ``pattern`` from a source sentence flips which of
  the base's names is predicted whenever the patterns differ.
- ``ioi_rich``: ``s_name`` (the duplicated name) -> ``io_position`` (is the indirect
  object the first or second name mentioned) -> ``io_name`` -> ``output``. Its
  sources reuse the base's two names (in either order), so every variable's
  counterfactual is one of the base's names and finer hypotheses can be told apart.

Labels are ``(B, 2)`` token ids ``[expected, other]``: the counterfactual name and the
base's other name. ``task.correct`` is the paper's IIA test (expected logit beats
other logit); ``task.loss`` is full-vocabulary cross-entropy on the expected name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from algorithms import ioi_data as data
from algorithms import ioi_models as models
from causalab.causal.algorithm import Algorithm, Values
from causalab.causal.counterfactual import CounterfactualDataset, sample_counterfactuals
from causalab.causal.task import Task
from causalab.errors import ConfigError
from causalab.registry import register_algorithm

FAMILY = "ioi"
ABAB, ABBA = 0, 1
INPUTS = {k: None for k in ("name_a", "name_b", "s2", "template", "place", "obj")}


# --- algorithms ----------------------------------------------------------------------
def pattern_algorithm(pools: data.Pools = data.ALL, input_sampler=None) -> Algorithm:
    """The ABAB/ABBA algorithm over sentences from ``pools`` (or from ``input_sampler(n, generator)``)."""
    return Algorithm.from_functions(
        INPUTS,
        {
            "pattern": lambda name_a, s2: torch.where(s2 == name_a, ABAB, ABBA),
            "output": lambda name_a, name_b, pattern: torch.where(pattern == ABAB, name_b, name_a),
        },
        domains={"pattern": (ABAB, ABBA)},
        name="ioi_pattern",
        input_sampler=input_sampler or (lambda n, g: data.sample_sentences(n, g, pools)),
    )


def rich_algorithm(pools: data.Pools = data.ALL) -> Algorithm:
    return Algorithm.from_functions(
        INPUTS,
        {
            "s_name": lambda s2: s2.clone(),
            "io_position": lambda name_a, s_name: torch.where(s_name == name_a, 1, 0),
            "io_name": lambda name_a, name_b, io_position: torch.where(io_position == 0, name_a, name_b),
            "output": lambda io_name: io_name.clone(),
        },
        domains={"io_position": (0, 1)},
        name="ioi_rich",
        outputs=["output"],
        input_sampler=lambda n, g: data.sample_sentences(n, g, pools),
    )


def same_names_source(base: Values, variable: str, g: torch.Generator) -> Values:
    """A fresh sentence over the base's two names, in either order, with its own pattern."""
    n = base["name_a"].shape[0]
    src = data.sample_sentences(n, g)
    swap = torch.rand(n, generator=g) < 0.5
    a = torch.where(swap, base["name_b"], base["name_a"])
    b = torch.where(swap, base["name_a"], base["name_b"])
    abba = src["s2"] == src["name_b"]
    src.update(name_a=a, name_b=b, s2=torch.where(abba, b, a))
    return src


# --- encoding and scoring ------------------------------------------------------------
class IOIEncoder:
    """Sentences to network inputs: word-level ids (vectorised) or, with another tokenizer, text.

    Inputs carry ``input_ids``, ``attention_mask`` and the positions ``pos_last``,
    ``pos_s2`` and ``pos_io``. ``name_tokens[i]`` is name ``i``'s token id.
    """

    def __init__(self, tokenizer: Any = None) -> None:
        self.use_tokenizer(tokenizer)

    def use_tokenizer(self, tokenizer: Any) -> None:
        if tokenizer is not None and dict(tokenizer.get_vocab()) == data.TOKEN_ID:
            tokenizer = None  # the canonical word-level vocabulary: keep the vectorised path
        self.tokenizer = tokenizer
        if tokenizer is None:
            self.name_tokens = data.NAME_TOKENS
            return
        ids = []
        for name in data.NAMES:
            toks = tokenizer(" " + name, add_special_tokens=False)["input_ids"]
            if len(toks) != 1:
                raise ConfigError(f"name {name!r} is {len(toks)} tokens under this tokenizer; IOI needs one token per name")
            ids.append(toks[0])
        self.name_tokens = torch.tensor(ids)

    def encode(self, values: Values) -> dict[str, torch.Tensor]:
        if self.tokenizer is None:
            return data.token_ids(values)
        return self._encode_text(values)

    def _encode_text(self, values: Values) -> dict[str, torch.Tensor]:
        tok = self.tokenizer
        tok.padding_side = "right"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        texts = data.render(values)
        enc = tok(texts, padding=True, return_tensors="pt", return_offsets_mapping=True, add_special_tokens=False)
        starts = enc["offset_mapping"][..., 0]
        out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        out["pos_last"] = enc["attention_mask"].sum(1) - 1
        s2_char, io_char = [], []
        io = data.indirect_object(values)
        for i, text in enumerate(texts):
            a, b = data.NAMES[int(values["name_a"][i])], data.NAMES[int(values["name_b"][i])]
            first_a, first_b = text.index(a), text.index(b, text.index(a) + len(a))
            io_char.append(first_a if int(io[i]) == int(values["name_a"][i]) else first_b)
            s2_char.append(text.index(data.NAMES[int(values["s2"][i])], first_b + len(b)))

        def token_at(chars: list[int]) -> torch.Tensor:
            c = torch.tensor(chars)[:, None]
            return ((starts <= c) & (enc["attention_mask"] > 0)).long().sum(1) - 1

        out["pos_s2"], out["pos_io"] = token_at(s2_char), token_at(io_char)
        return out


def logit_diff_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The paper's IIA test: the expected name's logit beats the other name's (argmax for ``(B,)`` labels)."""
    if labels.dim() == 1:
        return logits.argmax(-1) == labels
    picked = logits.gather(1, labels[:, :2].long())
    return picked[:, 0] > picked[:, 1]


def expected_name_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary cross-entropy at the last position on the counterfactual name."""
    return F.cross_entropy(logits, labels[:, 0] if labels.dim() == 2 else labels)


@dataclass
class IOITask(Task):
    """A :class:`Task` whose labels are ``(B, 2)``: [expected name token, the base's other name token].

    ``encoder`` turns sentences into the network's tokens; a target with another tokenizer
    gets a task of its own from :meth:`for_target`.
    """

    encoder: IOIEncoder = field(default_factory=IOIEncoder)

    def for_target(self, target: Any) -> "IOITask":
        encoder = IOIEncoder(getattr(target, "tokenizer", None))
        if encoder.tokenizer is None and self.encoder.tokenizer is None:
            return self
        return dataclasses.replace(self, encoder=encoder, encode=encoder.encode, label=_name_label(encoder))

    def labels(self, dataset: CounterfactualDataset) -> torch.Tensor:
        names = self.encoder.name_tokens
        cf = dataset.counterfactual_outputs[self.output]
        base_io = data.indirect_object(dataset.base)
        base_s = torch.where(base_io == dataset.base["name_a"], dataset.base["name_b"], dataset.base["name_a"])
        other = torch.where(cf == base_io, base_s, base_io)
        return torch.stack([names[cf], names[other]], dim=1)


def _name_label(encoder: IOIEncoder):
    return lambda out: encoder.name_tokens[out["output"]]


def _task(name: str, make_algorithm, sets: Sequence[tuple[str, ...]], *, disjoint_names: bool = False,
          seen_sentences: bool = False, pair_sampler=None, description: str = "") -> IOITask:
    encoder = IOIEncoder()
    algorithm = make_algorithm()
    task = IOITask(
        name=name, algorithm=algorithm, encode=encoder.encode, label=_name_label(encoder),
        intervention_sets=list(sets), family=FAMILY, n_classes=len(data.VOCAB), pair_sampler=pair_sampler,
        loss=expected_name_loss, correct=logit_diff_correct, description=description, encoder=encoder,
        build_target=models.build_target,
    )
    if disjoint_names:
        def splits(sizes: Sequence[int], gen: torch.Generator) -> list[CounterfactualDataset]:
            """Train and validation pairs draw names from one half of the names, test pairs from the other."""
            train_pool, test_pool = data.split_pools(0.5, seed=0)
            kw = dict(generator=gen, pair_sampler=pair_sampler, output=task.output)
            fit = sample_counterfactuals(make_algorithm(train_pool), sizes[0] + sizes[1], task.intervention_sets, **kw)
            test = sample_counterfactuals(make_algorithm(test_pool), sizes[2], task.intervention_sets, **kw)
            return [*fit.split([sizes[0], sizes[1]]), test]

        task.counterfactual_splits = splits
    if seen_sentences:
        def splits(sizes: Sequence[int], gen: torch.Generator) -> list[CounterfactualDataset]:
            """Test pairs are new pairings of the sentences in the training pairs (each base and source seen in fitting)."""
            # the same draw as ioi_pattern's (so the same training pairs and map for a seed); its test cut is unused
            train, val, _ = task.counterfactuals(sum(sizes), gen).split(list(sizes))
            kw = dict(generator=gen, pair_sampler=pair_sampler, output=task.output)
            pool = {k: torch.cat([train.base[k], *(src[k] for src in train.sources.values())]) for k in train.base}
            n_pool = len(next(iter(pool.values())))

            def from_pool(n: int, g: torch.Generator) -> Values:
                if n_pool == 0:
                    raise ConfigError(f"{name} draws its test sentences from the training pairs; n_train must be > 0")
                idx = torch.randint(n_pool, (n,), generator=g)
                return {k: v[idx] for k, v in pool.items()}

            test = sample_counterfactuals(pattern_algorithm(input_sampler=from_pool), sizes[2], task.intervention_sets, **kw)
            return [train, val, test]

        task.counterfactual_splits = splits
    return task


@register_algorithm("ioi_pattern")
def ioi_pattern_task() -> IOITask:
    """ABAB/ABBA pattern; sources are independent sentences (other names, template, pattern)."""
    return _task("ioi_pattern", pattern_algorithm, [("pattern",)])


@register_algorithm("ioi_pattern_disjoint")
def ioi_pattern_disjoint_task() -> IOITask:
    """As ``ioi_pattern``, but the test pairs use names never seen in the alignment's training pairs."""
    return _task("ioi_pattern_disjoint", pattern_algorithm, [("pattern",)], disjoint_names=True)


@register_algorithm("ioi_pattern_seen")
def ioi_pattern_seen_task() -> IOITask:
    """As ``ioi_pattern``, but the test pairs re-pair sentences of the training pairs: a map that memorised
    its fitting sentences scores here, one that reads the pattern scores on ``ioi_pattern`` too."""
    return _task("ioi_pattern_seen", pattern_algorithm, [("pattern",)], seen_sentences=True)


def _one_pattern(pools: data.Pools = data.ALL) -> Algorithm:
    """The pattern algorithm over ABAB sentences only (the repeated name is the first one mentioned)."""
    def abab(n: int, g: torch.Generator) -> Values:
        values = data.sample_sentences(n, g, pools)
        values["s2"] = values["name_a"].clone()
        return values

    return pattern_algorithm(pools, input_sampler=abab)


@register_algorithm("ioi_pattern_abab")
def ioi_pattern_abab_task() -> IOITask:
    """As ``ioi_pattern`` over ABAB sentences only: the pattern never varies, so every counterfactual is the
    base's own answer and IIA asks only that the patched model prefer the base's indirect object over its
    subject, which a map can meet from the base's names alone. A control for data in which one pattern
    dominates."""
    return _task("ioi_pattern_abab", _one_pattern, [("pattern",)])


@register_algorithm("ioi_pattern_abab_disjoint")
def ioi_pattern_abab_disjoint_task() -> IOITask:
    """``ioi_pattern_abab`` with test names never seen in fitting (disjoint halves of the name pool)."""
    return _task("ioi_pattern_abab_disjoint", _one_pattern, [("pattern",)], disjoint_names=True)


@register_algorithm("ioi_rich")
def ioi_rich_task(intervention_sets: Sequence[tuple[str, ...]] = (("io_position",), ("io_name",))) -> IOITask:
    """The richer IOI graph; sources reuse the base's names so counterfactuals stay within the sentence."""
    return _task("ioi_rich", rich_algorithm, intervention_sets, pair_sampler=same_names_source)
