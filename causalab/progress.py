"""Progress of long steps deep inside a run (training a language model, caching hidden states).

Library code never prints. A long step hands :class:`Progress` events to :func:`report`
(or to a callback of its own when its caller gave one), which passes them to whatever
:func:`listen` installed; with nothing installed a report costs one empty loop. The command line installs a listener that prints
the events, so a job whose output goes to a log file shows where it is.

>>> seen = []
>>> with listen(seen.append):
...     report(Progress("demo", done=1, total=4, elapsed=2.0))
>>> seen[0].remaining
6.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["Progress", "listen", "report"]


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units of ``task`` after ``elapsed`` seconds; ``detail`` says more (a loss)."""

    task: str
    done: int
    total: int
    elapsed: float
    detail: str = ""

    @property
    def remaining(self) -> float | None:
        """Seconds left at the pace so far; None before the first unit is done."""
        if self.done <= 0 or self.total <= 0:
            return None
        return self.elapsed / self.done * max(self.total - self.done, 0)


Listener = Callable[[Progress], None]
_listeners: list[Listener] = []


@contextmanager
def listen(callback: Listener) -> Iterator[None]:
    """Call ``callback`` with every event reported while the block runs (also in processes forked meanwhile)."""
    _listeners.append(callback)
    try:
        yield
    finally:
        _listeners.remove(callback)


def report(event: Progress) -> None:
    """Hand ``event`` to every installed listener."""
    for callback in tuple(_listeners):
        callback(event)
