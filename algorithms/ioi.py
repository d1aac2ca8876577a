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
import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from algorithms import ioi_data as data
from algorithms import ioi_models as models
from algorithms import ioi_regime
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
    ``pos_s2`` and ``pos_io``. ``name_tokens[i]`` is name ``i``'s token id. Under a tokenizer
    that splits a name (`` Kristen`` as `` Krist`` + ``en``) the name is scored on its first
    token, as the paper does; ``multi_token_names`` lists those names and :meth:`scoring` says
    so. Names whose first tokens coincide cannot be told apart that way and are refused.
    """

    multi_token_names: tuple[str, ...] = ()

    def __init__(self, tokenizer: Any = None, templates: data.TemplateSet | None = None) -> None:
        self.templates = templates or data.TEMPLATE_SETS["causalab"]
        self.use_tokenizer(tokenizer)

    def use_tokenizer(self, tokenizer: Any) -> None:
        if tokenizer is not None and dict(tokenizer.get_vocab()) == data.TOKEN_ID:
            tokenizer = None  # the canonical word-level vocabulary: keep the vectorised path
        self.tokenizer = tokenizer
        if tokenizer is None:
            self.name_tokens = data.NAME_TOKENS
            return
        ids, multi, first_of = [], [], {}
        for name in data.NAMES:
            toks = tokenizer(" " + name, add_special_tokens=False)["input_ids"]
            if not toks:
                raise ConfigError(f"name {name!r} is no token at all under this tokenizer")
            if len(toks) > 1:
                multi.append(name)
            if toks[0] in first_of:
                raise ConfigError(f"names {first_of[toks[0]]!r} and {name!r} begin with the same token "
                                  f"({tokenizer.convert_ids_to_tokens(toks[0])!r}) under this tokenizer: scored on "
                                  "first tokens, IOI could not tell them apart")
            first_of[toks[0]] = name
            ids.append(toks[0])
        self.name_tokens = torch.tensor(ids)
        self.multi_token_names = tuple(multi)

    def scoring(self) -> str:
        """How a name's prediction is read: one token per name, or the first token of each name."""
        if not self.multi_token_names:
            return "one token per name"
        shown = ", ".join(self.multi_token_names[:3]) + (", ..." if len(self.multi_token_names) > 3 else "")
        return (f"first token of each name ({len(self.multi_token_names)} of {len(data.NAMES)} names are several "
                f"tokens under this tokenizer: {shown}), as the paper scores them")

    def encode(self, values: Values) -> dict[str, torch.Tensor]:
        if self.tokenizer is None:
            return data.token_ids(values, self.templates)
        return self._encode_text(values)

    def _encode_text(self, values: Values) -> dict[str, torch.Tensor]:
        tok = self.tokenizer
        tok.padding_side = "right"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        texts = data.render(values, templates=self.templates)
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
    regime: Any = None  # the data regime (algorithms.ioi_regime.Regime) of a task made with regime options

    def for_target(self, target: Any) -> IOITask:
        encoder = IOIEncoder(getattr(target, "tokenizer", None), self.encoder.templates)
        if encoder.tokenizer is None and self.encoder.tokenizer is None:
            return self
        description = self.description
        if encoder.multi_token_names:
            warnings.warn(f"{self.name}: names are scored on the {encoder.scoring()}", stacklevel=2)
            description = f"{description}; scored on the {encoder.scoring()}".lstrip("; ")
        return dataclasses.replace(self, encoder=encoder, encode=encoder.encode, label=_name_label(encoder),
                                   description=description)

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
        build_target=models.build_target, positions=data.POSITIONS,
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
def ioi_pattern_task(roles: str = "random", names: int = 0, templates: str = "causalab", split: str = "fresh",
                     pool: int = 0, hold_out: bool = False, name_seed: int = 0) -> IOITask:
    """ABAB/ABBA pattern; sources are independent sentences (other names, template, pattern).

    The options set the data regime (:mod:`algorithms.ioi_regime`; the defaults are today's fresh
    draws with any name in either role): ``roles`` ``random`` or ``fixed`` (indirect objects and
    subjects from two disjoint name sets, as the non-linear representation dilemma's data);
    ``names`` how many names are in play (0: all 111; fixed roles split them in halves: 100 is the
    paper's 50 + 50); ``templates`` ``causalab`` or ``ioi_paper`` (the IOI paper's 15, under both
    patterns); ``split`` ``fresh`` (new sentences per split), ``pool`` (``pool`` distinct sentences,
    0 = twice the fitting pairs, cut 80/10/10 by sentence) or ``names`` (names cut 60/20/20 into
    fitting, validation and test names); ``hold_out`` keeps a quarter of places, objects and
    templates out of every split for the controls; ``name_seed`` picks which names.
    """
    regime = ioi_regime.Regime(roles, names, templates, split, pool, hold_out, name_seed)
    if regime == ioi_regime.Regime():  # today's fresh draws: the task (and every record) as before
        return _task("ioi_pattern", pattern_algorithm, [("pattern",)])
    return regime_task(regime)


