"""Persistence of activations and their audit trail (SQLAlchemy Core statements on the
ORM tables; every state change and its audit event commit together: in one transaction on
SQLite, in one statement on a database server).

The statements an activation runs (create's inserts, the claims, transitions, the identity
hold and its end, release) and the reads of an activation and its audit trail (GET, long-polls)
are compiled once for the engine's dialect and run on the DBAPI connection (service/sql.py:
SQLAlchemy's execution cost more than SQLite's); the schema and the rare paths (other reads,
restarts, release_owned_by) go through SQLAlchemy.

Workers *claim* an activation with one conditional UPDATE (a lease with an owner), so two
workers - threads or processes, SQLite or PostgreSQL - never run the same activation at
once, and a worker whose lease expired (killed) cannot write over the next owner's work.
"""
from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from . import states
from .models import Activation, AuditEvent, Base, CitizenIdentity
from .pool import Changes
from .sql import Runner, Statement, Transaction
from .writers import writer_lock, writing

A = cast(Table, Activation.__table__)
E = cast(Table, AuditEvent.__table__)
I = cast(Table, CitizenIdentity.__table__)  # noqa: E741

# Hot-path statements are built once: building SQLAlchemy statements per call cost more
# than the SQLite work itself (~0.6 ms each, profiled). The UPDATEs that change an activation
# return its new row (RETURNING: SQLite >= 3.35, PostgreSQL), so nobody reads back what was
# just written: an activation costs 11 statements (2 reads of none), was 22 (9 reads); 5 on a
# database server (see _transition_in_one).
_GET = select(A).where(A.c.id == bindparam("act_id"))
_AUDIT_OF = select(E).where(E.c.activation_id == bindparam("act_id")).order_by(E.c.id)
_INSERT_A = insert(A)
#: the columns create inserts (credential & error stay SQL NULL: JSON None would be 'null')
_CREATED = ("id", "citizen_key", "city", "channel", "status", "id_hint", "sealed", "runs", "next_attempt_at",
            "created_at", "updated_at", "lease_until", "lease_owner")
_RUNNABLE_SQL = ", ".join(f"'{s}'" for s in states.RUNNABLE)
_ROW = ", ".join(c.name for c in A.c)
#: the callback's last announcement ('' when none yet; NULL: the activation has no callback)
_CALLBACK_SQL = ("(SELECT coalesce(delivered, '') FROM callbacks WHERE callbacks.activation_id = activations.id) "
                 "AS callback_marker")
_CALLBACK = Column("callback_marker", String)


def _returning(sql: str, *, callback: bool = False):
    """``sql`` (an UPDATE) returning the activation's row, typed as the table's columns (and,
    with ``callback``, the marker of its callback: see :data:`_CALLBACK_SQL`)."""
    if callback:
        return text(f"{sql} RETURNING {_ROW}, {_CALLBACK_SQL}").columns(*A.c, _CALLBACK)
    return text(f"{sql} RETURNING {_ROW}").columns(*A.c)


_CLAIM = _returning(
    "UPDATE activations SET lease_until = :until, lease_owner = :owner, runs = runs + 1, updated_at = :now "
    f"WHERE id = :act_id AND status IN ({_RUNNABLE_SQL}) "
    "AND (next_attempt_at IS NULL OR next_attempt_at <= :now) AND (lease_until IS NULL OR lease_until < :now)")
_CLAIM_VERIFY = _returning(
    "UPDATE activations SET lease_until = :until, lease_owner = :owner, updated_at = :now "
    f"WHERE id = :act_id AND status = '{states.AWAITING_VERIFICATION}' AND (lease_until IS NULL OR lease_until < :now)")
_CLAIM_VERIFY_OF = _returning(
    "UPDATE activations SET lease_until = :until, lease_owner = :owner, updated_at = :now "
    f"WHERE id = :act_id AND channel = :channel AND status = '{states.AWAITING_VERIFICATION}' "
    "AND (lease_until IS NULL OR lease_until < :now)")
