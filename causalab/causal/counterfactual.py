"""Counterfactual datasets: base inputs, one source per intervened variable, counterfactual outputs.

Rows may intervene on different variable sets. Every row carries a source for every
variable that any set names; where a row does not intervene on a variable, that
variable's source *is* the base input. An interchange whose source equals the base
changes nothing, on the algorithm and on the network alike, so a whole batch of
mixed rows runs as one tensor operation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from causalab.causal.algorithm import Algorithm, Values
from causalab.errors import SamplingError

# pair_sampler(base_inputs, variable, generator) -> source inputs for that variable, row-aligned with base
PairSampler = Callable[[Values, str, torch.Generator], Values]


def _take(values: Mapping[str, torch.Tensor], idx: torch.Tensor) -> Values:
    return {k: v[idx] for k, v in values.items()}


def _cat(parts: Sequence[Mapping[str, torch.Tensor]]) -> Values:
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _where(mask: torch.Tensor, a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> Values:
    out = {}
    for k in a:
        m = mask.reshape(-1, *([1] * (a[k].dim() - 1)))
        out[k] = torch.where(m, a[k], b[k])
    return out


@dataclass
class CounterfactualDataset:
    """A batch of counterfactual pairs; see the module docstring for how mixed sets are stored."""

    base: Values
    sources: dict[str, Values]
    intervention_sets: list[tuple[str, ...]]
    set_index: torch.Tensor
    base_outputs: Values
    counterfactual_outputs: Values
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.set_index.shape[0])

    @property
    def variables(self) -> list[str]:
        return list(self.sources)

    def subset(self, idx: torch.Tensor | slice) -> CounterfactualDataset:
        if isinstance(idx, slice):
            idx = torch.arange(len(self))[idx]
        return CounterfactualDataset(
            base=_take(self.base, idx),
            sources={v: _take(s, idx) for v, s in self.sources.items()},
            intervention_sets=list(self.intervention_sets),
            set_index=self.set_index[idx],
            base_outputs=_take(self.base_outputs, idx),
            counterfactual_outputs=_take(self.counterfactual_outputs, idx),
            meta=dict(self.meta),
        )

    def split(self, sizes: Sequence[int]) -> list[CounterfactualDataset]:
        """Consecutive splits of the given sizes (rows are already i.i.d.)."""
        if sum(sizes) > len(self):
            raise SamplingError(f"split sizes {list(sizes)} need {sum(sizes)} rows; the dataset has {len(self)}")
        out, start = [], 0
        for s in sizes:
            out.append(self.subset(slice(start, start + s)))
            start += s
        return out

    def intervened(self, variable: str) -> torch.Tensor:
        """Boolean mask of the rows that intervene on ``variable``."""
        sets = torch.tensor([variable in s for s in self.intervention_sets])
        return sets[self.set_index]

    def label_changed(self, output: str) -> torch.Tensor:
        return _differs(self.base_outputs[output], self.counterfactual_outputs[output])


def _differs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    neq = a != b
    return neq.reshape(neq.shape[0], -1).any(dim=1) if neq.dim() > 1 else neq


def _normalise_sets(algorithm: Algorithm, sets: Sequence[Sequence[str] | str]) -> list[tuple[str, ...]]:
    if not sets:
        raise SamplingError(f"algorithm {algorithm.name!r}: give at least one set of variables to intervene on")
    out = []
    for s in sets:
        s = (s,) if isinstance(s, str) else tuple(s)
        for v in s:
            algorithm._check_known(v, "intervened variable")
        out.append(s)
    return out


def sample_counterfactuals(
    algorithm: Algorithm,
    n: int,
    intervention_sets: Sequence[Sequence[str] | str],
    *,
    probs: Sequence[float] | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    pair_sampler: PairSampler | None = None,
    change_share: float | None = None,
    output: str | None = None,
    max_rounds: int = 50,
) -> CounterfactualDataset:
    """Sample ``n`` counterfactual pairs.

    Each row picks one of ``intervention_sets`` (uniformly, or with ``probs``). Sources
    come from ``pair_sampler(base, variable, generator)`` when given (for tasks whose
    sources must relate to the base), else are fresh draws from the input distribution.
    With ``change_share``, that share of the rows has a counterfactual output that
    differs from the base output (rejection sampling, vectorised by rounds).

    Parameters
    ----------
    algorithm : Algorithm
        The causal graph whose inputs are sampled and whose outputs are computed.
    n : int
        Pairs to draw.
    intervention_sets : sequence of variable-name sequences (or names)
        The sets of variables interchanged together, e.g. ``[("V1",), ("V2",), ("V1", "V2")]``.
    probs : sequence of float, optional
        How often each set is drawn (uniform by default).
    generator, seed : optional
        The random stream (a ``torch.Generator``, or a seed for one; seed 0 by default).
    pair_sampler : callable, optional
        ``pair_sampler(base, variable, generator)`` gives sources related to the base.
    change_share : float, optional
        The share of pairs whose counterfactual output differs from the base's.
    output : str, optional
        The output node (the algorithm's only output by default).
    max_rounds : int
        Rounds of rejection sampling before ``change_share`` is given up with an error.

    Returns
    -------
    CounterfactualDataset
        Bases, one source per variable, the set each row intervenes on, and the base and
        counterfactual outputs.

    Raises
    ------
    SamplingError
        A negative ``n``, unknown variables, ``probs`` that do not match the sets, or a
        ``change_share`` the algorithm cannot reach.

    Examples
    --------
    >>> import causalab as cl
    >>> task = cl.make_task("both_equality_relations")
    >>> data = cl.sample_counterfactuals(task.algorithm, 1000, [("V1",), ("V2",)], seed=0, change_share=0.5)
    >>> len(data), data.intervention_sets
    (1000, [('V1',), ('V2',)])
    >>> changed = data.counterfactual_outputs["O"] != data.base_outputs["O"]
    >>> round(changed.float().mean().item(), 2)
    0.5
    """
    if n < 0:
        raise SamplingError(f"n must be non-negative, got {n}")
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
    sets = _normalise_sets(algorithm, intervention_sets)
    if probs is None:
        p = torch.full((len(sets),), 1.0 / len(sets))
    else:
        if len(probs) != len(sets) or any(x < 0 for x in probs) or sum(probs) <= 0:
            raise SamplingError(f"probs {list(probs)} must be {len(sets)} non-negative numbers with a positive sum")
        p = torch.tensor(list(probs), dtype=torch.float64)
        p = p / p.sum()
    output = output or algorithm.output
    if change_share is not None and not 0.0 <= change_share <= 1.0:
        raise SamplingError(f"change_share must lie in [0, 1], got {change_share}")

    def draw(m: int) -> CounterfactualDataset:
        return _draw(algorithm, m, sets, p, generator, pair_sampler)

    if change_share is None:
        ds = draw(n)
    else:
        want_changed = int(round(change_share * n))
        want_same = n - want_changed
        changed_parts, same_parts = [], []
        got_c = got_s = 0
        for _ in range(max_rounds):
            if got_c >= want_changed and got_s >= want_same:
                break
            chunk = draw(max(2 * n, 1024))
            ch = chunk.label_changed(output)
            idx_c = torch.nonzero(ch).flatten()[: max(want_changed - got_c, 0)]
            idx_s = torch.nonzero(~ch).flatten()[: max(want_same - got_s, 0)]
            if len(idx_c):
                changed_parts.append(chunk.subset(idx_c))
                got_c += len(idx_c)
            if len(idx_s):
                same_parts.append(chunk.subset(idx_s))
                got_s += len(idx_s)
        if got_c < want_changed or got_s < want_same:
            raise SamplingError(
                f"algorithm {algorithm.name!r}: could not reach change_share={change_share} for output {output!r} "
                f"within {max_rounds} rounds (got {got_c}/{want_changed} changed, {got_s}/{want_same} unchanged)"
            )
        parts = changed_parts + same_parts
        ds = _concat(parts)
        perm = torch.randperm(len(ds), generator=generator)
        ds = ds.subset(perm)
    ds.meta.update({"algorithm": algorithm.name, "output": output, "change_share": change_share})
    return ds


def _concat(parts: Sequence[CounterfactualDataset]) -> CounterfactualDataset:
    first = parts[0]
    return CounterfactualDataset(
        base=_cat([p.base for p in parts]),
        sources={v: _cat([p.sources[v] for p in parts]) for v in first.sources},
        intervention_sets=list(first.intervention_sets),
        set_index=torch.cat([p.set_index for p in parts]),
        base_outputs=_cat([p.base_outputs for p in parts]),
        counterfactual_outputs=_cat([p.counterfactual_outputs for p in parts]),
        meta=dict(first.meta),
    )


def _draw(
    algorithm: Algorithm,
    n: int,
    sets: list[tuple[str, ...]],
    p: torch.Tensor,
    generator: torch.Generator,
    pair_sampler: PairSampler | None,
) -> CounterfactualDataset:
    base = algorithm.sample_inputs(n, generator)
    set_index = torch.multinomial(p.float(), n, replacement=True, generator=generator) if n else torch.zeros(0, dtype=torch.long)
    variables = list(dict.fromkeys(v for s in sets for v in s))
    sources: dict[str, Values] = {}
    for v in variables:
        drawn = pair_sampler(base, v, generator) if pair_sampler is not None else algorithm.sample_inputs(n, generator)
        drawn = {k: torch.as_tensor(x) for k, x in drawn.items()}
        algorithm._check_inputs(drawn, n_expected=n)
        uses_v = torch.tensor([v in s for s in sets])[set_index]
        sources[v] = _where(uses_v, drawn, base)
    base_out_all = algorithm.run(base)
    cf_outputs = {o: base_out_all[o].clone() for o in algorithm.outputs}
    for k, s in enumerate(sets):
        rows = torch.nonzero(set_index == k).flatten()
        if len(rows) == 0:
            continue
        vals = algorithm.interchange(_take(base, rows), {v: _take(sources[v], rows) for v in s})
        for o in algorithm.outputs:
            cf_outputs[o][rows] = vals[o].to(cf_outputs[o].dtype)
    return CounterfactualDataset(
        base=base,
        sources=sources,
        intervention_sets=list(sets),
        set_index=set_index,
        base_outputs={o: base_out_all[o] for o in algorithm.outputs},
        counterfactual_outputs=cf_outputs,
    )
