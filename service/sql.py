"""Statements compiled once per dialect, run on the DBAPI connection.

The activation hot path (service/store.py) runs 5 write transactions per activation (11
statements on SQLite; on a database server 5, each transaction one statement run in autocommit
mode: ``Runner.transaction(single=True)``) and reads an activation on long-polls
(:meth:`Runner.read`). Through SQLAlchemy Core each statement cost ~70 us of Python (execution
context, compiled-cache lookup, result processing, events, a pool checkout per
``engine.begin()``) where sqlite3's own execute is ~27 us and its commit ~40 us: ~24% of the
service's CPU per activation (sampling profile of bench/activation_cost.py, issue 10). Here an SQLAlchemy statement is
compiled once for the engine's dialect - its SQL, its parameters in the dialect's paramstyle (in
order for SQLite's ``?``, by name for psycopg's ``%(name)s``) and the bind processors SQLAlchemy
would apply (JSON) - and run on a pooled DBAPI connection; rows are dicts built from
``cursor.description``, JSON columns decoded as SQLAlchemy's JSON type does. Errors are raised as
SQLAlchemy's exceptions (``sqlalchemy.exc.IntegrityError`` ...), so callers catch the same ones.
Measured on SQLite (CPU per call, loaded 2-core machine): a transition 100 -> 50 us, claim_check
85 -> 37 us, a transition with the identity end 135 -> 60 us, create 97 -> 57 us; per activation
(bench/activation_cost.py --n 900, median of 8) 4.8 -> 3.9 ms, 4.6 -> 3.7 ms with --answer-budget-s 0.

Such statements bypass SQLAlchemy's events: :meth:`Runner.observe` tells who wants to count them
(bench/activation_cost.py). The schema, migrations and rare paths stay on SQLAlchemy.
"""
from __future__ import annotations

import _thread
import contextlib
import os
import queue
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, TypeVar, cast

from sqlalchemy import JSON
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, StatementError

#: ``observer(kind, sql)``: kind ``"execute"`` (sql: the statement) or ``"commit"`` (sql: '')
Observer = Callable[[str, str], None]
T = TypeVar("T")

#: the most writes the writer thread runs in one hold of the database's writer lock before it lets
#: the other processes' writers have it (see Runner.write)
BATCH_MAX = 32


def _getter(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple]:
    """``values -> (values[name], ...)``, for no name or one (``itemgetter`` takes two or more)."""
    return lambda values: tuple(values[name] for name in names)


