"""pyvene as the intervention engine for Hugging Face targets.

:class:`AlignmentIntervention` wraps *any* :class:`~causalab.alignment.AlignmentMap`
(identity, rotation, RevNet, flows) and a :class:`~causalab.intervene.Partition` as a
pyvene intervention: ``forward(base, source)`` is the distributed interchange
``phi^-1(z_base with z_base[block] = phi(source)[block])``. Modules are named by
path (``gpt_neox.layers[3].output``), never through pyvene's per-architecture tables.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from causalab.alignment import AlignmentMap
from causalab.intervene import Partition, interchange
from causalab.neural.target import Site

try:  # pyvene prints a notice about an optional backend on import; keep library code quiet
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        import pyvene as pv
    from pyvene.models.interventions import DistributedRepresentationIntervention, TrainableIntervention
except ImportError as exc:  # pragma: no cover - pyvene is a declared dependency
    raise ImportError(f"the pyvene engine needs pyvene installed: {exc}") from exc


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


class ReplaceIntervention(pv.Intervention):
    """Replace the base's hidden state by the source's (given as pyvene's ``source_representations``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keep_last_dim=True, **kwargs)

    def forward(self, base: torch.Tensor, source: torch.Tensor = None, subspaces: Any = None, **kwargs: Any):
        return source.to(base.dtype)


def component(target, layer: int) -> str:
    """pyvene's module path for the output of block ``layer`` (1-based)."""
    return f"{target.layer_path}[{layer - 1}].output"


def _intervenable(target, key: tuple, representations: list[dict]):
    model = target._pyvene.get(key)
    if model is None:
        with contextlib.redirect_stdout(io.StringIO()):
            model = pv.IntervenableModel(pv.IntervenableConfig(representations=representations), model=target.model)
        model.disable_model_gradients()
        target._pyvene[key] = model
    return model


def _locations(pos: torch.Tensor) -> list[list[int]]:
    return [[int(p)] for p in pos.tolist()]


def pyvene_patched_logits(target, inputs: Any, site: Site, h: torch.Tensor) -> torch.Tensor:
    """``Target.patched_logits`` through pyvene: the site's hidden state becomes ``h``."""
    pos = _locations(target.token_positions(inputs, site.position))
    key = ("replace", site.layer)
    if key not in target._pyvene:
        rep = {"layer": site.layer - 1, "component": component(target, site.layer), "unit": "pos",
               "intervention": ReplaceIntervention()}
        _intervenable(target, key, [rep])
    model = target._pyvene[key]
    _, out = model(
        {"input_ids": target.input_ids(inputs)},
        unit_locations={"sources->base": (None, [pos])},
        source_representations=h[:, None, :],
    )
    return _at_last(target, inputs, out.logits)


def _at_last(target, inputs: Any, logits: torch.Tensor) -> torch.Tensor:
    last = target.token_positions(inputs, "last")
    return logits[torch.arange(logits.shape[0], device=logits.device), last]


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
    reps = [
        {"layer": site.layer - 1, "component": component(target, site.layer), "unit": "pos",
         "intervention": AlignmentIntervention(phi, partition, v)}
        for v in variables
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        model = pv.IntervenableModel(pv.IntervenableConfig(representations=reps), model=target.model)
    model.disable_model_gradients()
    base_pos = _locations(target.token_positions(base_inputs, site.position))
    src_pos = [_locations(target.token_positions(source_inputs[v], site.position)) for v in variables]
    _, out = model(
        {"input_ids": target.input_ids(base_inputs)},
        sources=[{"input_ids": target.input_ids(source_inputs[v])} for v in variables],
        unit_locations={"sources->base": (src_pos, [base_pos] * len(variables))},
    )
    return _at_last(target, base_inputs, out.logits)
