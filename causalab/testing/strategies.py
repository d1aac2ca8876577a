"""Hypothesis strategies for causal algorithms, their inputs, hidden states, alignment maps and partitions.

Draws that would print as walls of numbers (hidden states, maps) are drawn as small
*recipes* (:class:`HiddenRecipe`, :class:`MapRecipe`) that print as one line and
rebuild the object exactly; the ``*_recipes`` strategies give those, the plain
strategies give the objects.

Alignment families are read from the registry, so a family registered later is
drawn too. A family whose knobs need constraints may define a classmethod
``example_knobs(width) -> {knob: [values...]}`` listing valid values per knob,
simplest first; knobs it does not list are drawn from their default's type.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from hypothesis import strategies as st

from causalab.causal.algorithm import Algorithm, Values
from causalab.errors import CausalabError
from causalab.maps.alignment import AlignmentMap
from causalab.maps.intervene import Partition
from causalab.maps.spec import knobs_of
from causalab.registry import ALIGNMENTS
from causalab.testing.table_algorithm import TableAlgorithm, design
from causalab.testing.violations import KitError

DEFAULT_WIDTHS = (1, 2, 3, 4, 5, 8, 16)
DEFAULT_SCALES = (1.0, 0.01, 10.0, 100.0)
HIDDEN_KINDS = ("gaussian", "relu", "outliers", "repeated_rows", "integers")
BUILD_ERRORS = (CausalabError, ValueError, TypeError, RuntimeError)


# --- algorithms and their inputs ------------------------------------------------------
@st.composite
def algorithms(
    draw: st.DrawFn, max_inputs: int = 3, max_variables: int = 3, max_domain: int = 3, max_parents: int = 3
) -> TableAlgorithm:
    """Random table algorithms (see :mod:`causalab.testing.table_algorithm`); they shrink to tiny ones."""

    def pick_subset(items: Sequence[str], lo: int, hi: int) -> list[str]:
        return draw(st.lists(st.sampled_from(list(items)), min_size=lo, max_size=hi, unique=True))

    specs = design(
        lambda lo, hi: draw(st.integers(lo, hi)),
        pick_subset,
        max_inputs=max_inputs,
        max_variables=max_variables,
        max_domain=max_domain,
        max_parents=max_parents,
    )
    return TableAlgorithm(specs)


@st.composite
def inputs_of(draw: st.DrawFn, algorithm: Algorithm, min_batch: int = 1, max_batch: int = 8) -> Values:
    """A batch of inputs of ``algorithm``: finite domains drawn value by value, samplers from a drawn seed."""
    n = draw(st.integers(min_batch, max_batch), label="batch")
    g = algorithm.graph
    by_sampler = algorithm.input_sampler is not None or any(g.nodes[i].get("sampler") for i in algorithm.inputs)
    if by_sampler:
        seed = draw(st.integers(0, 2**31 - 1), label="input seed")
        values = algorithm.sample_inputs(n, torch.Generator().manual_seed(seed))
    else:
        values = {}
    for node in algorithm.inputs:
        if node in values:
            continue
        domain = algorithm.domain(node)
        picks = draw(st.lists(st.sampled_from(list(domain)), min_size=n, max_size=n), label=node)
        values[node] = torch.as_tensor(picks)
    return values


# --- hidden states ---------------------------------------------------------------------
@dataclass(frozen=True)
class HiddenRecipe:
    """A batch of hidden states, rebuilt exactly from a seed: ``shape``, ``scale`` and ``kind``.

    Kinds mimic real networks: ``gaussian``; ``relu`` (sparse, non-negative, as in MLPs);
    ``outliers`` (a few coordinates 20x larger, as in transformer residual streams);
    ``repeated_rows`` (duplicates); ``integers`` (exact ties and zeros).
    """

    shape: tuple[int, ...]
    scale: float = 1.0
    kind: str = "gaussian"
    seed: int = 0
    dtype: torch.dtype = torch.float32

    def build(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed)
        x = torch.randn(self.shape, generator=g, dtype=torch.float64)
        width = self.shape[-1]
        if self.kind == "relu":
            x = x.clamp(min=0.0)
        elif self.kind == "outliers":
            hot = torch.randperm(width, generator=g)[: max(1, width // 8)]
            x[..., hot] *= 20.0
        elif self.kind == "repeated_rows" and len(self.shape) > 1:
            x = x.reshape(-1, width)
            x[1::2] = x[0]
            x = x.reshape(self.shape)
        elif self.kind == "integers":
            x = torch.round(2 * x)
        return (x * self.scale).to(self.dtype)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis prints draws with this
        printer.text(repr(self))

    def __repr__(self) -> str:
        return f"HiddenRecipe(shape={self.shape}, scale={self.scale:g}, kind={self.kind!r}, seed={self.seed})"


@st.composite
def hidden_recipes(
    draw: st.DrawFn,
    width: int,
    *,
    min_batch: int = 1,
    max_batch: int = 16,
    scales: Sequence[float] = DEFAULT_SCALES,
    kinds: Sequence[str] = HIDDEN_KINDS,
    leading_dims: bool = False,
    batch: int | None = None,
) -> HiddenRecipe:
    """Recipes for ``(batch, width)`` hidden states (``(batch, positions, width)`` with ``leading_dims``)."""
    n = batch if batch is not None else draw(st.integers(min_batch, max_batch), label="batch")
    shape: tuple[int, ...] = (n, width)
    if leading_dims:
        shape = (n, draw(st.integers(1, 3), label="positions"), width)
    return HiddenRecipe(
        shape,
        draw(st.sampled_from(list(scales)), label="scale"),
        draw(st.sampled_from(list(kinds)), label="kind"),
        draw(st.integers(0, 2**31 - 1), label="seed"),
    )


def hidden_states(width: int, **options: Any) -> st.SearchStrategy[torch.Tensor]:
    """Hidden-state batches of ``width`` at realistic scales; options as in :func:`hidden_recipes`."""
    return hidden_recipes(width, **options).map(HiddenRecipe.build)


# --- alignment maps --------------------------------------------------------------------
@dataclass(frozen=True)
class MapRecipe:
    """How a drawn alignment map was built: family, width, knobs, init seed, parameter noise."""

    family: str
    width: int
    knobs: dict = field(default_factory=dict)
    seed: int = 0
    perturb: float = 0.0
    map: AlignmentMap | None = field(default=None, compare=False)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def __repr__(self) -> str:
        if self.family == "<instance>" and self.map is not None:
            return self.map.describe()
        knobs = "".join(f", {k}={v!r}" for k, v in self.knobs.items())
        has_params = self.map is not None and any(True for _ in self.map.parameters())
        extra = f"; init seed={self.seed}, perturb={self.perturb:g}" if has_params and self.family != "<instance>" else ""
        return f"{self.family}(width={self.width}{knobs}{extra})"


def resolve_family(map_or_factory: Any) -> tuple[str, Callable[..., AlignmentMap] | None]:
    """A name for what is under test and a ``factory(width, **knobs)``; ``None`` for an instance."""
    if isinstance(map_or_factory, AlignmentMap):
        return "<instance>", None
    if isinstance(map_or_factory, str):
        return map_or_factory, ALIGNMENTS.get(map_or_factory)
    if isinstance(map_or_factory, type):
        for name in ALIGNMENTS.names():
            if ALIGNMENTS.get(name) is map_or_factory:
                return name, map_or_factory
        return map_or_factory.__name__, map_or_factory
    if callable(map_or_factory):
        return getattr(map_or_factory, "__name__", repr(map_or_factory)), map_or_factory
    raise KitError(
        f"cannot test {map_or_factory!r}: give an AlignmentMap instance, a registered family name, "
        "an AlignmentMap class, or a factory(width) -> AlignmentMap"
    )


def _annotation_type(annotation: Any) -> type | None:
    if isinstance(annotation, type):
        return annotation
    if isinstance(annotation, str):
        return {"int": int, "float": float, "bool": bool, "str": str}.get(annotation.split("|")[0].strip())
    return None


def knob_choices(factory: Callable[..., AlignmentMap], width: int) -> dict[str, list[Any]]:
    """Candidate values per knob, simplest first (a family's ``example_knobs`` wins, knob by knob)."""
    if not isinstance(factory, type):
        return {}
    listed = dict(factory.example_knobs(width)) if issubclass(factory, AlignmentMap) else {}
    out: dict[str, list[Any]] = {}
    for name, param in knobs_of(factory).items():
        if name in listed:
            values = list(listed[name])
            if not values:
                raise KitError(f"{factory.__name__}.example_knobs({width}) lists no values for knob {name!r}")
            out[name] = values
            continue
        default = param.default
        kind = type(default) if default not in (inspect.Parameter.empty, None) else _annotation_type(param.annotation)
        if kind is bool:
            values = [False, True]
        elif kind is int:
            values = [1, 2, 3, 4] if default is inspect.Parameter.empty else [default, 0, 1, 2, 3, 4]
        elif kind is float:
            values = [0.5, 1.0] if default is inspect.Parameter.empty else [default, default / 2, default * 2, 0.1]
        elif default is not inspect.Parameter.empty:
            values = [default]
        else:
            raise KitError(
                f"{factory.__name__}: knob {name!r} has no default and no type the kit can draw; "
                "define a classmethod example_knobs(width) returning {knob: [values...]}"
            )
        if default is not inspect.Parameter.empty and default in values:
            values.remove(default)
            values.insert(0, default)
        out[name] = list(dict.fromkeys(values))
    return out


def _defaults(factory: Callable[..., AlignmentMap], width: int) -> dict[str, Any]:
    """Knobs for the plainest map: defaults, else the first listed candidate."""
    if not isinstance(factory, type):
        return {}
    choices = knob_choices(factory, width)
    out = {}
    for name, param in knobs_of(factory).items():
        if param.default is inspect.Parameter.empty:
            out[name] = choices[name][0]
    return out


def build_map(factory: Callable[..., AlignmentMap], width: int, knobs: dict, seed: int, perturb: float) -> AlignmentMap:
    """Build with a fixed init seed (without touching the global RNG), then add parameter noise."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        phi = factory(width, **knobs)
    if not isinstance(phi, AlignmentMap):
        raise KitError(f"the factory returned {type(phi).__name__}, not an AlignmentMap")
    if perturb:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for p in phi.parameters():
                if p.is_floating_point():
                    p.add_(perturb * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return phi


_BUILDABLE: dict[tuple[Any, tuple[int, ...]], tuple[int, ...]] = {}


def buildable_widths(factory: Callable[..., AlignmentMap], widths: Sequence[int]) -> tuple[int, ...]:
    """The widths at which the family builds with its plainest knobs (cached per family)."""
    key = (factory, tuple(widths))
    if key not in _BUILDABLE:
        ok = []
        for w in widths:
            try:
                build_map(factory, w, _defaults(factory, w), 0, 0.0)
            except BUILD_ERRORS:
                continue
            ok.append(w)
        _BUILDABLE[key] = tuple(ok)
    return _BUILDABLE[key]


@st.composite
def map_recipes(
    draw: st.DrawFn,
    family: Any = None,
    *,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    perturbs: Sequence[float] = (0.0, 0.05),
) -> MapRecipe:
    """Built maps with their recipes: a family (any registered one if ``None``) at a drawn width and knobs.

    Knob values a family rejects fall back to its plainest knobs; ``perturbs`` adds
    Gaussian noise to the parameters, so maps are not stuck at their initialisation.
    """
    if family is None:
        family = draw(st.sampled_from(ALIGNMENTS.names()), label="family")
    name, factory = resolve_family(family)
    if factory is None:
        return MapRecipe(name, family.width, {}, map=family)
    ok = buildable_widths(factory, widths)
    if not ok:
        raise KitError(f"alignment family {name!r} cannot be built at any of the widths {list(widths)} with default knobs")
    width = draw(st.sampled_from(ok), label="width")
    knobs = {k: draw(st.sampled_from(v), label=k) for k, v in knob_choices(factory, width).items()}
    seed = draw(st.integers(0, 2**16), label="init seed")
    perturb = draw(st.sampled_from(list(perturbs)), label="perturb")
    try:
        phi = build_map(factory, width, knobs, seed, perturb)
    except BUILD_ERRORS:
        knobs = _defaults(factory, width)
        phi = build_map(factory, width, knobs, seed, perturb)
    return MapRecipe(name, width, knobs, seed, perturb, phi)


def alignment_maps(family: Any = None, **options: Any) -> st.SearchStrategy[AlignmentMap]:
    """Alignment maps of every registered family (or of ``family``) with random knobs; see :func:`map_recipes`."""
    return map_recipes(family, **options).map(lambda r: r.map)


# --- partitions ------------------------------------------------------------------------
@st.composite
def partitions(
    draw: st.DrawFn,
    width: int,
    variables: Sequence[str] = ("A", "B"),
    *,
    swappable: int | None = None,
    allow_empty: bool = True,
) -> Partition:
    """Disjoint, non-contiguous blocks inside the first ``swappable`` coordinates (``phi.swappable``)."""
    limit = width if swappable is None else swappable
    low = 0 if allow_empty else 1
    if low * len(variables) > limit:
        raise KitError(f"{len(variables)} non-empty blocks do not fit in {limit} swappable coordinates")
    order = draw(st.permutations(list(range(limit))), label="coordinate order")
    blocks, start = {}, 0
    for k, var in enumerate(variables):
        room = limit - start - low * (len(variables) - k - 1)
        size = draw(st.integers(low, room), label=f"size of {var}")
        blocks[var] = sorted(order[start : start + size])
        start += size
    return Partition(blocks, width)
