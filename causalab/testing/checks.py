"""Check functions: run the invariants with hypothesis on your own maps and algorithms.

Each ``check_*`` runs every invariant it covers as its own hypothesis search and
raises :class:`InvariantViolation` (an ``AssertionError``) for the first one that
fails, with the counterexample hypothesis shrank to and the draws that rebuild it.
Runs are derandomised by default, so a check passes or fails the same way every time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from causalab.causal.algorithm import Algorithm, Values
from causalab.causal.task import Task
from causalab.maps.intervene import interchange
from causalab.testing import invariants as inv
from causalab.testing.oracle import oracle_groups, oracle_iia
from causalab.testing.strategies import (
    DEFAULT_SCALES,
    DEFAULT_WIDTHS,
    hidden_recipes,
    inputs_of,
    map_recipes,
    partitions,
    resolve_family,
)
from causalab.testing.violations import InvariantViolation, KitError

MAP_INVARIANTS = ("round_trip", "rows_independent", "leading_dims")
INTERCHANGE_INVARIANTS = ("same_source", "empty_block", "full_swap", "disjoint_commute", "idempotent", "outside_blocks")
ALGORITHM_INVARIANTS = (
    "no_intervention",
    "batch_rows_independent",
    "same_value_interchange",
    "parents_from_source",
    "non_ancestor_interchange",
    "encoding_determines_label",
    "oracle_iia",
)


def kit_settings(max_examples: int = 25, derandomize: bool = True, **overrides: Any) -> Settings:
    """Hypothesis settings for the checks: no deadline, no example database, one bug reported."""
    options = dict(
        max_examples=max_examples,
        derandomize=derandomize,
        deadline=None,
        database=None,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        print_blob=False,
    )
    options.update(overrides)
    return Settings(**options)


def _pick(requested: Sequence[str] | None, known: Sequence[str]) -> list[str]:
    if requested is None:
        return list(known)
    unknown = [r for r in requested if r not in known]
    if unknown:
        raise KitError(f"unknown invariant(s) {unknown}; this check knows: {', '.join(known)}")
    return list(requested)


def _search(invariant: str, subject: str, body: Callable[[Any], None], settings: Settings) -> None:
    """Run ``body(data)`` under hypothesis; re-raise its shrunk failure as an :class:`InvariantViolation`."""
    test = given(st.data())(settings(body))
    try:
        test()
    except (KitError, HypothesisException):
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the subject is a counterexample
        notes = "\n".join("  " + n.replace("\n", "\n  ") for n in getattr(exc, "__notes__", []))
        context = f"Counterexample (shrunk by hypothesis; the same settings reproduce it):\n{notes}"
        if not isinstance(exc, InvariantViolation):
            exc = InvariantViolation(invariant, subject, f"raised {type(exc).__name__}: {exc}")
        raise exc.with_context(context) from None


def _dtype_of(phi: torch.nn.Module) -> torch.dtype:
    for p in list(phi.parameters()) + list(phi.buffers()):
        if p.is_floating_point():
            return p.dtype
    return torch.float32


# --- alignment maps --------------------------------------------------------------------
def _map_body(invariant: str, family: Any, fn: inv.InterchangeFn, widths, scales, perturbs) -> Callable[[Any], None]:
    def body(data: Any) -> None:
        recipe = data.draw(map_recipes(family, widths=widths, perturbs=perturbs), label="map")
        phi, sub = recipe.map, repr(recipe)
        dtype = _dtype_of(phi)
        leading = invariant == "leading_dims"
        h = data.draw(hidden_recipes(phi.width, scales=scales, leading_dims=leading), label="h_base").build().to(dtype)
        if invariant in MAP_INVARIANTS:
            if invariant == "round_trip":
                inv.round_trip(phi, h, sub)
            elif invariant == "rows_independent":
                inv.rows_independent(phi, h, sub)
            else:
                _leading_dims(phi, h, sub)
            return
        n = h.shape[0]
        part = data.draw(partitions(phi.width, ("A", "B"), swappable=phi.swappable), label="partition")

        def source(label: str) -> torch.Tensor:
            return data.draw(hidden_recipes(phi.width, scales=scales, batch=n), label=label).build().to(dtype)

        if invariant == "same_source":
            inv.same_source(phi, h, part, fn, sub)
        elif invariant == "empty_block":
            inv.empty_block(phi, h, source("h_source"), part, fn, sub)
        elif invariant == "full_swap":
            inv.full_swap(phi, h, source("h_source"), part, fn, sub)
        elif invariant == "disjoint_commute":
            inv.disjoint_commute(phi, h, source("h_source[A]"), source("h_source[B]"), part, fn, sub)
        elif invariant == "idempotent":
            inv.idempotent(phi, h, source("h_source"), part, fn, sub)
        else:
            inv.outside_blocks(phi, h, {"A": source("h_source[A]"), "B": source("h_source[B]")}, part, fn, sub)

    return body


def _leading_dims(phi: Any, h: torch.Tensor, subject: str) -> None:
    """Maps act on ``(..., width)``: a ``(batch, positions, width)`` tensor maps like its rows."""
    flat = h.reshape(-1, h.shape[-1])
    with torch.no_grad():
        z = phi(h)
        want = phi(flat).reshape(h.shape)
        back = phi.inverse(z)
    inv._assert_close("leading_dims", subject, "phi on (batch, positions, width) != phi on its rows", z, want,
                      inv.allowed_error(phi, h, want, slack=2), {"h": h})
    inv._assert_close("leading_dims", subject, "inverse on (batch, positions, width) != h", back, h,
                      inv.allowed_error(phi, h), {"h": h})


def _check_maps(map_or_factory: Any, names: Sequence[str], fn: inv.InterchangeFn, max_examples: int,
                widths: Sequence[int], scales: Sequence[float], perturbs: Sequence[float], settings: Settings | None) -> None:
    family_name, _ = resolve_family(map_or_factory)
    settings = settings or kit_settings(max_examples)
    for name in names:
        _search(name, family_name, _map_body(name, map_or_factory, fn, widths, scales, perturbs), settings)


def check_alignment_map(
    map_or_factory: Any,
    *,
    invariants: Sequence[str] | None = None,
    interchange_fn: inv.InterchangeFn = interchange,
    max_examples: int = 25,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    scales: Sequence[float] = DEFAULT_SCALES,
    perturbs: Sequence[float] = (0.0, 0.05),
    settings: Settings | None = None,
) -> None:
    """Check an alignment map: round trip, row and shape behaviour, and every interchange invariant.

    ``map_or_factory`` is an :class:`AlignmentMap` instance (tested as it is, at its
    width), a registered family name, an ``AlignmentMap`` class (drawn with random
    knobs, init seeds and parameter noise), or a ``factory(width) -> AlignmentMap``.
    """
    names = _pick(invariants, MAP_INVARIANTS + INTERCHANGE_INVARIANTS)
    _check_maps(map_or_factory, names, interchange_fn, max_examples, widths, scales, perturbs, settings)


def check_interchange(
    map_or_factory: Any = "identity",
    interchange_fn: inv.InterchangeFn = interchange,
    *,
    invariants: Sequence[str] | None = None,
    max_examples: int = 25,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    scales: Sequence[float] = DEFAULT_SCALES,
    perturbs: Sequence[float] = (0.0, 0.05),
    settings: Settings | None = None,
) -> None:
    """Check an interchange implementation ``fn(phi, h_base, h_sources, partition)`` under a map."""
    names = _pick(invariants, INTERCHANGE_INVARIANTS)
    _check_maps(map_or_factory, names, interchange_fn, max_examples, widths, scales, perturbs, settings)


# --- algorithms ------------------------------------------------------------------------
def _cat(a: Values, b: Values) -> Values:
    return {k: torch.cat([a[k], b[k]]) for k in a}


def _antichain(algorithm: Algorithm, order: Sequence[str]) -> list[str]:
    chosen: list[str] = []
    for v in order:
        related = algorithm.descendants([v]) | {u for u in chosen if v in algorithm.descendants([u])}
        if not related & set(chosen):
            chosen.append(v)
    return chosen


def _algorithm_body(invariant: str, subject: Task | Algorithm, max_batch: int) -> Callable[[Any], None]:
    task = subject if isinstance(subject, Task) else None
    algorithm = task.algorithm if task else subject
    name = algorithm.name

    def body(data: Any) -> None:
        if invariant == "oracle_iia":
            seed = data.draw(st.integers(0, 2**16), label="sampling seed")
            if task is not None:
                for variables, sets in oracle_groups(task):
                    oracle_iia(task, variables=variables, intervention_sets=sets, seed=seed)
                return
            candidates = [v for v in algorithm.nodes if v not in algorithm.outputs]
            chain = _antichain(algorithm, data.draw(st.permutations(candidates), label="variable order"))
            variables = chain[: data.draw(st.integers(1, len(chain)), label="number of variables")]
            subset = st.lists(st.sampled_from(variables), min_size=1, unique=True).map(tuple)
            sets = data.draw(st.lists(subset, min_size=1, max_size=3), label="intervention sets")
            oracle_iia(algorithm, variables=variables, intervention_sets=sets, seed=seed)
            return
        if invariant == "encoding_determines_label" and task is None:
            return  # an algorithm alone has no encoding
        base = data.draw(inputs_of(algorithm, max_batch=max_batch), label="base")
        if invariant == "encoding_determines_label":
            n = next(iter(base.values())).shape[0]
            node = data.draw(st.sampled_from(algorithm.inputs), label="changed input")
            other = data.draw(inputs_of(algorithm, min_batch=n, max_batch=n), label="other inputs")
            inv.encoding_determines_label(task, base, other, node, name)
            return
        if invariant == "no_intervention":
            inv.no_intervention(algorithm, base, name)
            return
        if invariant == "batch_rows_independent":
            inv.batch_rows_independent(algorithm, base, name)
            return
        n = next(iter(base.values())).shape[0]
        variable = data.draw(st.sampled_from(algorithm.nodes), label="variable")
        if task is not None and task.pair_sampler is not None and data.draw(st.booleans(), label="task's pair sampler"):
            seed = data.draw(st.integers(0, 2**16), label="pair seed")
            source = task.pair_sampler(base, variable, torch.Generator().manual_seed(seed))
        else:
            source = data.draw(inputs_of(algorithm, min_batch=n, max_batch=n), label="source")
        if invariant == "same_value_interchange":
            inv.same_value_interchange(algorithm, _cat(base, base), _cat(source, base), variable, name)
        elif invariant == "parents_from_source":
            inv.parents_from_source(algorithm, base, source, subject=name)
        else:
            inv.non_ancestor_interchange(algorithm, base, source, variable, name)

    return body


def check_algorithm(
    algorithm: Algorithm | Task,
    *,
    invariants: Sequence[str] | None = None,
    max_examples: int = 25,
    max_batch: int = 8,
    settings: Settings | None = None,
) -> None:
    """Check an algorithm (or a task: its algorithm, sources, encoding and labels) against the causal invariants.

    Includes ``oracle_iia``: a network built from the algorithm scores IIA 1.0 under the
    identity map on its variables' blocks (fewer examples: each samples a dataset). That
    network reads the algorithm's inputs, not the task's ``encode``; the encoding is
    checked by ``encoding_determines_label`` (tasks only). A task whose ``label`` reads a
    node that is not an output fails at once with :class:`~causalab.errors.UnknownNodeError`
    naming the node and the outputs.
    """
    if not isinstance(algorithm, (Algorithm, Task)):
        raise KitError(f"check_algorithm expects an Algorithm or a Task, got {type(algorithm).__name__}")
    if isinstance(algorithm, Task):  # a label reading the wrong node is the task's error, not a counterexample
        algorithm.label_outputs(algorithm.algorithm.run(algorithm.algorithm.sample_inputs(2, torch.Generator().manual_seed(0))))
    names = _pick(invariants, ALGORITHM_INVARIANTS)
    settings = settings or kit_settings(max_examples)
    subject = algorithm.algorithm.name if isinstance(algorithm, Task) else algorithm.name
    for name in names:
        s = settings if name != "oracle_iia" else Settings(settings, max_examples=max(1, settings.max_examples // 5))
        _search(name, subject, _algorithm_body(name, algorithm, max_batch), s)
