"""The invariants themselves, as plain functions on concrete values.

Each raises :class:`InvariantViolation` naming the invariant and the offending
values, and returns ``None`` when it holds. The ``check_*`` functions drive them
with hypothesis; call them directly from your own ``@given`` tests to combine them
with your own strategies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from causalab.causal.algorithm import Algorithm, Values
from causalab.causal.task import Task
from causalab.maps.alignment import AlignmentMap
from causalab.maps.intervene import Partition, interchange
from causalab.testing.violations import InvariantViolation, KitError

InterchangeFn = Callable[[AlignmentMap, torch.Tensor, Mapping[str, torch.Tensor], Partition], torch.Tensor]

#: Error allowed for a chain of interchanges relative to one round trip (each step is one).
CHAIN_SLACK = 8.0


# --- alignment maps and the interchange ------------------------------------------------
def _name(phi: AlignmentMap, subject: str | None) -> str:
    return subject or phi.describe()


def allowed_error(phi: AlignmentMap, *tensors: torch.Tensor, slack: float = 1.0) -> float:
    """``phi.tolerance`` relative to the scale ``max(1, |t|_inf)`` of the tensors involved."""
    scale = max([1.0] + [float(t.detach().abs().max()) for t in tensors if t.numel()])
    return float(phi.tolerance) * scale * slack


def _assert_close(
    invariant: str, subject: str, what: str, got: torch.Tensor, want: torch.Tensor, tol: float, extra: dict
) -> None:
    if got.shape != want.shape:
        raise InvariantViolation(invariant, subject, f"{what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}", extra)
    diff = (got.detach().double() - want.detach().double()).abs()
    bad = ~(diff <= tol)  # NaN counts as bad
    if not bool(bad.any()):
        return
    flat = torch.nonzero(bad.reshape(-1, got.shape[-1]) if got.dim() else bad.reshape(1, 1))[0].tolist()
    row, col = flat[0], flat[1]
    g2 = got.reshape(-1, got.shape[-1]) if got.dim() else got.reshape(1, 1)
    w2 = want.reshape(-1, want.shape[-1]) if want.dim() else want.reshape(1, 1)
    worst = float(diff.nan_to_num(float("inf")).max())
    details = {**extra, "row": row, "coordinate": col, "got[row]": g2[row], "expected[row]": w2[row]}
    raise InvariantViolation(
        invariant, subject, f"{what}: off by {worst:.3g} (allowed {tol:.3g}) first at row {row}, coordinate {col}", details
    )


def round_trip(phi: AlignmentMap, h: torch.Tensor, subject: str | None = None) -> None:
    """``phi.inverse(phi(h)) == h`` within ``phi.tolerance`` relative to the scale of ``h``."""
    with torch.no_grad():
        z = phi(h)
        if z.shape != h.shape:
            raise InvariantViolation("round_trip", _name(phi, subject), f"phi(h) has shape {tuple(z.shape)}, h has {tuple(h.shape)}")
        back = phi.inverse(z)
    _assert_close("round_trip", _name(phi, subject), "inverse(forward(h)) != h", back, h, allowed_error(phi, h), {"h": h})


def rows_independent(phi: AlignmentMap, h: torch.Tensor, subject: str | None = None) -> None:
    """Each row maps on its own: the map of a batch is the batch of the maps of its rows."""
    with torch.no_grad():
        z = phi(h)
        rows = torch.cat([phi(h[i : i + 1]) for i in range(h.shape[0])])
    _assert_close(
        "rows_independent", _name(phi, subject), "phi(batch)[i] != phi(batch[i])", z, rows, allowed_error(phi, h, z, slack=2), {"h": h}
    )


def same_source(
    phi: AlignmentMap, h: torch.Tensor, partition: Partition, fn: InterchangeFn = interchange, subject: str | None = None
) -> None:
    """An interchange whose every source equals the base leaves the base unchanged."""
    with torch.no_grad():
        out = fn(phi, h, {v: h for v in partition.variables}, partition)
    _assert_close("same_source", _name(phi, subject), "interchange(h, sources=h) != h", out, h, allowed_error(phi, h),
                  {"partition": partition, "h": h})


def empty_block(phi: AlignmentMap, h_base: torch.Tensor, h_source: torch.Tensor, partition: Partition,
                fn: InterchangeFn = interchange, subject: str | None = None) -> None:
    """Interchanges on empty blocks change nothing, whatever the sources."""
    empty = Partition({v: () for v in partition.variables}, partition.width)
    with torch.no_grad():
        out = fn(phi, h_base, {v: h_source for v in empty.variables}, empty)
    _assert_close("empty_block", _name(phi, subject), "interchange on empty blocks != base", out, h_base,
                  allowed_error(phi, h_base), {"partition": empty, "h_base": h_base, "h_source": h_source})


def full_swap(phi: AlignmentMap, h_base: torch.Tensor, h_source: torch.Tensor, partition: Partition,
              fn: InterchangeFn = interchange, subject: str | None = None) -> None:
    """Swapping every coordinate (the partition's blocks plus the rest) from one source returns the source.

    Does not apply to maps that swap only some coordinates (``phi.swappable < phi.width``).
    """
    if phi.swappable < phi.width:
        return
    used = {i for b in partition.blocks.values() for i in b}
    blocks = {**partition.blocks, "<rest>": [i for i in range(partition.width) if i not in used]}
    cover = Partition(blocks, partition.width)
    with torch.no_grad():
        out = fn(phi, h_base, {v: h_source for v in cover.variables}, cover)
    _assert_close("full_swap", _name(phi, subject), "interchange on every coordinate != source", out, h_source,
                  allowed_error(phi, h_base, h_source), {"partition": cover, "h_base": h_base, "h_source": h_source})


def disjoint_commute(phi: AlignmentMap, h_base: torch.Tensor, h_a: torch.Tensor, h_b: torch.Tensor, partition: Partition,
                     fn: InterchangeFn = interchange, subject: str | None = None) -> None:
    """Interchanges on two disjoint blocks commute: either order, one after the other or together, agree."""
    a, b = partition.variables[:2]
    with torch.no_grad():
        both = fn(phi, h_base, {a: h_a, b: h_b}, partition)
        both_rev = fn(phi, h_base, {b: h_b, a: h_a}, partition)
        ab = fn(phi, fn(phi, h_base, {a: h_a}, partition), {b: h_b}, partition)
        ba = fn(phi, fn(phi, h_base, {b: h_b}, partition), {a: h_a}, partition)
    tol = allowed_error(phi, h_base, h_a, h_b, slack=CHAIN_SLACK)
    ctx = {"partition": partition, "h_base": h_base, f"h_source[{a}]": h_a, f"h_source[{b}]": h_b}
    name = "disjoint_commute"
    _assert_close(name, _name(phi, subject), f"{{{b}, {a}}} != {{{a}, {b}}} (source order)", both_rev, both, tol, ctx)
    _assert_close(name, _name(phi, subject), f"{a} then {b} != {a} and {b} together", ab, both, tol, ctx)
    _assert_close(name, _name(phi, subject), f"{b} then {a} != {a} and {b} together", ba, both, tol, ctx)


def idempotent(phi: AlignmentMap, h_base: torch.Tensor, h_source: torch.Tensor, partition: Partition,
               fn: InterchangeFn = interchange, subject: str | None = None) -> None:
    """Repeating an interchange with the same source changes nothing more."""
    sources = {v: h_source for v in partition.variables}
    with torch.no_grad():
        once = fn(phi, h_base, sources, partition)
        twice = fn(phi, once, sources, partition)
    _assert_close("idempotent", _name(phi, subject), "interchange applied twice != once", twice, once,
                  allowed_error(phi, h_base, h_source, slack=CHAIN_SLACK),
                  {"partition": partition, "h_base": h_base, "h_source": h_source})


def outside_blocks(phi: AlignmentMap, h_base: torch.Tensor, h_sources: Mapping[str, torch.Tensor], partition: Partition,
                   fn: InterchangeFn = interchange, subject: str | None = None) -> None:
    """In ``phi`` space, swapped blocks hold their source's values and every other coordinate the base's."""
    with torch.no_grad():
        out = fn(phi, h_base, dict(h_sources), partition)
        z_out, z_base = phi(out), phi(h_base)
        want = z_base.clone()
        for var, h_src in h_sources.items():
            block = list(partition[var])
            if block:
                want[..., block] = phi(h_src)[..., block]
    ctx = {"partition": partition, "h_base": h_base, **{f"h_source[{v}]": s for v, s in h_sources.items()}}
    tol = allowed_error(phi, z_base, *[phi(s) for s in h_sources.values()], slack=CHAIN_SLACK)
    _assert_close("outside_blocks", _name(phi, subject), "phi(interchange) != base outside the blocks, source inside",
                  z_out, want, tol, ctx)


# --- algorithms ------------------------------------------------------------------------
def _rows(values: Values, mask: torch.Tensor) -> Values:
    return {k: v[mask] for k, v in values.items()}


def _row_differs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    neq = a != b
    return neq.reshape(neq.shape[0], -1).any(dim=1) if neq.dim() > 1 else neq


def _assert_same_values(invariant: str, subject: str, what: str, got: Values, want: Values, nodes, extra: dict) -> None:
    extra = dict(extra)
    inputs = extra.pop("_inputs", {})
    source = extra.pop("_source", {})
    for node in nodes:
        g, w = got[node], want[node]
        if g.shape != w.shape:
            raise InvariantViolation(
                invariant, subject, f"{what}: node {node!r} has shape {tuple(g.shape)}, expected {tuple(w.shape)}", extra
            )
        bad = _row_differs(g, w)
        if bool(bad.any()):
            row = int(torch.nonzero(bad)[0])
            raise InvariantViolation(
                invariant, subject, f"{what}: node {node!r} differs at row {row}",
                {**extra, "row": row, f"got {node}": g[row], f"expected {node}": w[row],
                 **{f"base {k}": v[row] for k, v in inputs.items()},
                 **{f"source {k}": v[row] for k, v in source.items()}},
            )


def no_intervention(algorithm: Algorithm, inputs: Values, subject: str | None = None) -> None:
    """``run`` with no (or empty) interventions, and ``interchange`` with no sources, equal the plain run."""
    subject = subject or algorithm.name
    plain = algorithm.run(inputs)
    ctx = {"_inputs": inputs}
    _assert_same_values("no_intervention", subject, "run(inputs, {}) != run(inputs)", algorithm.run(inputs, {}), plain,
                        algorithm.nodes, dict(ctx))
    _assert_same_values("no_intervention", subject, "interchange(inputs, {}) != run(inputs)", algorithm.interchange(inputs, {}),
                        plain, algorithm.nodes, dict(ctx))


def batch_rows_independent(algorithm: Algorithm, inputs: Values, subject: str | None = None) -> None:
    """Running a batch equals running each row alone: mechanisms must not mix rows."""
    subject = subject or algorithm.name
    plain = algorithm.run(inputs)
    n = next(iter(inputs.values())).shape[0]
    for i in range(n):
        alone = algorithm.run({k: v[i : i + 1] for k, v in inputs.items()})
        _assert_same_values("batch_rows_independent", subject, f"row {i} run alone != row {i} of the batch",
                            alone, {k: v[i : i + 1] for k, v in plain.items()}, algorithm.nodes,
                            {"_inputs": {k: v[i : i + 1] for k, v in inputs.items()}})


def same_value_interchange(algorithm: Algorithm, base: Values, source: Values, variable: str, subject: str | None = None) -> None:
    """Interchanging ``variable`` with a source that gives it the base's value changes nothing.

    Only the rows where the source agrees with the base on ``variable`` are checked;
    pass ``source = base`` for rows that always qualify.
    """
    subject = subject or algorithm.name
    run_b, run_s = algorithm.run(base), algorithm.run(source)
    keep = ~_row_differs(run_b[variable], run_s[variable])
    if not bool(keep.any()):
        return
    b, s = _rows(base, keep), _rows(source, keep)
    out = algorithm.interchange(b, {variable: s})
    _assert_same_values("same_value_interchange", subject, f"interchanging {variable!r} with an equal value changed the run",
                        out, _rows(run_b, keep), algorithm.nodes,
                        {"variable": variable, "_inputs": b, "_source": s})


def parents_from_source(algorithm: Algorithm, base: Values, source: Values, output: str | None = None,
                        subject: str | None = None) -> None:
    """Interchanging every parent of an output from one source yields the source's output."""
    subject = subject or algorithm.name
    for out_node in [output] if output else algorithm.outputs:
        parents = algorithm.parents(out_node)
        got = algorithm.interchange(base, {p: source for p in parents})
        want = algorithm.run(source)
        _assert_same_values("parents_from_source", subject, f"setting parents {parents} of {out_node!r} from the source",
                            got, want, [out_node], {"parents": parents, "_inputs": base, "_source": source})


def non_ancestor_interchange(algorithm: Algorithm, base: Values, source: Values, variable: str, subject: str | None = None) -> None:
    """Interchanging a node that is not an ancestor of an output leaves that output unchanged."""
    subject = subject or algorithm.name
    plain = algorithm.run(base)
    got = algorithm.interchange(base, {variable: source})
    outputs = [o for o in algorithm.outputs if o != variable and o not in algorithm.descendants([variable])]
    _assert_same_values("non_ancestor_interchange", subject, f"interchanging {variable!r}, which no path joins to the output,",
                        got, plain, outputs, {"variable": variable, "_inputs": base, "_source": source})


def _rows_equal(a: Any, b: Any, n: int) -> torch.Tensor | None:
    """Per row, whether two encodings are identical: tensors, lists with one entry per row, or mappings of those.

    None for anything else (the encoding cannot be compared row by row).
    """
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dim() == 0 or a.shape[0] != n:
            return torch.zeros(n, dtype=torch.bool) if a.shape != b.shape else None
        return ~_row_differs(a, b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if set(a) != set(b):
            return torch.zeros(n, dtype=torch.bool)
        same = torch.ones(n, dtype=torch.bool)
        for key in a:
            rows = _rows_equal(a[key], b[key], n)
            if rows is None:
                return None
            same &= rows
        return same
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b) == n:
        return torch.tensor([bool(x == y) for x, y in zip(a, b)], dtype=torch.bool)
    return None


def encoding_determines_label(task: Task, base: Values, other: Values, node: str, subject: str | None = None) -> None:
    """Giving input ``node`` the values of ``other`` changes the encoding of every row whose label it changes.

    A network sees only ``task.encode(inputs)``: two inputs it cannot tell apart that the
    algorithm labels differently make a task no network can solve (an encoding that drops or
    zeroes an input the output depends on). Encodings must be tensors, lists with one entry
    per row, or mappings of those; anything else raises :class:`KitError`.
    """
    subject = subject or task.name
    changed = {**base, node: other[node]}
    n = next(iter(base.values())).shape[0]
    same = _rows_equal(task.encode(base), task.encode(changed), n)
    if same is None:
        raise KitError(f"task {task.name!r}: encoding_determines_label compares encodings row by row, and "
                       f"{type(task.encode(base)).__name__} is not a tensor, a list with one entry per row or a "
                       "mapping of those; leave the invariant out (check_algorithm(..., invariants=[...]))")
    before = task.label_outputs(task.algorithm.run(base))
    after = task.label_outputs(task.algorithm.run(changed))
    bad = same & _row_differs(before, after)
    if bool(bad.any()):
        row = int(torch.nonzero(bad)[0])
        raise InvariantViolation(
            "encoding_determines_label", subject,
            f"changing input {node!r} leaves row {row}'s encoding unchanged but changes its label: no network "
            f"can tell the two inputs apart (does encode drop or overwrite {node!r}?)",
            {"row": row, "input": node, f"base {node}": base[node][row], f"changed {node}": other[node][row],
             **{f"base {k}": v[row] for k, v in base.items() if k != node},
             "label before": before[row], "label after": after[row]},
        )