class Statement:
    """An SQLAlchemy statement compiled for one dialect."""

    __slots__ = ("sql", "_names", "_get", "_process", "_positional", "_decode", "_columns")

    def __init__(self, stmt: Any, dialect: Any, column_keys: Sequence[str] | None = None) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=column_keys)
        self.sql: str = compiled.string
        self._positional = bool(compiled.positional)
        #: the parameters' names in the dialect's order (SQLite's ``?``: a name may come twice)
        self._names: tuple[str, ...] = tuple(compiled.positiontup if self._positional else compiled.binds)
        names = self._names
        self._get = itemgetter(*names) if len(names) > 1 else _getter(names)
        #: (position, bind processor) of the parameters SQLAlchemy would process (JSON: encoded)
        self._process = tuple((i, process) for i, name in enumerate(names) if (
            process := compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None)
        #: result columns whose values SQLAlchemy would process (JSON: decoded), with the processor
        self._decode: tuple[tuple[str, Any], ...] = ()
        self._columns: tuple[str, ...] | None = None
        for column in getattr(stmt, "selected_columns", ()):
            if isinstance(column.type, JSON):
                process = column.type.dialect_impl(dialect).result_processor(dialect, None)
                if process is not None:  # psycopg decodes json columns itself
                    self._decode += ((column.name, process),)

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """``values`` (by name) as the DBAPI takes them: in order, or by name."""
        args: Sequence[Any] = self._get(values)
        if self._process:
            args = list(args)
            for i, process in self._process:
                args[i] = process(args[i])
        return args if self._positional else dict(zip(self._names, args, strict=True))

    def rows(self, cursor: Any) -> list[dict]:
        # the names of the result's columns, read once: a statement's columns do not change, and
        # psycopg builds cursor.description anew each time (a Column object per column, its type
        # looked up): ~13 us less per transition on PostgreSQL (alternating runs, 1,200 each)
        names = self._columns
        if names is None:
            names = self._columns = tuple(d[0] for d in cursor.description)
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        for row in rows:
            for name, process in self._decode:
                row[name] = process(row[name])
        return rows


class Transaction:
    """Statements of one write transaction, on one DBAPI cursor (``single``: one statement, that
    is a transaction on its own: see :meth:`Runner.transaction`)."""

    __slots__ = ("_runner", "_cursor", "_single", "_ran")

    def __init__(self, runner: Runner, cursor: Any, single: bool = False) -> None:
        self._runner, self._cursor, self._single, self._ran = runner, cursor, single, 0

    def _once(self, stmt: Statement) -> None:
        if self._single and self._ran:
            raise RuntimeError(f"a second statement in a one-statement transaction: {stmt.sql[:60]}")
        self._ran += 1

    def execute(self, stmt: Statement, values: Mapping[str, Any]) -> int:
        """Run ``stmt``; its row count."""
        self._once(stmt)
        self._runner._call(self._cursor.execute, stmt, stmt.parameters(values))
        return self._cursor.rowcount

    def executemany(self, stmt: Statement, values: Iterable[Mapping[str, Any]]) -> None:
        self._once(stmt)
        self._runner._call(self._cursor.executemany, stmt, [stmt.parameters(v) for v in values])

    def first(self, stmt: Statement, values: Mapping[str, Any]) -> dict | None:
        """The first row ``stmt`` returns (a dict), None for none."""
        self._once(stmt)
        self._runner._call(self._cursor.execute, stmt, stmt.parameters(values))
        rows = stmt.rows(self._cursor)
        return rows[0] if rows else None


class _Unit:
    """One write for the writer thread: the work, and its outcome for the waiting caller."""

    __slots__ = ("runner", "work", "single", "done", "result", "error", "answered")

    def __init__(self, runner: Runner, work: Callable[[Transaction], Any], single: bool) -> None:
        self.runner, self.work, self.single = runner, work, single
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        self.answered = False


class _Writer:
    """The writer thread of one database in this process (one per writer lock, whichever
    :class:`Runner` writes): runs the queued writes, up to :data:`BATCH_MAX` per hold of the lock."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self._forked()

    def _forked(self) -> None:
        """(Also in a new child: the parent's thread is not there; a new one starts on first use.)"""
        self.units: queue.SimpleQueue[_Unit | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def submit(self, unit: _Unit) -> None:
        with self._starting:  # a stop cannot end the thread between this check and the put
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="essc-sqlite-writer", daemon=True)
                self.thread.start()
            self.units.put(unit)

    def _run(self) -> None:
        units = self.units
        stop = False  # a stop was met: end once the writes queued behind it are done
        while True:
            unit = units.get()
            stop = stop or unit is None
            try:
                if unit is not None:
                    with self.lock:  # once for the batch (each transaction takes it again: re-entrant)
                        self._write_one(unit)
                        for _ in range(BATCH_MAX - 1):
                            try:
                                unit = units.get_nowait()
                            except queue.Empty:
                                break
                            if unit is None:
                                stop = True
                                break
                            self._write_one(unit)
            except BaseException as exc:  # the lock itself failed (its file gone...): this write says so
                if unit is not None and not unit.answered:
                    unit.error = exc
                    unit.answered = True
                    unit.done.release()
            if stop and self._stopped():
                return

    def _stopped(self) -> bool:
        """After a stop: end the thread, unless writes are queued (they run first)."""
        with self._starting:
            if self.units.empty():
                self.thread = None
                return True
        return False

    @staticmethod
    def _write_one(unit: _Unit) -> None:
        try:
            with unit.runner.transaction(single=unit.single) as tx:
                unit.result = unit.work(tx)
        except BaseException as exc:  # the caller's to handle, as if it had run the transaction itself
            unit.error = exc
        finally:
            unit.answered = True
            unit.done.release()

    def close(self, timeout: float) -> None:
        with self._starting:
            thread = self.thread
            if thread is None:
                return
            self.units.put(None)
        if thread is not threading.current_thread():
            thread.join(timeout)


#: the writer of each database (by its writer lock) in this process
_WRITERS: weakref.WeakKeyDictionary[Any, _Writer] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


def _writer_of(lock: Any) -> _Writer:
    writer = _WRITERS.get(lock)
    if writer is None:
        with _WRITERS_LOCK:
            writer = _WRITERS.get(lock)
            if writer is None:
                writer = _WRITERS[lock] = _Writer(lock)
    return writer


def _after_fork_in_child() -> None:
    global _WRITERS_LOCK
    _WRITERS_LOCK = threading.Lock()
    for writer in list(_WRITERS.values()):
        writer._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Runner:
    """Write transactions on the engine's pooled DBAPI connections, one at a time per ``lock``
    (SQLite's one writer; a null context for PostgreSQL), and the statements compiled for it."""

    def __init__(self, engine: Engine, lock: Any) -> None:
        self.engine, self.dialect, self._lock = engine, engine.dialect, lock
        self._error = engine.dialect.loaded_dbapi.Error
        self._compiled: dict[Any, Statement] = {}
        self._compiling = threading.Lock()
        self._observers: list[Observer] = []
        #: a database server (not SQLite): a round trip per statement, BEGIN and COMMIT
        self.server = engine.dialect.name != "sqlite"
        #: writes go through one writer thread (:meth:`write`): an SQLite file's, whose writers take
        #: turns; not an in-memory database (its connections are per thread) nor a server (row locks)
        self.batching = not self.server and getattr(lock, "path", None) is not None
        self._writer = _writer_of(lock) if self.batching else None

    def observe(self, observer: Observer) -> None:
        """Call ``observer(kind, sql)`` on every statement and commit run here."""
        self._observers.append(observer)

    def compiled(self, key: Any, make: Callable[[], Any]) -> Statement:
        """The SQLAlchemy statement ``make()`` compiled for this dialect, once per ``key``."""
        stmt = self._compiled.get(key)
        if stmt is None:
            with self._compiling:
                stmt = self._compiled.get(key)
                if stmt is None:
                    stmt = self._compiled[key] = Statement(make(), self.dialect)
        return stmt

    def write(self, work: Callable[[Transaction], T], *, single: bool = False) -> T:
        """``work(tx)`` in a write transaction (as :meth:`transaction`): what it returns, or what
        it raised (the transaction rolled back).

        On an SQLite file the writes of this process's threads (through whichever Runner) are run
        by the database's one writer thread in this process, back to back, up to
        :data:`BATCH_MAX` of them in one hold of the writer lock, each still a transaction of its
        own (committed or rolled back alone, its caller answered at once; one transaction for the
        batch, a savepoint each, was no better in alternating runs).
        SQLite takes one writer at a time; handing the lock from thread to thread cost more than
        the writes: the next thread, woken, waited for a core and the GIL while holding it
        (bench/activation_bench.py, 300 ms cities, 500 channels, 2 API processes: 3,600
        transactions per process, 62% of them waited for the lock, 34 ms on average, the lock busy
        0.49 ms per write and idle 0.84 ms between a release and the next waiter's start; issue
        10). ``work`` runs in the writer thread: it must only run statements on ``tx`` (no
        waiting, no other write). A thread already inside a write (this lock held) runs ``work``
        itself, as do in-memory databases and servers."""
        writer = self._writer
        if writer is None or self._lock.owned:
            with self.transaction(single=single) as tx:
                return work(tx)
        unit = _Unit(self, work, single)
        writer.submit(unit)
        unit.done.acquire()  # released by the writer thread once the unit committed or failed
        if unit.error is not None:
            raise unit.error
        return cast(T, unit.result)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the database's writer thread in this process once the writes queued before are
        done (at most ``timeout`` seconds); a later write starts it again."""
        if self._writer is not None:
            self._writer.close(timeout)

    @contextlib.contextmanager
    def transaction(self, *, single: bool = False) -> Iterator[Transaction]:
        """A transaction that commits on leaving and rolls back on an exception, after the other
        writers of this process (``lock``).

        ``single``: it runs ONE statement (a second one is refused). On a database server that
        statement runs in autocommit mode, a transaction of its own: one round trip, where
        BEGIN, the statement and COMMIT are three (psycopg sends BEGIN apart; measured on
        PostgreSQL, issue 10). Several changes that must be atomic go in one statement there
        (``WITH ... AS (UPDATE ...) INSERT ...``: see service/store.py)."""
        alone = single and self.server
        with self._lock, self._pooled(autocommit=alone) as conn:
            cursor = conn.cursor()
            try:
                yield Transaction(self, cursor, single)
            finally:
                cursor.close()
            if not alone:
                try:
                    conn.commit()
                except self._error as err:
                    raise self._wrap(err, "COMMIT", None) from err
            for observer in self._observers:
                observer("commit", "")

    def read(self, stmt: Statement, values: Mapping[str, Any]) -> list[dict]:
        """The rows of ``stmt``, a read: no writer's lock, nothing to commit (on a database server
        in autocommit mode: one round trip)."""
        with self._pooled(autocommit=self.server) as conn:
            cursor = conn.cursor()
            try:
                self._call(cursor.execute, stmt, stmt.parameters(values))
                try:
                    return stmt.rows(cursor)
                except self._error as err:
                    raise self._wrap(err, stmt.sql, None) from err
            finally:
                cursor.close()

    @contextlib.contextmanager
    def _pooled(self, *, autocommit: bool) -> Iterator[Any]:
        """A pooled DBAPI connection (in autocommit mode if asked), given back on leaving. On an
        exception what it began is rolled back; a connection found lost goes, not back to the
        pool, and the pooled ones with it (the server went away)."""
        conn = self.engine.raw_connection()
        try:
            if autocommit:
                try:
                    cast(Any, conn.dbapi_connection).autocommit = True
                except self._error as err:  # a connection found broken
                    raise self._wrap(err, "(autocommit)", None) from err
            yield conn
        except BaseException as exc:
            if self._lost(exc, conn):
                conn.invalidate(exc)
                self.engine.dispose()
            else:
                with contextlib.suppress(Exception):
                    conn.rollback()
            raise
        finally:
            if autocommit:
                with contextlib.suppress(Exception):  # a lost connection cannot say
                    cast(Any, conn.dbapi_connection).autocommit = False
            conn.close()  # back to the pool

    def _lost(self, exc: BaseException, conn: Any) -> bool:
        """``exc`` tells that the connection to the database is lost."""
        return isinstance(exc, DBAPIError) and self.dialect.is_disconnect(cast(Any, exc.orig), conn.dbapi_connection,
                                                                          None)

    def _call(self, method: Callable[[str, Any], Any], stmt: Statement, params: Any) -> None:
        for observer in self._observers:
            observer("execute", stmt.sql)
        try:
            method(stmt.sql, params)
        except self._error as err:
            raise self._wrap(err, stmt.sql, params) from err

    def _wrap(self, err: Exception, sql: str, params: Any) -> StatementError:
        """``err`` as SQLAlchemy raises it (``IntegrityError`` ...), its parameters hidden."""
        return DBAPIError.instance(sql, params, err, self._error, hide_parameters=True, dialect=self.dialect)
