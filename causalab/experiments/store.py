"""An append-only JSONL results store that survives interruption.

Each finished run appends one full line (one ``os.write`` on an ``O_APPEND``
descriptor, then ``fsync``), under an exclusive ``flock`` so that concurrent
sweeps on the same file never interleave or record a hash twice. A process killed
mid-write leaves at most a truncated last line without its newline: loading drops
it, and the next append cuts it off before writing. Any other unreadable line is a
:class:`StoreError` naming its line number.

A sweep also *claims* its file for as long as it runs (:meth:`ResultStore.claim`, a
POSIX record lock on a hidden ``.<name>.lock`` beside it, released when the process ends,
even by ``kill -9``): a second sweep started on the same file while the first runs would
run the same configs again, so it stops at once with a :class:`StoreError` instead. The
lock belongs to the claiming process alone: unlike a ``flock``, it is not inherited by the
pool workers the sweep forks, so a worker that outlives its sweep cannot hold the file.
The lock file names the claiming process while it runs and is emptied when the claim ends,
so a claim left by a sweep that was killed is taken over, and said to be.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from causalab.errors import StoreError
from causalab.files import file_lock

# claim files this process holds (real path -> pid): a POSIX lock does not conflict with its own
# process, and closing any descriptor of the file would drop it, so a second claim is refused here
_HELD: dict[str, int] = {}
_HELD_LOCK = threading.Lock()


class ResultStore:
    """Records keyed by config hash, in a JSONL file at ``path`` (created on first append)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"results file {str(self.path)!r} is a directory; give a file path such as "
                             f"{str(self.path / 'results.jsonl')!r}")
        self.dropped_partial_line = False  # the last records() read ended in a line cut short (by a kill)
        self._offset = 0  # bytes of the file already parsed into _known (appends read only what is new)
        self._known: set[str] = set()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"

    # --- reading -------------------------------------------------------------------
    def records(self) -> list[dict[str, Any]]:
        """All complete records, in the order they were written."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return self._parse(data)

    def _parse(self, data: bytes) -> list[dict[str, Any]]:
        lines = data.split(b"\n")
        tail = lines.pop()  # after the last newline: empty, or a line cut short by a kill
        self.dropped_partial_line = bool(tail.strip())
        out = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as exc:
                raise StoreError(f"{self.path}: line {number} is not a JSON record ({exc})") from None
            if not isinstance(rec, dict) or "hash" not in rec:
                raise StoreError(f"{self.path}: line {number} is not a run record (no 'hash')")
            out.append(rec)
        return out

    def partial_line(self) -> bool:
        """Whether the file ends in a record cut short (a run killed mid-write); the next append drops it."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return False
        return bool(data) and not data.endswith(b"\n") and bool(data.rsplit(b"\n", 1)[-1].strip())

    def hashes(self) -> set[str]:
        return {rec["hash"] for rec in self.records()}

    def __contains__(self, config_hash: str) -> bool:
        return config_hash in self.hashes()

    def __len__(self) -> int:
        return len(self.records())

    # --- claiming -------------------------------------------------------------------
    @property
    def claim_path(self) -> Path:
        """The lock file a running sweep holds: ``.<name>.lock`` beside the results file."""
        return self.path.with_name(f".{self.path.name}.lock")

    @contextmanager
    def claim(self) -> Iterator[int | None]:
        """Hold this results file for one sweep; raise :class:`StoreError` if another process holds it.

        Yields the pid of a sweep that claimed the file before and ended without letting go
        (killed), whose claim this one takes over, or None.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(self.claim_path)
        with _HELD_LOCK:
            if _HELD.get(key) == os.getpid():
                raise StoreError(f"this process (pid {os.getpid()}) is already running a sweep into {self.path}; "
                                 "two at once would run the same configs twice. Give this sweep its own results file")
            _HELD[key] = os.getpid()
        try:
            fd = os.open(self.claim_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    holder = _pid_in(fd)
                    raise StoreError(
                        f"another sweep (pid {holder or 'unknown'}) is writing to {self.path}; two at once would run "
                        "the same configs twice. Wait for it to finish, stop it, or give this sweep its own results file"
                    ) from None
                stale = _pid_in(fd)  # a claim left behind: its process ended without emptying the file
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
                try:
                    yield stale
                finally:
                    os.ftruncate(fd, 0)  # let go of (finished or stopped): the next sweep finds the file empty
            finally:
                os.close(fd)  # releases the claim
        finally:
            with _HELD_LOCK:
                _HELD.pop(key, None)

    # --- writing -------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND) as fd:
            yield fd

    def append(self, record: dict[str, Any], *, unique: bool = True) -> bool:
        """Write one record durably. With ``unique``, a hash already in the file is not written again.

        Returns whether the record was written.
        """
        if "hash" not in record:
            raise StoreError("a run record needs a 'hash' (ExperimentResult.to_record() gives one)")
        line = json.dumps(record, sort_keys=True, allow_nan=True).encode() + b"\n"
        with self._locked() as fd:
            size = os.fstat(fd).st_size
            if size < self._offset:  # the file was replaced or cut: parse it all again
                self._offset, self._known = 0, set()
            data = _read_from(fd, self._offset)
            if data and not data.endswith(b"\n"):  # a write cut short by a kill: drop it
                keep = data.rfind(b"\n") + 1
                os.ftruncate(fd, self._offset + keep)
                data = data[:keep]
            self._known |= {r["hash"] for r in self._parse(data)}
            self._offset += len(data)
            if unique and record["hash"] in self._known:
                return False
            _write_all(fd, line)
            os.fsync(fd)
            self._offset += len(line)
            self._known.add(record["hash"])
        return True


def _pid_in(fd: int) -> int | None:
    """The pid written in a claim file, if any."""
    text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _read_from(fd: int, offset: int) -> bytes:
    os.lseek(fd, offset, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def load_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The complete records of an existing results file (a truncated last line is dropped, see
    :meth:`ResultStore.partial_line`). A missing file raises :class:`StoreError` naming it."""
    store = ResultStore(path)
    if not store.path.exists():
        raise StoreError(f"there is no results file at {str(store.path)!r}")
    return store.records()