#: one statement for a first check (the row is made) and for the next ones (the row is held)
_IDENTITY_BEGIN = text(
    "INSERT INTO citizen_identity (citizen_key, city, failures, busy_until) VALUES (:key, :city, 0, :until) "
    "ON CONFLICT (citizen_key, city) DO UPDATE SET busy_until = excluded.busy_until "
    "WHERE (citizen_identity.busy_until IS NULL OR citizen_identity.busy_until < :now) "
    "AND (citizen_identity.locked_until IS NULL OR citizen_identity.locked_until <= :now)")
_IDENTITY_ROW = ", ".join(c.name for c in I.c)
_IDENTITY_KEY = "WHERE citizen_key = :key AND city = :city"
_IDENTITY_END_SQL = {
    True: f"UPDATE citizen_identity SET failures = 0, busy_until = NULL, locked_until = NULL {_IDENTITY_KEY}",
    None: f"UPDATE citizen_identity SET busy_until = NULL {_IDENTITY_KEY}",
    # the right-hand sides see the row as it was: at the limit the count restarts and the lockout begins
    False: ("UPDATE citizen_identity SET busy_until = NULL, "
            "locked_until = CASE WHEN failures + 1 >= :limit THEN :locked ELSE locked_until END, "
            f"failures = CASE WHEN failures + 1 >= :limit THEN 0 ELSE failures + 1 END {_IDENTITY_KEY}"),
}
_IDENTITY_END = {passed: text(f"{sql} RETURNING {_IDENTITY_ROW}") for passed, sql in _IDENTITY_END_SQL.items()}
_AUDIT = text("INSERT INTO audit_events (activation_id, at, event, status, detail, actor) "
              "VALUES (:act_id, :at, :event, :status, :detail, :actor)")
_RELEASE = text("UPDATE activations SET lease_until = NULL, lease_owner = NULL "
                "WHERE id = :act_id AND lease_owner = :owner")
_JSON_FIELDS = ("credential", "error")


def _transition_update(fields: tuple[str, ...], release: bool, once: bool) -> str:
    sets = ["status = :status", "updated_at = :now"] + [f"{f} = :{f}" for f in fields]
    if release:
        sets += ["lease_until = NULL", "lease_owner = NULL"]
    where = "id = :act_id AND lease_owner = :owner" + (" AND credential IS NULL" if once else "")
    return f"UPDATE activations SET {', '.join(sets)} WHERE {where}"


def _json_params(stmt, fields: tuple[str, ...]):
    json_params = [bindparam(f, type_=JSON) for f in fields if f in _JSON_FIELDS]  # encoded as JSON
    return stmt.bindparams(*json_params) if json_params else stmt


def _transition_statement(fields: tuple[str, ...], release: bool, once: bool):
    return _json_params(_returning(_transition_update(fields, release, once), callback=True), fields)


# On a database server every statement is a round trip, and so are psycopg's BEGIN and COMMIT:
# a transition (UPDATE + audit INSERT in a transaction) cost 4 round trips, create 4, the
# verified transition with the end of the identity check 5. There the changes that must be
# atomic go in ONE statement, run in autocommit mode (Runner.transaction(single=True)): data-
# modifying WITH clauses, which SQLite does not have (it keeps the statements above, in one
# transaction: no round trips there). Casts: a parameter in a SELECT list has no type otherwise.
# Measured on PostgreSQL (one process, one thread, alternating runs; this machine's speed drifts
# by up to 40%): a create 430 -> 170 us of CPU, a transition 360 -> 190 us, claim_check 476 ->
# 215-252 us (wall 1.1 -> 0.63 ms); a whole activation (bench/activation_cost.py, 450, 4 pairs)
# 7.5-10.1 -> 6.2-7.3 ms of CPU, 13.1-18.0 -> 11.1-12.9 ms of wall time; 21 round trips -> 5.
_AUDIT_OF_A = ("e AS (INSERT INTO audit_events (activation_id, at, event, status, detail, actor) "
               "SELECT id, CAST(:now AS FLOAT), CAST(:event AS VARCHAR), CAST(:status AS VARCHAR), "
               "CAST(:detail AS VARCHAR), CAST(:owner AS VARCHAR) FROM a)")


