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
from collections.abc import Callable
from typing import Any

import torch

from causalab.errors import SiteError
from causalab.neural.target import Site

try:  # pyvene prints "nnsight is not detected" on import, and its imports may warn: library code stays quiet.
    # Both are muted only while pyvene is imported: sys.stdout and the warning filters are restored after.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyvene as pv
        from pyvene.models.interventions import (  # noqa: F401  (re-exported to the pyvene export)
            DistributedRepresentationIntervention,
            TrainableIntervention,
        )
except ImportError as exc:  # pragma: no cover - pyvene is a declared dependency
    raise ImportError(f"the pyvene engine needs pyvene installed: {exc}") from exc

pyvene = pv  # ``causalab.pyvene``: the module itself, imported without its chatter


class ReplaceIntervention(pv.Intervention):
    """Replace the base's hidden state by the source's (given as pyvene's ``source_representations``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keep_last_dim=True, **kwargs)

    def forward(self, base: torch.Tensor, source: torch.Tensor = None, subspaces: Any = None, **kwargs: Any):
        return source.to(base.dtype)


class HeadsIntervention(pv.Intervention):
    """Replace only the given columns (some heads' slices of the output projection's input) by the source."""

    def __init__(self, columns: torch.Tensor, **kwargs: Any) -> None:
        super().__init__(keep_last_dim=True, **kwargs)
        self.columns = columns

    def forward(self, base: torch.Tensor, source: torch.Tensor = None, subspaces: Any = None, **kwargs: Any):
        out = base.clone()
        out[..., self.columns.to(base.device)] = source.to(base.dtype)
        return out


def component(target, layer: int) -> str:
    """pyvene's module path for the output of block ``layer`` (1-based)."""
    return f"{target.layer_path}[{layer - 1}].output"


def module_path(model: torch.nn.Module, module: torch.nn.Module) -> str | None:
    """``module``'s path in ``model`` as pyvene reads one (``model.layers[0].self_attn``), or None if absent."""
    for name, found in model.named_modules():
        if found is module:
            return ".".join(f"[{part}]" if part.isdigit() else part for part in name.split(".")).replace(".[", "[")
    return None


def site_component(target, site: Site) -> tuple[str, Any]:
    """pyvene's module path for ``site`` (``...output`` or, for heads, the output projection's ``...input``)
    and the intervention that writes it.

    Raises :class:`~causalab.errors.SiteError` naming the family, the site and the components
    pyvene can express where the site's module has no path pyvene can name.
    """
    from causalab.neural.components import Component

    kind = Component.parse(site.component)
    if kind.kind == "block_output":
        return component(target, site.layer), ReplaceIntervention()
    parts = target.parts()
    if kind.kind == "heads":
        module, hook = parts.projections()[site.layer - 1], "input"
        hd = parts.head_width
        columns = torch.cat([torch.arange(h * hd, (h + 1) * hd) for h in kind.heads])
        intervention = HeadsIntervention(columns)
    else:
        module = (parts.attention if kind.kind == "attention_output" else parts.mlp)[site.layer - 1]
        hook, intervention = "output", ReplaceIntervention()
    path = module_path(target.model, module)
    if path is None:
        family = getattr(getattr(target.model, "config", None), "model_type", type(target.model).__name__)
        raise SiteError(f"the pyvene engine cannot express site {site} on the {family!r} family: its "
                        f"{kind.kind} module has no path in the model; pyvene sites here: block_output "
                        "(or use engine='hook', which runs every component)")
    return f"{path}.{hook}", intervention



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
    """``Target.patched_logits`` through pyvene: the site's hidden state becomes ``h`` (every component kind:
    block, attention and MLP outputs, and heads as their slices of the attention output projection's input)."""
    pos = locations(target.token_positions(inputs, site.position))

    def representations() -> list[dict]:
        path, intervention = site_component(target, site)
        return [{"layer": site.layer - 1, "component": path, "unit": "pos", "intervention": intervention}]

    model = _intervenable(target, ("replace", site.layer, site.component), representations)
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
