"""Any fitted map as a pyvene intervention: the export (the engine itself is :mod:`causalab.neural.pyvene_engine`).

:class:`AlignmentIntervention` wraps *any* :class:`~causalab.maps.alignment.AlignmentMap`
(identity, rotation, RevNet, flows) and a :class:`~causalab.maps.intervene.Partition` as a
pyvene intervention: ``forward(base, source)`` is the distributed interchange
``phi^-1(z_base with z_base[block] = phi(source)[block])``. Modules are named by
path (``gpt_neox.layers[3].output``), never through pyvene's per-architecture tables.

The export, for use in one's own ``pyvene.IntervenableModel``:

- :func:`to_pyvene` ``(phi, partition, variable)``: the intervention for one variable;
- :func:`pyvene_representation` ``(target, site, intervention)``: the entry of
  ``IntervenableConfig(representations=[...])`` that places it at a causalab site;
- :func:`pyvene_module` ``(target)``: the module to wrap (an LM's Hugging Face model,
  an MLP target itself);
- :func:`pyvene_unit_locations` ``(target, site, base, sources)``: the token positions
  of the site in each row (``None`` for an MLP, whose hidden state has no positions);
- ``causalab.pyvene``: pyvene itself, imported without the notice it prints (``import
  pyvene`` before causalab has imported it prints "nnsight is not detected ...").
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from causalab.errors import AlignmentError, ArchitectureError, SiteError
from causalab.maps.alignment import AlignmentMap
from causalab.maps.intervene import Partition, interchange
from causalab.neural.lm import LMTarget
from causalab.neural.mlp import MLPTarget
from causalab.neural.pyvene_engine import (  # noqa: F401  (pyvene: ``causalab.pyvene``)
    DistributedRepresentationIntervention,
    TrainableIntervention,
    at_last,
    component,
    locations,
    pv,
    pyvene,
)
from causalab.neural.target import Site, Target


class AlignmentIntervention(TrainableIntervention, DistributedRepresentationIntervention):
    """Interchange ``variable``'s block of ``phi``'s coordinates from the source; ``phi`` is trained through it."""

    def __init__(self, phi: AlignmentMap, partition: Partition, variable: str, **kwargs: Any) -> None:
        super().__init__(keep_last_dim=True, **kwargs)
        partition.check_fits(phi)
        partition[variable]  # an unknown variable fails here, naming the partition's variables
        self.phi = phi
        self.partition = partition
        self.variable = variable

    def forward(self, base: torch.Tensor, source: torch.Tensor, subspaces: Any = None, **kwargs: Any) -> torch.Tensor:
        return interchange(self.phi, base, {self.variable: source.to(base.dtype)}, self.partition)

    def __str__(self) -> str:
        return f"AlignmentIntervention({type(self.phi).__name__}, variable={self.variable!r})"


def _is_lm(target: Target) -> bool:
    return isinstance(target, LMTarget)


def to_pyvene(phi: AlignmentMap, partition: Partition, variable: str) -> AlignmentIntervention:
    """A fitted map as a pyvene intervention that interchanges ``variable``'s block of ``phi``'s coordinates.

    Put one per variable into a ``pyvene.IntervenableConfig`` (see :func:`pyvene_representation`).
    The map stays trainable through it (pyvene's ``TrainableIntervention``).

    Parameters
    ----------
    phi : AlignmentMap
        Any map, of any family.
    partition : Partition
        Which of ``phi``'s coordinates each variable owns.
    variable : str
        The variable this intervention interchanges.

    Returns
    -------
    AlignmentIntervention
        A pyvene intervention: ``phi^-1(swap(phi(base), phi(source), block))``.

    Raises
    ------
    PartitionError
        The partition does not fit ``phi`` or has no block for ``variable``.
    AlignmentError
        ``phi`` is not an :class:`AlignmentMap`.

    Examples
    --------
    >>> import causalab as cl
    >>> task = cl.make_task("both_equality_relations")
    >>> phi = cl.make_alignment("rotation", 16)
    >>> partition = cl.Partition.contiguous(task.variables, size=8, width=16)
    >>> type(cl.to_pyvene(phi, partition, "V1")).__name__
    'AlignmentIntervention'
    >>> cl.to_pyvene(phi, partition, "V3")
    Traceback (most recent call last):
    ...
    causalab.errors.PartitionError: the partition has no block for variable 'V3' (it has: ['V1', 'V2'])
    """
    if not isinstance(phi, AlignmentMap):
        raise AlignmentError(f"to_pyvene takes an AlignmentMap, got {type(phi).__name__}")
    return AlignmentIntervention(phi, partition, variable)


def pyvene_module(target: Target) -> nn.Module:
    """The module a ``pyvene.IntervenableModel`` wraps for ``target``: an LM's Hugging Face model, an MLP target itself.

    Called as pyvene calls it, an MLP target takes ``{"inputs": x}`` and returns its logits.

    Parameters
    ----------
    target : Target
        An LM or MLP target.

    Returns
    -------
    torch.nn.Module
        What ``pyvene.IntervenableModel(config, model=...)`` takes.

    Raises
    ------
    ArchitectureError
        Not a causalab target.

    Examples
    --------
    >>> import causalab as cl
    >>> oracle = cl.build_target(cl.make_task("both_equality_relations"), "oracle", 0)
    >>> cl.pyvene_module(oracle) is oracle
    True
    """
    if _is_lm(target):
        return target.model
    if isinstance(target, Target):
        return target
    raise ArchitectureError(f"pyvene_module takes a causalab Target, got {type(target).__name__}")


def pyvene_representation(target: Target, site: Site, intervention: Any) -> dict[str, Any]:
    """The entry of ``IntervenableConfig(representations=[...])`` putting ``intervention`` at ``site`` of ``target``.

    The component is a module path inside :func:`pyvene_module` ``(target)``: an LM's
    block output (``gpt_neox.layers[0].output``, unit ``pos``: give pyvene the token
    positions, :func:`pyvene_unit_locations`), an MLP's hidden activation
    (``net[1].output``: the whole ``(batch, width)`` vector, no unit locations).

    Parameters
    ----------
    target : Target
        An LM or MLP target.
    site : Site
        A block output (an LM's residual stream at a position, an MLP's hidden layer).
    intervention : Any
        A pyvene intervention, e.g. :func:`to_pyvene`'s.

    Returns
    -------
    dict
        ``{"layer", "component", "intervention"}`` (and ``"unit": "pos"`` for an LM).

    Raises
    ------
    SiteError
        A site the target does not have, or an LM site inside a block (attention, MLP or
        head outputs), which runs on causalab's hook engine.

    Examples
    --------
    >>> import causalab as cl
    >>> oracle = cl.build_target(cl.make_task("both_equality_relations"), "oracle", 0)
    >>> rep = cl.pyvene_representation(oracle, cl.Site(1), intervention=None)
    >>> rep["component"], rep["layer"]
    ('net[1].output', 0)
    """
    site = target.check_site(site)
    if _is_lm(target):
        if site.component != "block_output":
            raise SiteError(
                f"the pyvene export places maps at block outputs (the residual stream, component 'block_output'); "
                f"component sites such as {site.component!r} run on causalab's hook engine"
            )
        return {"layer": site.layer - 1, "component": component(target, site.layer), "unit": "pos",
                "intervention": intervention}
    if not isinstance(target, MLPTarget) or not isinstance(target.net, nn.Sequential):
        raise ArchitectureError(
            f"pyvene_representation knows LM targets and MLP targets (a Sequential 'net'), not {type(target).__name__}"
        )
    return {"layer": site.layer - 1, "component": f"net[{2 * site.layer - 1}].output", "intervention": intervention}


def pyvene_unit_locations(target: Target, site: Site, base_inputs: Any, source_inputs: Sequence[Any]) -> dict | None:
    """pyvene's ``unit_locations`` for one intervention per source: the site's token position in every row.

    ``None`` for an MLP (its hidden state is one vector per row: pyvene swaps it whole).

    Parameters
    ----------
    target : Target
        The target the interventions sit in.
    site : Site
        Its position names the token read and patched in every row.
    base_inputs : Any
        The *encoded* base inputs (``task.encode(...)``), which carry named positions.
    source_inputs : sequence
        The encoded inputs of each source, one per intervention.

    Returns
    -------
    dict or None
        ``{"sources->base": (source positions, base positions)}``, or ``None`` for an MLP.

    Examples
    --------
    >>> import torch, causalab as cl
    >>> task = cl.make_task("ioi_pattern")
    >>> lm = cl.build_target(task, "random", 0, size="tiny")
    >>> data = task.for_target(lm).counterfactuals(2, torch.Generator().manual_seed(0))
    >>> base, source = task.encode(data.base), task.encode(data.sources["pattern"])
    >>> locations = cl.pyvene_unit_locations(lm, cl.Site(1, "last"), base, [source])
    >>> [len(rows) for rows in locations["sources->base"][1][0]]
    [1, 1]
    """
    site = target.check_site(site)
    if not _is_lm(target):
        return None
    base_pos = locations(target.token_positions(base_inputs, site.position))
    src_pos = [locations(target.token_positions(s, site.position)) for s in source_inputs]
    return {"sources->base": (src_pos, [base_pos] * len(src_pos))}


def pyvene_interchange_logits(
    target,
    site: Site,
    phi: AlignmentMap,
    partition: Partition,
    base_inputs: Any,
    source_inputs: Mapping[str, Any],
) -> torch.Tensor:
    """Run the whole interchange inside pyvene: base and source sentences in, last-position logits out.

    One :class:`AlignmentIntervention` per variable, all at ``site``; pyvene runs each
    source, reads its hidden state at the site's position, and patches the base.
    Several variables are applied one after another at the same module, which equals
    the joint interchange because ``phi^-1`` then ``phi`` round-trips.
    """
    site = target.check_site(site)
    variables = list(source_inputs)
    reps = [pyvene_representation(target, site, to_pyvene(phi, partition, v)) for v in variables]
    with contextlib.redirect_stdout(io.StringIO()):
        model = pv.IntervenableModel(pv.IntervenableConfig(representations=reps), model=pyvene_module(target))
    model.disable_model_gradients()
    sources = [source_inputs[v] for v in variables]
    _, out = model(
        {"input_ids": target.input_ids(base_inputs)},
        sources=[{"input_ids": target.input_ids(s)} for s in sources],
        unit_locations=pyvene_unit_locations(target, site, base_inputs, sources),
    )
    return at_last(target, base_inputs, out.logits)