def _transition_in_one(fields: tuple[str, ...], release: bool, once: bool, check_passed: bool):
    """The transition, its audit event and (``check_passed``) the end of the citizen's passed
    identity check, in one statement (a database server). Returns what the transition returns."""
    passed = f"i AS ({_IDENTITY_END_SQL[True]}), " if check_passed else ""
    sql = (f"WITH {passed}a AS ({_transition_update(fields, release, once)} RETURNING {_ROW}, {_CALLBACK_SQL}), "
           f"{_AUDIT_OF_A} SELECT * FROM a")
    return _json_params(text(sql).columns(*A.c, _CALLBACK), fields)


#: claim_check in one statement (a database server): the activation is locked first (FOR UPDATE:
#: a concurrent claim waits, then finds it taken), the citizen + city held only for it, and the
#: activation claimed only if the hold was taken; ``held`` tells which. Its row as it was when the
#: hold could not be taken (nothing changed), no row when the activation cannot be claimed.
_CLAIM_CHECK_IN_ONE = text(
    f"WITH c AS (SELECT {_ROW} FROM activations WHERE id = :act_id AND channel = :channel "
    f"AND status = '{states.AWAITING_VERIFICATION}' AND (lease_until IS NULL OR lease_until < :now) FOR UPDATE), "
    "h AS (INSERT INTO citizen_identity (citizen_key, city, failures, busy_until) "
    "SELECT citizen_key, city, 0, CAST(:until AS FLOAT) FROM c "
    "ON CONFLICT (citizen_key, city) DO UPDATE SET busy_until = excluded.busy_until "
    "WHERE (citizen_identity.busy_until IS NULL OR citizen_identity.busy_until < :now) "
    "AND (citizen_identity.locked_until IS NULL OR citizen_identity.locked_until <= :now) RETURNING 1), "
    "a AS (UPDATE activations SET lease_until = :until, lease_owner = :owner, updated_at = :now "
    f"WHERE id IN (SELECT id FROM c) AND EXISTS (SELECT 1 FROM h) RETURNING {_ROW}) "
    "SELECT *, TRUE AS held FROM a UNION ALL SELECT *, FALSE FROM c WHERE NOT EXISTS (SELECT 1 FROM h)"
).columns(*A.c, Column("held", Boolean))

#: create's INSERT and its two audit events (in this order) in one statement (a database server)
_CREATE_IN_ONE = text(
    f"WITH a AS (INSERT INTO activations ({', '.join(_CREATED)}) VALUES ({', '.join(':' + c for c in _CREATED)}) "
    "RETURNING id) INSERT INTO audit_events (activation_id, at, event, status, detail, actor) "
    "SELECT a.id, CAST(:created_at AS FLOAT), e.event, CAST(:status AS VARCHAR), e.detail, CAST(:channel AS VARCHAR) "
    "FROM a, (VALUES (1, 'consent_given', CAST(NULL AS VARCHAR)), (2, 'city_chosen', CAST(:chosen AS VARCHAR))) "
    "AS e (n, event, detail) ORDER BY e.n")


class _Hot:
    """The hot-path statements compiled for one dialect (transitions: :meth:`Store.transition`)."""

    def __init__(self, dialect) -> None:
        self.create = Statement(_INSERT_A, dialect, column_keys=_CREATED)
        self.audit = Statement(_AUDIT, dialect)
        self.claim = Statement(_CLAIM, dialect)
        self.claim_verify = Statement(_CLAIM_VERIFY, dialect)
        self.claim_verify_of = Statement(_CLAIM_VERIFY_OF, dialect)
        self.identity_begin = Statement(_IDENTITY_BEGIN, dialect)
        self.identity_end = {passed: Statement(stmt, dialect) for passed, stmt in _IDENTITY_END.items()}
        self.release = Statement(_RELEASE, dialect)
        self.get = Statement(_GET, dialect)
        self.audit_of = Statement(_AUDIT_OF, dialect)
        #: a database server: create in one statement (see _CREATE_IN_ONE)
        self.create_in_one = Statement(_CREATE_IN_ONE, dialect) if dialect.name != "sqlite" else None
        self.claim_check_in_one = Statement(_CLAIM_CHECK_IN_ONE, dialect) if dialect.name != "sqlite" else None


