"""Where causalab keeps files, and how concurrent processes share them.

- :func:`cache_dir`: trained networks (``$CAUSALAB_CACHE``, else ``~/.cache/causalab``).
- :func:`file_lock`: an exclusive ``flock`` on a path, held for a ``with`` block, so that
  sweep workers wait for one another instead of training the same network twice or
  interleaving lines of a results file.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_dir() -> Path:
    """The folder of cached networks: ``$CAUSALAB_CACHE``, else ``~/.cache/causalab``."""
    return Path(os.environ.get("CAUSALAB_CACHE", Path.home() / ".cache" / "causalab"))


@contextmanager
def file_lock(path: str | os.PathLike, flags: int = os.O_RDWR | os.O_CREAT) -> Iterator[int]:
    """Hold an exclusive lock on ``path`` (created if missing) and yield its open descriptor."""
    fd = os.open(path, flags, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock
