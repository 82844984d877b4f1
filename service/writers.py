"""One SQLite writer at a time, across the threads AND the processes that share a database file.

SQLite takes one write transaction at a time. A writer that meets another one does not wait on
it: SQLite's busy handler polls, sleeping 1, 2, 5, 10 ... 100 ms between tries, and a writer
that sleeps there holds up every writer queued behind it in its own process. With ``essc serve``
running one API process per core on one SQLite file (service/processes.py), the processes met
each other all the time: with SQLite's busy timeout at 0, 499 requests of 1,000 activations failed
"database is locked" (bench/activation_bench.py, 300 ms cities, 500 channels; issue 10), each of
them a sleep in the busy handler otherwise; with this lock, none.

:class:`WriterLock` is the queue instead: threads wait on a lock, processes on an exclusive
``flock`` of a file beside the database (``<database>-writer.lock``), both blocking, so the next
writer goes the moment the last one committed - and the kernel lets go of a killed process's
lock, so a crash never wedges the others. It is re-entrant in a thread (taking it again inside a
write does not deadlock; a second connection still cannot write while the first one's transaction
is open: SQLite's rule). Each process opens the file itself (after a fork, an inherited descriptor
would be the same lock for parent and child). In-memory databases and platforms without
``fcntl`` get the thread lock only (one process can use them). PostgreSQL locks rows: no lock.

:func:`writing` is ``engine.begin()`` for a write, behind the engine's writer lock.

The hot path's writes do not queue here thread by thread: ``Runner.write`` (service/sql.py) hands
them to the database's one writer thread in the process, which takes this lock once for up to 32
of them (a woken thread held the lock while it waited for a core and the GIL: 0.84 ms idle per
handoff, 34 ms of waiting per write with 500 channels; issue 10). :attr:`WriterLock.owned` tells a
thread already inside a write to run the next one itself.
"""
from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: one process per database
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriterLock", "writer_lock", "writing"]

#: writer locks by engine (the engine's own attribute would be lost to a copy: ``execution_options``)
_LOCKS: weakref.WeakKeyDictionary[Any, WriterLock | contextlib.nullcontext] = weakref.WeakKeyDictionary()
_REGISTRY_LOCK = threading.Lock()
#: every WriterLock of this process, so that a forked child opens its own lock files
_ALL: weakref.WeakSet[WriterLock] = weakref.WeakSet()


class WriterLock:
    """The writers of one SQLite database file, in this process and in the others (``flock``)."""

    def __init__(self, lock_path: str | os.PathLike[str] | None) -> None:
        self.path = None if lock_path is None or fcntl is None else Path(lock_path)
        self._thread = threading.RLock()
        self._depth = 0  # guarded by _thread
        self._owner: int | None = None  # the thread holding it (guarded by _thread)
        self._fd: int | None = None
        _ALL.add(self)

    @property
    def owned(self) -> bool:
        """The calling thread holds this lock (it is inside a write)."""
        return self._owner == threading.get_ident()

    def __enter__(self) -> WriterLock:
        self._thread.acquire()
        if self._depth == 0 and self.path is not None:
            try:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX)  # blocks without the GIL
            except BaseException:
                self._thread.release()
                raise
        if self._depth == 0:
            self._owner = threading.get_ident()
        self._depth += 1
        return self

    def __exit__(self, *_exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
        try:
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread.release()

    def _descriptor(self) -> int:
        if self._fd is None:
            assert self.path is not None
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        return self._fd

    def _forked(self) -> None:
        """In a new child: the inherited descriptor is the parent's lock; open our own on next use."""
        fd, self._fd = self._fd, None
        self._thread = threading.RLock()
        self._depth = 0
        self._owner = None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the child's copy does not release the parent's flock

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        self.close()


def _after_fork_in_child() -> None:
    for lock in list(_ALL):
        lock._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def lock_path(url: Any) -> Path | None:
    """The lock file of the SQLite database at ``url`` (a SQLAlchemy URL), None when there is no
    file (in memory) or it is not SQLite."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file::memory:") or "mode=memory" in str(url):
        return None
    return Path(database).resolve().with_name(Path(database).name + "-writer.lock")


def writer_lock(engine: Any) -> WriterLock | contextlib.nullcontext:
    """The writer lock of ``engine`` (made on first use): a :class:`WriterLock` for SQLite, a null
    context for a server that locks rows."""
    lock = _LOCKS.get(engine)
    if lock is None:
        with _REGISTRY_LOCK:
            lock = _LOCKS.get(engine)
            if lock is None:
                if engine.url.get_backend_name() == "sqlite":
                    lock = WriterLock(lock_path(engine.url))
                else:
                    lock = contextlib.nullcontext()
                _LOCKS[engine] = lock
    return lock


@contextlib.contextmanager
def writing(engine: Any) -> Iterator[Any]:
    """``engine.begin()`` after the other writers of the database (:func:`writer_lock`): a
    connection in a transaction that commits on leaving, rolls back on an exception."""
    with writer_lock(engine), engine.begin() as conn:
        yield conn