class _Undo(Exception):
    """Roll the transaction back (:meth:`Store.claim_check`), carrying the row that was read."""

    def __init__(self, row) -> None:
        super().__init__("undo")
        self.row = row


def _activation(row: dict | None) -> dict | None:
    """The activation of a RETURNING row (its callback marker taken out), None for no row."""
    if row is not None:
        row.pop("callback_marker", None)
    return row


def make_engine(url: str, pool_size: int = 10):
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # WAL: readers don't block the writer
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    # no ping before each checkout: it cost a round trip and ~0.5-0.8 ms of CPU per activation
    # (5 transactions; bench/activation_cost.py on PostgreSQL). A connection found lost is
    # discarded with every other pooled one (SQLAlchemy does it for its own statements, service/sql.py
    # for the hot path): after a restart of the server one transaction fails, typed, and the next
    # ones get new connections.
    # No overflow: SQLAlchemy closes an overflow connection when it is given back to a full pool, so
    # with 10 + 20 the API processes under load opened and closed ~20 connections a second (33-45 of
    # ~55 were under 2 s old: a server process forked and a login each time). pool_size connections
    # are opened as needed and kept; a transaction beyond them waits for one (pool_timeout, 30 s).
    # Measured (bench/activation_bench.py, PostgreSQL + Redis, 2 workers, 300 ms cities, 500
    # channels): 78-88 -> 94-95 activations/s, none of the connections new. 10 rather than 30 per
    # process (ServiceConfig.database_pool_size): the database server's CPU per activation fell
    # 15-20% and the rate rose ~5% (4 alternating pairs, 2 API processes + 2 workers) - fewer
    # server processes sharing the cores; part of it may be a short run's: psycopg prepares a statement
    # on a connection at its 5th execution, so the fewer the connections the fewer unprepared ones.
    return create_engine(url, pool_size=pool_size, max_overflow=0)


def _check_schema(engine) -> None:
    """Refuse, clearly, a database made by an older version (one activation per citizen + city,
    verification secrets stored): its rows cannot be used by the two-step flow."""
    from sqlalchemy import inspect

    inspector = inspect(engine)
    if inspector.has_table("activations"):
        columns = {c["name"] for c in inspector.get_columns("activations")}
        if "verified" not in columns:
            url = engine.url.render_as_string(hide_password=True)
            raise RuntimeError(f"the database {url} was made by an older essc (before the two-step activation "
                               "flow); drop its tables (or use a new ESSC_DATA_DIR) and start again")


