"""Checks of an alignment family's knobs, shared by the families (and open to a user's own).

Each returns the value it checked (as the type the family stores) or raises an
:class:`~causalab.errors.AlignmentError` that names the family, the knob and what is valid.
"""

from __future__ import annotations

import math

from causalab.errors import AlignmentError


def positive_int(family: str, knob: str, value: object) -> int:
    """``value`` as a positive integer (``bool`` is not an integer here)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise AlignmentError(f"{family}: knob {knob!r} must be a positive integer, got {value!r}")
    return value


def int_at_least(family: str, knob: str, value: object, low: int) -> int:
    """``value`` as an integer ``>= low`` (``bool`` is not an integer here)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise AlignmentError(f"{family}: knob {knob!r} must be an integer >= {low}, got {value!r}")
    return value


def positive_float(family: str, knob: str, value: object) -> float:
    """``value`` as a positive finite float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise AlignmentError(f"{family}: knob {knob!r} must be a positive finite number, got {value!r}")
    return float(value)


def coupling_width(family: str, width: int) -> int:
    """A coupling map splits the width in two halves: it needs at least 2 coordinates."""
    if width < 2:
        raise AlignmentError(f"{family}: a coupling map needs a hidden width of at least 2 coordinates, got {width}")
    return width
