"""Persistence of activations and their audit trail (SQLAlchemy Core statements on the
ORM tables; every state change and its audit event commit in one transaction).

Workers *claim* an activation with one conditional UPDATE (a lease with an owner), so two
workers - threads or processes, SQLite or PostgreSQL - never run the same activation at
once, and a worker whose lease expired (killed) cannot write over the next owner's work.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import JSON, bindparam, create_engine, event, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from . import states
from .models import Activation, AuditEvent, Base

A = Activation.__table__
E = AuditEvent.__table__

# Hot-path statements are built once: building SQLAlchemy statements per call cost more
# than the SQLite work itself (~0.6 ms each, profiled).
_GET = select(A).where(A.c.id == bindparam("act_id"))
_INSERT_A = insert(A)
_INSERT_E = insert(E)
_RUNNABLE_SQL = ", ".join(f"'{s}'" for s in states.RUNNABLE)
_CLAIM = text(
    "UPDATE activations SET lease_until = :until, lease_owner = :owner, runs = runs + 1, updated_at = :now "
    f"WHERE id = :act_id AND status IN ({_RUNNABLE_SQL}) "
    "AND (next_attempt_at IS NULL OR next_attempt_at <= :now) AND (lease_until IS NULL OR lease_until < :now)")
_AUDIT = text("INSERT INTO audit_events (activation_id, at, event, status, detail, actor) "
              "VALUES (:act_id, :at, :event, :status, :detail, :actor)")
_JSON_FIELDS = ("credential", "error")
_transition_sql: dict[tuple, object] = {}


def _transition_statement(fields: tuple[str, ...], release: bool, once: bool):
    key = (fields, release, once)
    stmt = _transition_sql.get(key)
    if stmt is None:
        sets = ["status = :status", "updated_at = :now"] + [f"{f} = :{f}" for f in fields]
        if release:
            sets += ["lease_until = NULL", "lease_owner = NULL"]
        where = "id = :act_id AND lease_owner = :owner" + (" AND credential IS NULL" if once else "")
        stmt = text(f"UPDATE activations SET {', '.join(sets)} WHERE {where}")
        json_params = [bindparam(f, type_=JSON) for f in fields if f in _JSON_FIELDS]
        if json_params:
            stmt = stmt.bindparams(*json_params)
        _transition_sql[key] = stmt
    return stmt


def make_engine(url: str):
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # WAL: readers don't block the writer
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        Base.metadata.create_all(self.engine)

    # -- creating ----------------------------------------------------------------------
    def create(self, *, citizen_key: str, city: str, channel: str, id_hint: str, sealed: str,
               now: float | None = None, owner: str | None = None, lease_s: float = 0.0) -> tuple[dict, bool]:
        """A new activation, or the citizen's existing one for this city (never two).

        Returns ``(activation, created)``. A new activation is created already claimed by
        ``owner`` when one is given (saves a round trip). An existing activation that ended
        without a credential, or waits for a new identity check, starts again with the new data."""
        now = time.time() if now is None else now
        act_id = uuid.uuid4().hex
        row = dict(id=act_id, citizen_key=citizen_key, city=city, channel=channel, status=states.RECEIVED,
                   id_hint=id_hint, sealed=sealed, runs=1 if owner else 0, identity_failures=0, next_attempt_at=now,
                   lease_until=now + lease_s if owner else None, lease_owner=owner, created_at=now, updated_at=now)
        try:
            with self.engine.begin() as conn:
                conn.execute(_INSERT_A, row)  # credential & error stay SQL NULL (JSON None would be 'null')
                row.update(card_status=None, credential=None, error=None)
                conn.execute(_INSERT_E, [
                    dict(activation_id=act_id, at=now, event="consent_given", status=states.RECEIVED, detail=None,
                         actor=channel),
                    dict(activation_id=act_id, at=now, event="city_chosen", status=states.RECEIVED,
                         detail=f"city {city}", actor=channel)])
            return row, True
        except IntegrityError:
            pass
        existing = self.find(citizen_key, city)
        if existing is None:  # pragma: no cover - deleted in between
            raise RuntimeError("activation vanished during creation")
        if existing["status"] == states.AWAITING_VERIFICATION or (
                existing["status"] in states.FINAL and existing["status"] != states.ACTIVATED):
            restart = states.CARD_READ if existing["status"] == states.AWAITING_VERIFICATION else states.RECEIVED
            with self.engine.begin() as conn:
                res = conn.execute(update(A).where(A.c.id == existing["id"], A.c.status == existing["status"])
                                   .values(status=restart, sealed=sealed, channel=channel, next_attempt_at=now,
                                           updated_at=now, error=None,
                                           **({"identity_failures": 0, "created_at": now}
                                              if restart == states.RECEIVED else {})))
                if res.rowcount:
                    conn.execute(insert(E).values(activation_id=existing["id"], at=now, event="resubmitted",
                                                  status=restart, actor=channel))
        return self.get(existing["id"]), False

    # -- reading -----------------------------------------------------------------------
    def get(self, act_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(_GET, {"act_id": act_id}).mappings().first()
        return dict(row) if row else None

    def find(self, citizen_key: str, city: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(A).where(A.c.citizen_key == citizen_key, A.c.city == city)).mappings().first()
        return dict(row) if row else None

    def audit(self, act_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(E).where(E.c.activation_id == act_id).order_by(E.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(A.c.status, func.count()).group_by(A.c.status)).all()
        return {status: n for status, n in rows}

    def due(self, now: float | None = None, grace_s: float = 0.0, limit: int = 500) -> list[str]:
        """Runnable activations whose time has come and that no live worker holds."""
        now = time.time() if now is None else now
        q = (select(A.c.id).where(A.c.status.in_(states.RUNNABLE), A.c.next_attempt_at <= now - grace_s,
                                  or_(A.c.lease_until.is_(None), A.c.lease_until < now))
             .order_by(A.c.next_attempt_at).limit(limit))
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(q)]

    def next_due_at(self) -> float | None:
        with self.engine.connect() as conn:
            return conn.execute(select(func.min(A.c.next_attempt_at)).where(A.c.status.in_(states.RUNNABLE))).scalar()

    # -- working -----------------------------------------------------------------------
    def claim(self, act_id: str, owner: str, lease_s: float, now: float | None = None) -> dict | None:
        """Take the activation for ``lease_s`` seconds if it is runnable, due and free."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            res = conn.execute(_CLAIM, {"act_id": act_id, "until": now + lease_s, "owner": owner, "now": now})
        return self.get(act_id) if res.rowcount == 1 else None

    def transition(self, act_id: str, owner: str, status: str, event_name: str, *, detail: str | None = None,
                   release: bool = False, **fields: Any) -> bool:
        """Move a claimed activation to ``status`` and record the event, atomically.
        Refused (False) when ``owner`` no longer holds the lease."""
        now = time.time()
        # a credential is written once, never replaced
        stmt = _transition_statement(tuple(sorted(fields)), release, "credential" in fields)
        with self.engine.begin() as conn:
            res = conn.execute(stmt, {"act_id": act_id, "owner": owner, "status": status, "now": now, **fields})
            if res.rowcount != 1:
                return False
            conn.execute(_AUDIT, {"act_id": act_id, "at": now, "event": event_name, "status": status,
                                  "detail": detail, "actor": owner})
        return True

    def release(self, act_id: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(A).where(A.c.id == act_id, A.c.lease_owner == owner)
                         .values(lease_until=None, lease_owner=None))
