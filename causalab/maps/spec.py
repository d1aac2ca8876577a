"""Alignment-map specs: ``"family:knob=value,knob=value"`` parsed once, checked against the family's
constructor, and built into a map.

:class:`AlignmentSpec` reads a spec string, :func:`make_alignment` builds the map it names for a
hidden width, :func:`knobs_of` lists a family's knobs (its constructor's keyword parameters) and
:func:`build_map` builds a run's map from its seed without touching torch's global random stream.
Families are looked up by name in :data:`causalab.registry.ALIGNMENTS`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from causalab.errors import RegistryError
from causalab.maps.alignment import AlignmentMap
from causalab.registry import ALIGNMENTS


@dataclass(frozen=True)
class AlignmentSpec:
    """An alignment-map spec parsed once: ``"revnet:blocks=10,hidden=16"`` is family ``revnet``
    with knobs ``{"blocks": "10", "hidden": "16"}``. ``str(spec)`` gives the text back."""

    text: str
    family: str
    knobs: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, spec: str | AlignmentSpec) -> AlignmentSpec:
        if isinstance(spec, AlignmentSpec):
            return spec
        if not isinstance(spec, str) or not spec.strip():
            raise RegistryError(f"an alignment spec must be a non-empty string like 'rotation' or 'revnet:blocks=2', got {spec!r}")
        name, _, rest = spec.strip().partition(":")
        knobs: dict[str, str] = {}
        for item in filter(None, (s.strip() for s in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise RegistryError(f"alignment spec {spec!r}: {item!r} is not of the form knob=value")
            knobs[key.strip()] = value.strip()
        return cls(spec, name.strip(), tuple(knobs.items()))

    def __str__(self) -> str:
        return self.text

    def family_class(self) -> type:
        """The registered family, checked to take every knob the spec names."""
        cls = ALIGNMENTS.get(self.family)
        valid = knobs_of(cls)
        unknown = [k for k, _ in self.knobs if k not in valid]
        if unknown:
            raise RegistryError(
                f"alignment {self.family!r} has no knob(s) {unknown}; its knobs are: {', '.join(valid) or '(none)'}"
            )
        return cls

    def build(self, width: int, **overrides: Any):
        """The map for hidden width ``width`` (knob values read as the constructor's types)."""
        cls = self.family_class()
        valid = knobs_of(cls)
        knobs = {**dict(self.knobs), **overrides}
        unknown = [k for k in overrides if k not in valid]
        if unknown:
            raise RegistryError(
                f"alignment {self.family!r} has no knob(s) {unknown}; its knobs are: {', '.join(valid) or '(none)'}"
            )
        kwargs = {k: _coerce(v, valid[k].default, valid[k].annotation, f"alignment {self.family!r} knob {k!r}")
                  for k, v in knobs.items()}
        phi = cls(width, **kwargs)
        phi.spec = format_spec(self.family, kwargs)  # what the map was built from, for saving and inspecting it
        return phi

    @staticmethod
    def split(text: str) -> list[str]:
        """Several specs in one string: split on ``;`` (always) and on ``,`` outside a family's knob
        list, so ``"identity,rotation"`` and ``"rotation;revnet:blocks=2,hidden=8"`` are two each."""
        parts, cur, in_knobs = [], "", False
        for ch in text:
            if ch == ";" or (ch == "," and not in_knobs):
                parts.append(cur)
                cur, in_knobs = "", False
                continue
            if ch == ":":
                in_knobs = True
            cur += ch
        parts.append(cur)
        return [p.strip() for p in parts if p.strip()]


def _coerce(value: Any, default: Any, annotation: Any, where: str) -> Any:
    if not isinstance(value, str):
        return value
    target = type(default) if default not in (inspect.Parameter.empty, None) else None
    if target is None and isinstance(annotation, type):
        target = annotation
    if target is None and isinstance(annotation, str):
        target = {"int": int, "float": float, "bool": bool, "str": str}.get(annotation.split("|")[0].strip())
    try:
        if target is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if target in (int, float):
            return target(value)
    except ValueError:
        raise RegistryError(f"{where}: cannot read {value!r} as {target.__name__}") from None
    if target is None:  # best effort: number, else string
        for cast in (int, float):
            try:
                return cast(value)
            except ValueError:
                pass
    return value


def knobs_of(cls: type) -> dict[str, inspect.Parameter]:
    """The constructor knobs of an alignment family (everything after ``width``)."""
    params = dict(inspect.signature(cls.__init__).parameters)
    params.pop("self", None)
    params.pop("width", None)
    return {k: p for k, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def make_alignment(spec: str | AlignmentSpec, width: int, **overrides: Any):
    """Build an alignment map from a spec string for hidden width ``width``.

    Parameters
    ----------
    spec : str or AlignmentSpec
        ``"family"`` or ``"family:knob=value,knob=value"`` (``"revnet:blocks=10,hidden=16"``);
        ``causalab list alignments`` prints every family with its knobs and defaults.
    width : int
        The hidden width of the site the map will read.
    **overrides
        Knob values that replace the spec's.

    Returns
    -------
    AlignmentMap
        A fresh map (parameters drawn from torch's random stream).

    Raises
    ------
    RegistryError
        An unknown family or knob, or a knob value of the wrong type, naming the valid ones.

    Examples
    --------
    >>> import causalab as cl
    >>> phi = cl.make_alignment("revnet:blocks=2,hidden=8", 16)
    >>> phi.spec, phi.num_parameters
    ('revnet:blocks=2,hidden=8', 576)
    >>> cl.make_alignment("revnet:block=2", 16)
    Traceback (most recent call last):
    ...
    causalab.errors.RegistryError: alignment 'revnet' has no knob(s) ['block']; its knobs are: blocks, hidden, depth, standardize
    """
    return AlignmentSpec.parse(spec).build(width, **overrides)


def format_spec(name: str, knobs: dict[str, Any]) -> str:
    """The spec string of a family and its knobs, ``"revnet:blocks=2,hidden=8"``: what :func:`make_alignment` reads."""
    def text(v: Any) -> str:
        return str(v).lower() if isinstance(v, bool) else str(v)

    return name + (":" + ",".join(f"{k}={text(v)}" for k, v in knobs.items()) if knobs else "")


def build_map(spec: str | AlignmentMap, width: int, seed: int, dtype: torch.dtype, device: str = "cpu") -> AlignmentMap:
    """A fresh map from a spec string, initialised from ``seed`` without touching the global RNG."""
    if isinstance(spec, AlignmentMap):
        return spec
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make_alignment(spec, width).to(device=device, dtype=dtype)


def describe_spec(spec: str | AlignmentMap) -> str:
    return spec if isinstance(spec, str) else spec.spec or type(spec).__name__
