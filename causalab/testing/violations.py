"""What the property-testing kit raises: a failed invariant, or a kit used wrongly."""

from __future__ import annotations

from typing import Any

import torch

from causalab.errors import CausalabError


class InvariantViolation(AssertionError):
    """An invariant of the causal-abstraction contract does not hold on a concrete example.

    ``invariant`` names the property (``"round_trip"``, ``"same_value_interchange"``, ...),
    ``subject`` says what was under test, and ``details`` holds the offending values.
    When raised by a ``check_*`` function, the example is the one hypothesis shrank to.
    """

    def __init__(self, invariant: str, subject: str, message: str, details: dict[str, Any] | None = None) -> None:
        self.invariant = invariant
        self.subject = subject
        self.message = message
        self.details = dict(details or {})
        super().__init__(self._render())

    def _render(self) -> str:
        lines = [f"invariant {self.invariant!r} violated by {self.subject}: {self.message}"]
        for key, value in self.details.items():
            lines.append(f"  {key} = {show(value)}")
        return "\n".join(lines)

    def with_context(self, context: str) -> InvariantViolation:
        """A copy whose message ends with ``context`` (how the example was found and drawn)."""
        out = InvariantViolation(self.invariant, self.subject, self.message, self.details)
        out.args = (f"{self._render()}\n{context}",)
        return out


class KitError(CausalabError, TypeError):
    """The kit was given something it cannot test (say which argument, and what would work)."""


def show(value: Any, limit: int = 12) -> str:
    """A short, readable rendering of a value for a counterexample report."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().flatten()
        items = ", ".join(_num(x) for x in flat[:limit].tolist())
        more = f", ... ({flat.numel()} values)" if flat.numel() > limit else ""
        shape = "x".join(map(str, value.shape)) or "scalar"
        return f"[{items}{more}] ({shape}, {str(value.dtype).replace('torch.', '')})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v, limit)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return _num(value)
    return repr(value)


def _num(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    return repr(x)
