"""How the command line shows progress on stderr: a bar on a terminal, plain lines everywhere else.

A bar drawn into a log file or a CI log stays invisible until the job ends, so when stderr
is not a terminal every finished run prints one line (in a long sweep: the first run, then
one line per 1% of the runs, or after 30 s without one) with the elapsed time and an estimate of the time left:

    mlp_maps: 3/12 runs (25%) in 0:41, ~2:03 left; last: rotation trained L1 iia=0.950

Long steps inside a run (LM training, caching hidden states, fitting; :mod:`causalab.progress`)
print a line too once they have taken 5 s, at most one every 10 s, on a terminal as well.
Lines from worker processes (which inherit the listener when the pool forks) name their pid.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from causalab.progress import Progress


def clock(seconds: float) -> str:
    """``75`` -> ``1:15``; ``3725`` -> ``1:02:05``."""
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _left(remaining: float | None) -> str:
    return f", ~{clock(remaining)} left" if remaining is not None else ""


class RunProgress:
    """Finished runs out of ``total``: a tqdm bar when ``stream`` is a terminal, else lines (see the module)."""

    def __init__(self, total: int, desc: str, stream: TextIO | None = None, interactive: bool | None = None,
                 every_seconds: float = 30.0):
        self.stream = stream or sys.stderr
        self.total, self.desc, self.every_seconds = total, desc, every_seconds
        self.done, self.start = 0, time.monotonic()
        self._last_time = -math.inf  # the first finished run always shows
        if interactive is None:
            interactive = getattr(self.stream, "isatty", lambda: False)()
        self.bar = None
        if interactive:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="run", file=self.stream)

    def advance(self, note: str = "") -> None:
        """One more run finished; ``note`` says which (and its score)."""
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            if note:
                self.bar.set_postfix_str(note)
            return
        now = time.monotonic()
        due = self.done % max(1, self.total // 100) == 0 or now - self._last_time >= self.every_seconds
        if not (due or self.done >= self.total):
            return
        self._last_time = now
        elapsed = now - self.start
        remaining = elapsed / self.done * (self.total - self.done) if self.done < self.total else None
        pct = 100 * self.done // max(self.total, 1)
        last = f"; last: {note}" if note else ""
        self.write(f"{self.desc}: {self.done}/{self.total} runs ({pct}%) in {clock(elapsed)}{_left(remaining)}{last}")

    def write(self, text: str) -> None:
        """A message that does not break the bar."""
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class StepLines:
    """A :mod:`causalab.progress` listener: one line per long step's event (after ``after`` s, every ``every`` s)."""

    def __init__(self, write: Callable[[str], None] | None = None, after: float = 5.0, every: float = 10.0):
        self.write = write or (lambda text: (sys.stderr.write(text + "\n"), sys.stderr.flush()))
        self.after, self.every, self.pid = after, every, os.getpid()
        self._last: dict[tuple[int, str], float] = {}

    def __call__(self, event: Progress) -> None:
        if event.elapsed < self.after:
            return
        key, now = (os.getpid(), event.task), time.monotonic()
        final = event.done >= event.total
        if not final and now - self._last.get(key, -math.inf) < self.every:
            return
        self._last[key] = now
        who = "" if key[0] == self.pid else f"[worker {key[0]}] "
        pct = 100 * event.done // max(event.total, 1)
        detail = f"; {event.detail}" if event.detail else ""
        self.write(f"  {who}{event.task}: {event.done}/{event.total} ({pct}%) in {clock(event.elapsed)}"
                   f"{_left(None if final else event.remaining)}{detail}")
