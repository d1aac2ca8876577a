"""pyvene as the intervention engine for Hugging Face targets (``LMTarget(engine="pyvene")``).

:func:`pyvene_patched_logits` is ``Target.patched_logits`` run through a pyvene
``IntervenableModel``: the site's hidden state is replaced by a given one. Modules are
named by path (``gpt_neox.layers[3].output``), never through pyvene's per-architecture
tables. Importing this module imports pyvene without the notice it prints
(``causalab.pyvene`` is that module). Any fitted map as a pyvene intervention, for one's
own ``pyvene.IntervenableModel``, is the export one floor up: :mod:`causalab.maps.pyvene_export`.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any, Callable

import torch

from causalab.neural.target import Site

try:  # pyvene prints "nnsight is not detected" on import, and its imports may warn: library code stays quiet.
    # Both are muted only while pyvene is imported: sys.stdout and the warning filters are restored after.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyvene as pv
        from pyvene.models.interventions import DistributedRepresentationIntervention, TrainableIntervention
except ImportError as exc:  # pragma: no cover - pyvene is a declared dependency
    raise ImportError(f"the pyvene engine needs pyvene installed: {exc}") from exc

pyvene = pv  # ``causalab.pyvene``: the module itself, imported without its chatter


class ReplaceIntervention(pv.Intervention):
    """Replace the base's hidden state by the source's (given as pyvene's ``source_representations``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keep_last_dim=True, **kwargs)

    def forward(self, base: torch.Tensor, source: torch.Tensor = None, subspaces: Any = None, **kwargs: Any):
        return source.to(base.dtype)


def component(target, layer: int) -> str:
    """pyvene's module path for the output of block ``layer`` (1-based)."""
    return f"{target.layer_path}[{layer - 1}].output"


def _intervenable(target, key: tuple, representations: Callable[[], list[dict]]):
    """The target's ``IntervenableModel`` for ``key``, built from ``representations()`` on first use."""
    def build():
        with contextlib.redirect_stdout(io.StringIO()):
            model = pv.IntervenableModel(pv.IntervenableConfig(representations=representations()), model=target.model)
        model.disable_model_gradients()
        return model

    return target.engine_model(key, build)


def locations(pos: torch.Tensor) -> list[list[int]]:
    """One token position per row, as pyvene's ``unit_locations`` lists them."""
    return [[int(p)] for p in pos.tolist()]


def pyvene_patched_logits(target, inputs: Any, site: Site, h: torch.Tensor) -> torch.Tensor:
    """``Target.patched_logits`` through pyvene: the site's hidden state becomes ``h``."""
    pos = locations(target.token_positions(inputs, site.position))
    model = _intervenable(target, ("replace", site.layer), lambda: [
        {"layer": site.layer - 1, "component": component(target, site.layer), "unit": "pos",
         "intervention": ReplaceIntervention()}])
    _, out = model(
        {"input_ids": target.input_ids(inputs)},
        unit_locations={"sources->base": (None, [pos])},
        source_representations=h[:, None, :],
    )
    return at_last(target, inputs, out.logits)


def at_last(target, inputs: Any, logits: torch.Tensor) -> torch.Tensor:
    """Each row's logits at its last token."""
    last = target.token_positions(inputs, "last")
    return logits[torch.arange(logits.shape[0], device=logits.device), last]