class Store:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        """``pool_size``: connections this process keeps to a database server (not SQLite)."""
        if pool_size < 1:
            raise ValueError(f"the database pool size (ESSC_DATABASE_POOL_SIZE) must be at least 1, got {pool_size}")
        self.url = url
        self.engine = make_engine(url, pool_size)
        # SQLite takes one writer at a time: threads and processes queue for it here and go on the
        # moment it is free, instead of meeting a busy database and sleeping in SQLite's busy
        # handler (1, 2, 5 ... 100 ms); PostgreSQL locks rows and needs no such queue (writers.py)
        self._write_lock = writer_lock(self.engine)
        #: transitions made by this process, for long-polls (service/pool.py)
        self.changes = Changes()
        _check_schema(self.engine)
        Base.metadata.create_all(self.engine)
        #: write transactions of the hot path on the DBAPI connection (``observe`` counts them)
        self.sql = Runner(self.engine, self._write_lock)
        #: the reads (one statement each; long-polls re-read): on a database server in autocommit
        #: mode, one round trip each where psycopg's BEGIN and the pool's ROLLBACK made three
        self.reading = self.engine.execution_options(isolation_level="AUTOCOMMIT") if self.sql.server \
            else self.engine
        self._hot = _Hot(self.engine.dialect)

    def close(self) -> None:
        """Stop the writer thread (the writes queued are done first) and close the connections."""
        self.sql.close()
        self.engine.dispose()

    @contextlib.contextmanager
    def writing(self) -> Iterator[Connection]:
        """A connection in a transaction that commits on leaving (``engine.begin()``), after the
        other writers of the database (SQLite; :func:`writers.writing`). The hot path uses
        :attr:`sql` instead."""
        with writing(self.engine) as conn:
            yield conn

    # -- creating ----------------------------------------------------------------------
    def create(self, *, citizen_key: str, city: str, channel: str, id_hint: str, sealed: str,
               now: float | None = None, owner: str | None = None, lease_s: float = 0.0) -> tuple[dict, str]:
        """The channel's activation for this citizen + city: new, restarted or as it is.

        Returns ``(activation, outcome)``, outcome ``"created"``, ``"restarted"`` or ``"found"``.
        A created or restarted activation is claimed by ``owner`` (when given) and waits for its
        card read. An activation restarts - the card is read again with the new data - unless it
        is activated or its identity check already passed (``verified``); restarting takes the
        lease from whoever held it, so an older run with the old data cannot write any more."""
        now = time.time() if now is None else now
        act_id = uuid.uuid4().hex
        lease = dict(lease_until=now + lease_s if owner else None, lease_owner=owner)
        row = dict(id=act_id, citizen_key=citizen_key, city=city, channel=channel, status=states.RECEIVED,
                   id_hint=id_hint, sealed=sealed, runs=1 if owner else 0, next_attempt_at=now,
                   created_at=now, updated_at=now, **lease)
        chosen = f"city {city}"
        try:
            create_in_one = self._hot.create_in_one
            if create_in_one is not None:
                self.sql.write(lambda tx: tx.execute(create_in_one, {**row, "chosen": chosen}), single=True)
            else:
                def create(tx: Transaction) -> None:
                    tx.execute(self._hot.create, row)  # credential & error stay SQL NULL (JSON None would be 'null')
                    tx.executemany(self._hot.audit, [
                        dict(act_id=act_id, at=now, event="consent_given", status=states.RECEIVED, detail=None,
                             actor=channel),
                        dict(act_id=act_id, at=now, event="city_chosen", status=states.RECEIVED,
                             detail=chosen, actor=channel)])
                self.sql.write(create)
            row.update(card_status=None, credential=None, error=None, verified=None)
            return row, "created"
        except IntegrityError:
            pass
        existing = self.find(citizen_key, city, channel)
        if existing is None:  # pragma: no cover - deleted in between
            raise RuntimeError("activation vanished during creation")
        if existing["status"] not in states.RESTARTABLE or existing["verified"] is not None:
            return existing, "found"
        final = existing["status"] in states.FINAL
        with self.writing() as conn:
            res = conn.execute(
                update(A).where(A.c.id == existing["id"], A.c.status == existing["status"],
                                A.c.updated_at == existing["updated_at"], A.c.verified.is_(None))
                .values(status=states.RECEIVED, sealed=sealed, id_hint=id_hint, next_attempt_at=now, updated_at=now,
                        error=None, card_status=None, runs=A.c.runs + (1 if owner else 0),
                        **lease, **({"created_at": now} if final else {})))
            if not res.rowcount:  # changed in between: show it as it is now
                return self.present(existing["id"]), "found"
            conn.execute(_AUDIT, {"act_id": existing["id"], "at": now, "event": "resubmitted",
                                  "status": states.RECEIVED, "detail": f"was {existing['status']}", "actor": channel})
        self.changes.changed(existing["id"], states.RECEIVED)
        return self.present(existing["id"]), "restarted"

    # -- reading -----------------------------------------------------------------------
    def get(self, act_id: str) -> dict | None:
        rows = self.sql.read(self._hot.get, {"act_id": act_id})  # long-polls re-read: the hot path's way
        return rows[0] if rows else None

    def present(self, act_id: str) -> dict:
        """:meth:`get` of an activation known to exist (activations are never deleted)."""
        row = self.get(act_id)
        if row is None:  # pragma: no cover
            raise RuntimeError(f"activation {act_id} vanished")
        return row

    def find(self, citizen_key: str, city: str, channel: str | None = None) -> dict | None:
        """The citizen's activation in ``city`` through ``channel`` (the oldest of any channel
        when ``channel`` is None)."""
        q = select(A).where(A.c.citizen_key == citizen_key, A.c.city == city)
        if channel is not None:
            q = q.where(A.c.channel == channel)
        with self.reading.connect() as conn:
            row = conn.execute(q.order_by(A.c.created_at)).mappings().first()
        return dict(row) if row else None

    def audit(self, act_id: str) -> list[dict]:
        return self.sql.read(self._hot.audit_of, {"act_id": act_id})

    def counts(self) -> dict[str, int]:
        with self.reading.connect() as conn:
            rows = conn.execute(select(A.c.status, func.count()).group_by(A.c.status)).all()
        return {status: n for status, n in rows}

    def due(self, now: float | None = None, grace_s: float = 0.0, limit: int = 500) -> list[str]:
        """Runnable activations whose time has come and that no live worker holds."""
        now = time.time() if now is None else now
        q = (select(A.c.id).where(A.c.status.in_(states.RUNNABLE), A.c.next_attempt_at <= now - grace_s,
                                  or_(A.c.lease_until.is_(None), A.c.lease_until < now))
             .order_by(A.c.next_attempt_at).limit(limit))
        with self.reading.connect() as conn:
            return [r[0] for r in conn.execute(q)]

    def next_due_at(self) -> float | None:
        with self.reading.connect() as conn:
            return conn.execute(select(func.min(A.c.next_attempt_at)).where(A.c.status.in_(states.RUNNABLE))).scalar()

    # -- working -----------------------------------------------------------------------
    def claim(self, act_id: str, owner: str, lease_s: float, now: float | None = None) -> dict | None:
        """Take the activation for ``lease_s`` seconds if it is runnable, due and free: its row, else None."""
        now = time.time() if now is None else now
        row = self.sql.write(lambda tx: tx.first(self._hot.claim, {"act_id": act_id, "until": now + lease_s,
                                                                    "owner": owner, "now": now}), single=True)
        return _activation(row)

    def claim_verification(self, act_id: str, owner: str, lease_s: float, now: float | None = None, *,
                           channel: str | None = None) -> dict | None:
        """Take an activation that waits for its identity check, if no one holds it (and, with
        ``channel``, only if it is that channel's): its row, else None."""
        now = time.time() if now is None else now
        params = {"act_id": act_id, "until": now + lease_s, "owner": owner, "now": now}
        if channel is None:
            row = self.sql.write(lambda tx: tx.first(self._hot.claim_verify, params), single=True)
        else:
            row = self.sql.write(lambda tx: tx.first(self._hot.claim_verify_of, {**params, "channel": channel}),
                                 single=True)
        return _activation(row)

    def claim_check(self, act_id: str, owner: str, lease_s: float, *, channel: str,
                    now: float | None = None) -> tuple[dict | None, bool]:
        """For the channel's identity check, in one transaction: claim its activation waiting for a
        check (as :meth:`claim_verification`) and hold its citizen + city (as :meth:`identity_begin`).
        ``(activation, True)``: both taken. ``(None, False)``: the activation cannot be claimed.
        ``(activation, False)``: it could, but the citizen + city is held or locked; nothing changed."""
        now = time.time() if now is None else now
        in_one = self._hot.claim_check_in_one
        if in_one is not None:
            row = self.sql.write(lambda tx: tx.first(in_one, {
                "act_id": act_id, "until": now + lease_s, "owner": owner, "now": now, "channel": channel}), single=True)
            if row is None:
                return None, False
            held = row.pop("held")
            return row, held

        def claim_and_hold(tx: Transaction) -> dict | None:
            row = tx.first(self._hot.claim_verify_of, {"act_id": act_id, "until": now + lease_s, "owner": owner,
                                                       "now": now, "channel": channel})
            if row is not None and tx.execute(self._hot.identity_begin, {
                    "key": row["citizen_key"], "city": row["city"], "now": now, "until": now + lease_s}) != 1:
                raise _Undo(row)
            return row

        try:
            row = self.sql.write(claim_and_hold)
        except _Undo as undo:  # rolled back: the activation is not claimed either
            return _activation(undo.row), False
        if row is None:
            return None, False
        return _activation(row), True

    def transition(self, act_id: str, owner: str, status: str, event_name: str, *, detail: str | None = None,
                   release: bool = False, check_passed: tuple[str, str] | None = None,
                   **fields: Any) -> dict | None:
        """Move a claimed activation to ``status`` and record the event, atomically. Returns the
        activation as it is now; None (refused) when ``owner`` no longer holds the lease.
        ``check_passed`` (citizen key, city): the held identity check passed (:meth:`identity_end`),
        recorded in the same transaction (also when the transition is refused)."""
        now = time.time()
        # a credential is written once, never replaced
        key = (tuple(sorted(fields)), release, "credential" in fields)
        values = {"act_id": act_id, "owner": owner, "status": status, "now": now, **fields}
        if check_passed is not None:
            values.update(key=check_passed[0], city=check_passed[1])
        if self.sql.server:  # one statement, one round trip
            one = (*key, check_passed is not None)
            in_one = self.sql.compiled(("in one", one), lambda: _transition_in_one(*one))
            act = self.sql.write(lambda tx: tx.first(in_one, {**values, "event": event_name, "detail": detail}),
                                 single=True)
        else:
            stmt = self.sql.compiled(key, lambda: _transition_statement(*key))

            def move(tx: Transaction) -> dict | None:
                if check_passed is not None:
                    tx.execute(self._hot.identity_end[True], values)
                act = tx.first(stmt, values)
                if act is not None:
                    tx.execute(self._hot.audit, {"act_id": act_id, "at": now, "event": event_name, "status": status,
                                                 "detail": detail, "actor": owner})
                return act
            act = self.sql.write(move)
        if act is None:
            return None
        self.changes.changed(act_id, status, act=act, callback=act.pop("callback_marker"))
        return act

    # -- identity checks of a citizen + city, across channels -------------------------------
    def identity_begin(self, citizen_key: str, city: str, hold_s: float, now: float | None = None) -> dict | None:
        """Hold the citizen + city for one identity check (``{"busy_until": ...}``). None when it is
        held (another check runs) or locked out; then :meth:`identity` tells which."""
        now = time.time() if now is None else now
        held = self.sql.write(lambda tx: tx.execute(self._hot.identity_begin, {
            "key": citizen_key, "city": city, "now": now, "until": now + hold_s}), single=True)
        return {"busy_until": now + hold_s} if held == 1 else None

    def identity(self, citizen_key: str, city: str) -> dict | None:
        with self.reading.connect() as conn:
            row = conn.execute(select(I).where(I.c.citizen_key == citizen_key, I.c.city == city)).mappings().first()
        return dict(row) if row else None

    def identity_end(self, citizen_key: str, city: str, *, passed: bool | None, max_failures: int,
                     lockout_s: float, now: float | None = None) -> dict:
        """Record the outcome of the held check (``passed`` None: no outcome, e.g. the city was
        unavailable) and release the hold. At ``max_failures`` failures the citizen + city is
        locked for ``lockout_s`` and the count starts again after it. Returns the row."""
        now = time.time() if now is None else now
        row = self.sql.write(lambda tx: tx.first(self._hot.identity_end[passed], {
            "key": citizen_key, "city": city, "limit": max_failures, "locked": now + lockout_s}), single=True)
        if row is None:  # pragma: no cover - identity_hold made the row
            raise RuntimeError("identity_end without a held identity check")
        return row

    def release(self, act_id: str, owner: str) -> None:
        self.sql.write(lambda tx: tx.execute(self._hot.release, {"act_id": act_id, "owner": owner}), single=True)
        self.changes.touched(act_id)

    def release_owned_by(self, prefix: str) -> list[str]:
        """Release every lease whose owner starts with ``prefix`` (``host:pid:``: all threads of
        one process, on its shutdown). The status stays: runnable activations can be claimed at
        once. Returns the ids released."""
        held = A.c.lease_owner.startswith(prefix, autoescape=True)
        with self.reading.connect() as conn:  # read apart: a SQLite read cannot become a write
            ids = [r[0] for r in conn.execute(select(A.c.id).where(held))]
        if ids:
            with self.writing() as conn:
                conn.execute(update(A).where(held).values(lease_until=None, lease_owner=None))
        return ids