def regime_task(regime: ioi_regime.Regime) -> IOITask:
    """The ``ioi_pattern`` task under a data regime (see :func:`ioi_pattern_task`)."""
    ts = regime.template_set
    sides = regime.sides()
    task = _task("ioi_pattern", lambda: pattern_algorithm(input_sampler=sides[0].sample), [("pattern",)])
    task.encoder = IOIEncoder(None, ts)
    task.encode, task.label = task.encoder.encode, _name_label(task.encoder)
    task.regime = regime
    task.description = f"ABAB/ABBA pattern; {regime.describe()}"

    def splits(sizes: Sequence[int], gen: torch.Generator) -> list[CounterfactualDataset]:
        """Pairs drawn within each split's sentences (see :func:`algorithms.ioi_regime.split_samplers`)."""
        samplers = ioi_regime.split_samplers(regime, sizes, gen)
        return [sample_counterfactuals(pattern_algorithm(input_sampler=s), n, task.intervention_sets, generator=gen,
                                       output=task.output) for s, n in zip(samplers, sizes)]

    task.counterfactual_splits = splits
    if ts.vocab != data.VOCAB:
        task.build_target = _with_vocabulary(ts)
    return task


def _with_vocabulary(ts: data.TemplateSet):
    """The family's target builder for templates with words beyond :data:`ioi_data.VOCAB`: random models
    get an embedding row per word; a trained IOI model never saw those words, so it is refused."""
    @functools.wraps(models.build_target)
    def build(kind: str, seed: int, **options: Any):
        if kind == "random":
            options.setdefault("vocab_size", len(ts.vocab))
            if isinstance(options["vocab_size"], int) and options["vocab_size"] < len(ts.vocab):
                raise ConfigError(f"target_options.vocab_size must be >= {len(ts.vocab)} for the {ts.name} templates, "
                                  f"got {options['vocab_size']}")
        elif kind == "trained":
            raise ConfigError(f"the {ts.name} templates use words the IOI model trained here never saw "
                              f"({', '.join(ts.vocab[len(data.VOCAB):])}); use target 'random' or templates 'causalab'")
        return models.build_target(kind, seed, **options)

    return build


def control_pairs(task: IOITask, kind: str, n: int, gen: torch.Generator) -> CounterfactualDataset:
    """Test pairs of one control (:data:`algorithms.ioi_regime.CONTROLS`) for a regime task's fitted map:
    ``same_pattern`` / ``different_pattern`` keep the held-out pairs whose base and source share (or do not
    share) the pattern; ``swapped_roles`` lets the fitting IO names be subjects and vice versa; ``unseen_names``,
    ``unseen_fillers`` (places, objects) and ``unseen_templates`` use what fitting never saw."""
    regime = getattr(task, "regime", None) or ioi_regime.Regime()
    draw = ioi_regime.control_sampler(regime, kind)
    algorithm = pattern_algorithm(input_sampler=draw)
    if kind not in ("same_pattern", "different_pattern"):
        return sample_counterfactuals(algorithm, n, task.intervention_sets, generator=gen, output=task.output)
    pairs = sample_counterfactuals(algorithm, 4 * n + 64, task.intervention_sets, generator=gen, output=task.output)
    same = (pairs.base["s2"] == pairs.base["name_a"]) == (pairs.sources["pattern"]["s2"] == pairs.sources["pattern"]["name_a"])
    rows = torch.nonzero(same if kind == "same_pattern" else ~same).flatten()[:n]
    return pairs.subset(rows)


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
