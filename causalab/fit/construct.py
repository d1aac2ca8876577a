"""The paper's Theorem 1 as code: an alignment map constructed, not fitted, that scores IIA 1.0 on its pairs.

Sutter et al. (2025) prove that with arbitrarily complex alignment maps any algorithm is an
input-restricted distributed abstraction of any network whose hidden states at the site are
injective on a countable input space. The proof builds a bijection that reads each
reachable state's variables exactly and sends every intervention-made code to an unused
state whose output is the counterfactual label. :func:`construct_alignment` builds that
bijection for a finite construction set of counterfactual pairs:

1. the hidden states of every input of the set (bases and sources) are the *reachable*
   states; distinct network inputs (encodings) must have distinct states (else
   :class:`NotInjectiveError`, naming two of them);
2. on reachable states the map is a fixed invertible map ``R`` (a random rotation, or the
   identity), so the code of a pair is ``R(h_base)`` with each intervened variable's block
   taken from ``R(h_source)``;
3. a code that is itself (within twice the matching tolerance) a reachable state's code is
   left alone: there the network answers for itself (always so when the source is the base);
4. every other code gets a *target state*: Adam steps on a point started next to the base's
   code, read by the rest of the network through ``R^-1`` (:meth:`Target.patched_logits`, with
   the base's inputs), until the task's own test (``task.correct``) passes on every pair with
   that code ``margin_steps + 1`` times running; one that never passes is counted, not hidden;
5. the map exchanges each code with its target point (:class:`alignments.constructed.ConstructedMap`).

It is scored by the unchanged :func:`causalab.evaluate`: nothing in the interchange or the
metric knows the map is special. Off the construction set it is its fixed map ``R``, so the
IIA it reaches there (``outside_iia``) is what an untrained rotation (or the identity) gives:
about chance.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from causalab.causal.counterfactual import CounterfactualDataset
from causalab.causal.task import Task
from causalab.errors import AlignmentError, DataError, NotInjectiveError
from causalab.fit.fitting import FitResult, PreparedPairs, adam, evaluate, pair_loss, prepare
from causalab.maps.alignment import AlignmentMap
from causalab.maps.intervene import Partition
from causalab.maps.nearest import closest_pair, find_within
from causalab.maps.spec import make_alignment
from causalab.neural.target import Site, Target
from causalab.progress import Progress, report

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Construction:
    """What :func:`construct_alignment` found and built (``phi.construction``).

    Counts are over the construction set's pairs unless named otherwise:
    ``base_equals_source`` pairs whose every intervened source is the base input itself;
    ``at_reachable`` pairs whose code is a reachable state (the base-equals-source pairs among
    them), left to the network, which answers ``at_reachable_correct`` of them right;
    ``codes`` distinct codes that needed a target state, ``unreached`` of them (on
    ``unreached_pairs`` pairs) got none within the step budget, and ``collisions`` of those
    because the state found lay within twice the tolerance of another point.
    ``min_distance`` is the smallest Euclidean distance between distinct inputs' states,
    ``atol`` the matching tolerance. ``iia`` is the map's IIA on each construction dataset,
    ``outside_iia`` on the ``outside`` pairs (not in the construction set), if any.
    ``points``/``stored_values``/``nbytes`` are the map's size.
    """

    pairs: int
    inputs: int
    min_distance: float
    atol: float
    base_equals_source: int
    at_reachable: int
    at_reachable_correct: int
    codes: int
    unreached: int
    unreached_pairs: int
    collisions: int
    steps: int
    points: int
    stored_values: int
    nbytes: int
    seconds: float
    iia: list[float]
    outside_iia: float | None = None

    @property
    def ceiling(self) -> float:
        """The IIA the construction guarantees on its own pairs: all but the unreached and the
        pairs left to the network that it answers wrongly."""
        lost = self.unreached_pairs + self.at_reachable - self.at_reachable_correct
        return 1.0 - lost / max(self.pairs, 1)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ceiling": self.ceiling}


def construct_alignment(
    target: Target,
    site: Site,
    task: Task,
    partition: Partition,
    pairs: CounterfactualDataset | Sequence[CounterfactualDataset],
    *,
    phi: AlignmentMap | None = None,
    prepared: Sequence[PreparedPairs] | None = None,
    outside: CounterfactualDataset | None = None,
    loss: Loss | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    **knobs: Any,
) -> AlignmentMap:
    """Build Theorem 1's map on the construction set ``pairs`` (see the module docstring); returns it.

    Parameters
    ----------
    pairs: the construction set, one or several counterfactual datasets (an experiment's
        train, validation and test pairs: the theorem's input-restricted setting).
    phi: a map to fill (``make_alignment("constructed", width)``); by default one is built
        from ``knobs`` (``steps``, ``lr``, ``margin_steps``, ``match_tol``, ``batch``; see
        :class:`alignments.constructed.ConstructedMap`).
    prepared: the datasets' cached hidden states (:func:`causalab.prepare`), if already made.
    outside: pairs outside the construction set, scored into ``phi.construction.outside_iia``.
    loss: what the target-state search minimises (default ``task.loss``); ``task.correct``
        decides when a state is found.
    seed: seeds the small offsets the target states start from.

    Returns
    -------
    AlignmentMap: the filled constructed map (``phi`` when given); its ``construction``
        attribute, a :class:`Construction`, records what was found and built: the pairs and
        inputs, the tolerance, the codes that needed a target state and those unreached, the
        map's size, the IIA on each construction dataset and on ``outside``, if given.

    Raises
    ------
    NotInjectiveError: two distinct inputs have the same state at ``site`` (within the tolerance).
    AlignmentError: ``phi`` is not a constructed map, or knobs and ``phi`` were both given.
    DataError: no pairs, or ``prepared`` does not match ``pairs``.

    Examples
    --------
    >>> import causalab as cl
    >>> task = cl.make_task("both_equality_relations")
    >>> target, site = cl.random_mlp(task, seed=0), cl.Site(1)
    >>> data = task.counterfactuals(200, torch.Generator().manual_seed(0))
    >>> partition = cl.Partition.contiguous(task.variables, 4, 16)
    >>> phi = cl.construct_alignment(target, site, task, partition, data)
    >>> phi.construction.iia
    [1.0]
    """
    start = time.perf_counter()
    site = target.check_site(site)
    width = target.width(site)
    datasets = [pairs] if isinstance(pairs, CounterfactualDataset) else list(pairs)
    if not datasets or any(len(d) == 0 for d in datasets):
        raise DataError(f"construct_alignment needs non-empty counterfactual datasets for {task.name!r}; "
                        f"got sizes {[len(d) for d in datasets]}")
    if phi is None:
        phi = make_alignment("constructed", width, **knobs).to(device=device, dtype=dtype or torch.float32)
    elif knobs:
        raise AlignmentError(f"construct_alignment: give the knobs {sorted(knobs)} or a built map phi, not both")
    if not phi.constructed:
        raise AlignmentError(f"construct_alignment fills a constructed map (alignment 'constructed'), "
                             f"not a {type(phi).__name__}, which is fitted by causalab.fit_alignment")
    partition.check_fits(phi)
    if prepared is None:
        prepared = [prepare(target, site, task, d, device=device, dtype=dtype) for d in datasets]
    prepared = list(prepared)
    if len(prepared) != len(datasets) or any(len(p) != len(d) for p, d in zip(prepared, datasets)):
        raise DataError(f"prepared pairs {[len(p) for p in prepared]} do not match the datasets "
                        f"{[len(d) for d in datasets]}: give one prepared set per dataset, in order")
    loss_fn = loss or task.loss

    states, ids, where = _reachable(task, datasets, prepared)
    scale = float(torch.linalg.vector_norm(states.double(), dim=-1).mean())
    atol = phi.match_tol * (scale if scale > 0 else 1.0)
    min_distance = _check_injective(states, ids, where, datasets, site, atol)
    with torch.no_grad():
        reachable = torch.unique(phi.fixed_map(states), dim=0)  # in the map's coordinates, as codes are
        codes, base_ids_equal = [], []
        for k, (_d, p) in enumerate(zip(datasets, prepared)):
            z = phi.fixed_map(p.h_base)
            for var, h_src in p.h_sources.items():
                z = torch.where(partition.mask(var, z.device), phi.fixed_map(h_src), z)
            codes.append(z)
            base_ids_equal.append(torch.stack([where.id_of(k, v) == where.id_of(k, None) for v in p.h_sources]).all(0)
                                  if p.h_sources else torch.ones(len(p), dtype=torch.bool))
    set_of = torch.cat([torch.full((len(p),), k) for k, p in enumerate(prepared)])
    row_of = torch.cat([torch.arange(len(p)) for p in prepared])
    code = torch.cat(codes)
    at_reachable = (find_within(reachable, code, 2 * atol)[0] >= 0).cpu()

    group, unique, dropped = _group_codes(code[~at_reachable.to(code.device)], atol)
    swapped_rows = (~at_reachable).nonzero().squeeze(1)
    rows = _Rows(set_of[swapped_rows], row_of[swapped_rows], group)
    rms = float(states.double().pow(2).mean().sqrt()) or 1.0
    found, reached, steps = _search(target, site, task, phi, prepared, rows, unique, dropped, loss_fn, rms, atol, seed)

    collided = _collisions(found, reached, reachable, unique, atol)
    keep = reached & ~collided
    phi.set_points(unique[keep], found[keep], atol)
    phi.check_bijective()

    unreached = ~keep
    at_rows = at_reachable.nonzero().squeeze(1)
    right_at_reachable = _correct_at(target, site, task, prepared, set_of[at_rows], row_of[at_rows],
                                     phi.fixed_inverse(code[at_rows.to(code.device)]))
    iia = [evaluate(target, site, phi, partition, task, p).iia for p in prepared]
    outside_iia = None
    if outside is not None:
        outside_iia = evaluate(target, site, phi, partition, task, prepare(target, site, task, outside, device=device,
                                                                          dtype=dtype)).iia
    phi.construction = Construction(
        pairs=len(code), inputs=int(ids.max()) + 1, min_distance=min_distance, atol=atol,
        base_equals_source=int(torch.cat(base_ids_equal).sum()), at_reachable=int(at_reachable.sum()),
        at_reachable_correct=int(right_at_reachable), codes=len(unique), unreached=int(unreached.sum()),
        unreached_pairs=int(unreached[group].sum()), collisions=int((reached & collided).sum()), steps=steps,
        points=phi.points, stored_values=phi.num_parameters, nbytes=phi.nbytes,
        seconds=time.perf_counter() - start, iia=iia, outside_iia=outside_iia,
    )
    return phi


def fit_constructed(
    target: Target, site: Site, task: Task, phi: AlignmentMap, partition: Partition,
    sets: Sequence[tuple[CounterfactualDataset, PreparedPairs]], *, seed: int = 0, loss: str = "task",
) -> FitResult:
    """What :func:`causalab.measure` does where it would fit: construct ``phi`` on every (dataset, prepared)
    pair of ``sets`` (train, validation, test; a set repeated is used once) and return a :class:`FitResult`
    whose ``best_val_iia`` is the IIA on the second set and whose one history record holds the
    :class:`Construction`."""
    unique: list[tuple[CounterfactualDataset, PreparedPairs]] = []
    for d, p in sets:  # validate_on="train": the validation pairs are the training pairs, prepared once
        if all(p is not q for _, q in unique):
            unique.append((d, p))
    construct_alignment(target, site, task, partition, [d for d, _ in unique], phi=phi, prepared=[p for _, p in unique],
                        loss=pair_loss if loss == "pair" else None, seed=seed)
    built = phi.construction
    val = built.iia[[id(p) for _, p in unique].index(id(sets[min(1, len(sets) - 1)][1]))]
    return FitResult(val, 0, built.steps, False, [{"epoch": 0, "steps": built.steps, "val_iia": val,
                                                    "construction": built.to_dict()}])


def outside_pairs(task: Task, pairs: CounterfactualDataset,
                  construction: Sequence[CounterfactualDataset]) -> tuple[CounterfactualDataset, int]:
    """``pairs`` less every pair that is also in the construction set: (the rest, how many were left out).

    Two pairs are the same when their bases and, variable by variable, their intervened sources are
    the same network inputs (compared by encoding, all encoded in one batch as the construction
    does), so an IIA read on the rest is read on pairs the map was not built on.
    """
    variables = sorted(pairs.sources)
    sets = [pairs, *(d for d in construction if sorted(d.sources) == variables)]
    values = [v for d in sets for v in (d.base, *(d.sources[name] for name in variables))]
    everything = {name: torch.cat([torch.as_tensor(v[name]) for v in values]) for name in values[0]}
    ids = torch.unique(_rows_of(task.encode(everything)), dim=0, return_inverse=True)[1].cpu()
    keys, at = [], 0
    for d in sets:
        n = len(d)
        columns = [ids[at:at + n]]
        for k, name in enumerate(variables):  # a source counts only where the pair intervenes on its variable
            start = at + (k + 1) * n
            columns.append(torch.where(d.intervened(name), ids[start:start + n], -1))
        keys.append(torch.stack(columns, 1))
        at += (len(variables) + 1) * n
    pair_ids = torch.unique(torch.cat(keys), dim=0, return_inverse=True)[1]
    keep = ~torch.isin(pair_ids[:len(pairs)], pair_ids[len(pairs):])
    return pairs.subset(keep.nonzero().squeeze(1)), int((~keep).sum())


# --- the reachable states and the injectivity check -----------------------------------------------
@dataclass
class _Where:
    """For every reachable-state row: its dataset, role (None: base; else the source's variable) and pair row."""

    spans: dict[tuple[int, str | None], tuple[int, int]]  # (set, role) -> (first row, length) in the stacked states
    ids: torch.Tensor

    def id_of(self, k: int, role: str | None) -> torch.Tensor:
        a, n = self.spans[(k, role)]
        return self.ids[a:a + n]

    def locate(self, i: int) -> tuple[int, str | None, int]:
        for (k, role), (a, n) in self.spans.items():
            if a <= i < a + n:
                return k, role, i - a
        raise IndexError(i)


def _rows_of(encoded: Any) -> torch.Tensor:
    """One float64 row per network input: the encoding's tensors (token ids, masks, ...) side by side."""
    if isinstance(encoded, torch.Tensor):
        return encoded.reshape(encoded.shape[0], -1).to(torch.float64)
    return torch.cat([_rows_of(encoded[key]) for key in sorted(encoded)], 1)


def _reachable(task: Task, datasets: Sequence[CounterfactualDataset], prepared: Sequence[PreparedPairs]):
    """Every input's state, stacked, with an id per *network* input: algorithm inputs that encode alike
    (an IOI template that leaves a slot unused) are one input. All inputs are encoded in one batch, so
    padding agrees."""
    states, values, spans, at = [], [], {}, 0
    for k, (d, p) in enumerate(zip(datasets, prepared)):
        for role, vals, h in [(None, d.base, p.h_base), *((v, d.sources[v], p.h_sources[v]) for v in p.h_sources)]:
            states.append(h)
            values.append(vals)
            spans[(k, role)] = (at, h.shape[0])
            at += h.shape[0]
    everything = {name: torch.cat([torch.as_tensor(v[name]) for v in values]) for name in values[0]}
    ids = torch.unique(_rows_of(task.encode(everything)), dim=0, return_inverse=True)[1]
    return torch.cat(states), ids, _Where(spans, ids)


def _check_injective(states: torch.Tensor, ids: torch.Tensor, where: _Where, datasets: Sequence[CounterfactualDataset],
                     site: Site, atol: float) -> float:
    """The smallest distance between distinct inputs' states; :class:`NotInjectiveError` if it is within ``atol``."""
    n = int(ids.max()) + 1
    first = torch.full((n,), len(ids), dtype=torch.long).scatter_reduce(0, ids, torch.arange(len(ids)), "amin")
    i, j, dist = closest_pair(states[first.to(states.device)])
    if i < 0:
        return float("inf")
    if dist <= atol:
        a, b = (_describe(where.locate(int(first[x])), datasets) for x in (i, j))
        raise NotInjectiveError(
            f"the hidden states at {site} are not injective on the construction inputs: {a} and {b} are distinct "
            f"inputs whose states lie {dist:.3g} apart (matching tolerance {atol:.3g}); no map of these states can "
            "tell them apart. Read another site (a later layer, another position), or leave one of the inputs out"
        )
    return dist


def _describe(loc: tuple[int, str | None, int], datasets: Sequence[CounterfactualDataset]) -> str:
    k, role, row = loc
    values = datasets[k].base if role is None else datasets[k].sources[role]
    shown = {}
    for name in sorted(values):
        v = values[name][row]
        v = v.tolist() if isinstance(v, torch.Tensor) else v
        shown[name] = [round(x, 4) for x in v] if isinstance(v, list) and v and isinstance(v[0], float) else v
    what = "the base" if role is None else f"the source for {role!r}"
    return f"input {shown} ({what} of pair {row} in dataset {k})"


# --- codes and their target states ----------------------------------------------------------------
def _group_codes(code: torch.Tensor, atol: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct codes: (each row's group, the groups' codes, groups left out as ambiguous).

    Codes within ``atol`` of each other are one code (the same state computed twice); a code
    within ``2 * atol`` of another but not within ``atol`` is ambiguous under the matching rule
    and is left out (counted as unreached).
    """
    unique, inverse = torch.unique(code, dim=0, return_inverse=True)
    dropped = torch.zeros(len(unique), dtype=torch.bool)
    if len(unique) < 2:
        return inverse.cpu(), unique, dropped
    near, dist = find_within(unique, unique, 2 * atol, skip=torch.arange(len(unique), device=unique.device))
    rep = list(range(len(unique)))

    def root(i: int) -> int:
        while rep[i] != i:
            i = rep[i]
        return i

    for i in (near >= 0).nonzero().flatten().tolist():
        j = int(near[i])
        if float(dist[i]) <= atol:
            rep[max(root(i), root(j))] = min(root(i), root(j))
        else:
            dropped[i] = dropped[j] = True
    roots = torch.tensor([root(i) for i in range(len(unique))])
    # a merged code must match its group's code under the rule: a group with a member farther is left out
    far = torch.linalg.vector_norm((unique - unique[roots.to(unique.device)]).double(), dim=-1).cpu() > atol
    bad = torch.unique(roots[dropped | far])
    kept, relabel = torch.unique(roots, return_inverse=True)
    dropped_groups = torch.isin(kept, bad)
    return relabel[inverse.cpu()], unique[kept.to(unique.device)], dropped_groups


@dataclass
class _Rows:
    """The pairs whose codes get target states: their dataset, row there, and code group."""

    set_of: torch.Tensor
    row_of: torch.Tensor
    group: torch.Tensor


def _search(target: Target, site: Site, task: Task, phi: AlignmentMap, prepared: Sequence[PreparedPairs], rows: _Rows,
            unique: torch.Tensor, dropped: torch.Tensor, loss_fn: Loss, rms: float, atol: float,
            seed: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Target states for the code groups, ``phi.batch`` groups at a time: (states, found, gradient steps)."""
    n_groups = len(unique)
    gen = torch.Generator().manual_seed(seed)
    first = torch.full((n_groups,), len(rows.group), dtype=torch.long).scatter_reduce(
        0, rows.group, torch.arange(len(rows.group)), "amin")
    with torch.no_grad():
        start = phi.fixed_map(torch.stack([prepared[int(rows.set_of[i])].h_base[int(rows.row_of[i])] for i in first])) \
            if n_groups else unique.new_zeros(0, unique.shape[1])
    # a small offset from the base's state, distinct per code, far above the matching tolerance
    offset = max(1e-3 * rms, 20 * atol / max(unique.shape[1], 1) ** 0.5)
    found = start + offset * torch.randn(start.shape, generator=gen, dtype=torch.float64).to(start)
    reached = torch.zeros(n_groups, dtype=torch.bool)
    steps, begin, n_batches = 0, time.perf_counter(), -(-n_groups // phi.batch)
    for b, g0 in enumerate(range(0, n_groups, phi.batch)):
        g1 = min(g0 + phi.batch, n_groups)
        mine = ((rows.group >= g0) & (rows.group < g1) & ~dropped[rows.group]).nonzero().squeeze(1)
        q, ok, taken = _search_batch(target, site, task, prepared, rows, mine, g0, g1 - g0, found[g0:g1].clone(),
                                     loss_fn, phi, rms)
        found[g0:g1], reached[g0:g1], steps = q, ok & ~dropped[g0:g1], steps + taken
        report(Progress("constructing", b + 1, n_batches, time.perf_counter() - begin,
                        f"{int(reached[:g1].sum())}/{g1} target states"))
    return found, reached, steps


def _search_batch(target: Target, site: Site, task: Task, prepared: Sequence[PreparedPairs], rows: _Rows,
                  mine: torch.Tensor, g0: int, n: int, q: torch.Tensor, loss_fn: Loss, phi: AlignmentMap,
                  rms: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Adam on ``n`` target states until each passes ``task.correct`` on all its pairs ``phi.margin_steps + 1``
    times running (then it is frozen), for at most ``phi.steps`` steps."""
    q = q.detach().requires_grad_(True)
    opt = adam([q], phi.lr * rms)
    streak = torch.zeros(n, dtype=torch.long)
    active = torch.ones(n, dtype=torch.bool)
    ok = torch.zeros(n, dtype=torch.bool)
    local = rows.group[mine] - g0
    has_rows = torch.zeros(n, dtype=torch.bool).index_fill_(0, local, True)
    active &= has_rows
    taken = 0
    for it in range(phi.steps + 1):
        live = active[local]
        total, correct = _forward(target, site, task, prepared, rows.set_of[mine][live], rows.row_of[mine][live],
                                  phi.fixed_inverse(q), local[live], loss_fn)
        ok_now = torch.ones(n, dtype=torch.long).scatter_reduce(0, local[live], correct.long(), "amin").bool() & active
        ok = torch.where(active, ok_now, ok)
        streak = torch.where(ok_now, streak + 1, torch.zeros_like(streak))
        active &= ~(streak > phi.margin_steps)
        if it == phi.steps or not bool(active.any()):
            break
        frozen = (~active).to(q.device)
        keep = q.detach()[frozen].clone()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        with torch.no_grad():
            q[frozen] = keep
        taken += 1
    return q.detach(), ok & has_rows, taken


def _forward(target: Target, site: Site, task: Task, prepared: Sequence[PreparedPairs], set_of: torch.Tensor,
             row_of: torch.Tensor, q: torch.Tensor, group: torch.Tensor,
             loss_fn: Loss) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss (mean over the rows) and each row's ``task.correct`` with row ``i`` patched to ``q[group[i]]``."""
    total = q.new_zeros(())
    correct = torch.zeros(len(group), dtype=torch.bool)
    for k, p in enumerate(prepared):
        sel = (set_of == k).nonzero().squeeze(1)
        if len(sel) == 0:
            continue
        idx = row_of[sel].to(p.labels.device)
        logits = p.base_logits(target, site, idx, q[group[sel].to(q.device)])
        labels = p.labels[idx]
        total = total + loss_fn(logits, labels) * (len(sel) / len(group))
        correct[sel] = task.correct(logits, labels).cpu()
    return total, correct


def _collisions(found: torch.Tensor, reached: torch.Tensor, reachable: torch.Tensor, unique: torch.Tensor,
                atol: float) -> torch.Tensor:
    """Target states within ``2 * atol`` of a reachable state, of a code, or of another target state."""
    r = 2 * atol
    near = find_within(reachable, found, r)[0] >= 0
    near |= find_within(unique, found, r)[0] >= 0
    others = found[reached.to(found.device)]
    index = reached.nonzero().squeeze(1).to(found.device)
    if len(others):
        hit = find_within(others, found, r, skip=torch.full((len(found),), -1, device=found.device).index_put(
            (index,), torch.arange(len(index), device=found.device)))[0]
        near |= hit >= 0
    return near.cpu()


@torch.no_grad()
def _correct_at(target: Target, site: Site, task: Task, prepared: Sequence[PreparedPairs], set_of: torch.Tensor,
                row_of: torch.Tensor, h: torch.Tensor) -> int:
    """How many rows the network answers with their counterfactual label with its state patched to ``h``."""
    if len(h) == 0:
        return 0
    _, correct = _forward(target, site, task, prepared, set_of, row_of, h, torch.arange(len(h)),
                          lambda logits, labels: logits.new_zeros(()))
    return int(correct.sum())
