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

from sqlalchemy import create_engine, event, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from . import states
from .models import Activation, AuditEvent, Base

A = Activation.__table__
E = AuditEvent.__table__


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
               now: float | None = None) -> tuple[dict, bool]:
        """A new activation, or the citizen's existing one for this city (never two).

        Returns ``(activation, created)``. An existing activation that ended without a
        credential, or waits for a new identity check, starts again with the new data."""
        now = time.time() if now is None else now
        act_id = uuid.uuid4().hex
        row = dict(id=act_id, citizen_key=citizen_key, city=city, channel=channel, status=states.RECEIVED,
                   id_hint=id_hint, sealed=sealed, runs=0, identity_failures=0, next_attempt_at=now,
                   created_at=now, updated_at=now)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(A).values(**row))
                conn.execute(insert(E), [
                    dict(activation_id=act_id, at=now, event="consent_given", status=states.RECEIVED, detail=None,
                         actor=channel),
                    dict(activation_id=act_id, at=now, event="city_chosen", status=states.RECEIVED,
                         detail=f"city {city}", actor=channel)])
            return self.get(act_id), True
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
            row = conn.execute(select(A).where(A.c.id == act_id)).mappings().first()
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
            res = conn.execute(update(A).where(
                A.c.id == act_id, A.c.status.in_(states.RUNNABLE),
                or_(A.c.next_attempt_at.is_(None), A.c.next_attempt_at <= now),
                or_(A.c.lease_until.is_(None), A.c.lease_until < now),
            ).values(lease_until=now + lease_s, lease_owner=owner, runs=A.c.runs + 1, updated_at=now))
        return self.get(act_id) if res.rowcount == 1 else None

    def transition(self, act_id: str, owner: str, status: str, event_name: str, *, detail: str | None = None,
                   release: bool = False, **fields: Any) -> bool:
        """Move a claimed activation to ``status`` and record the event, atomically.
        Refused (False) when ``owner`` no longer holds the lease."""
        now = time.time()
        values = dict(status=status, updated_at=now, **fields)
        if release:
            values.update(lease_until=None, lease_owner=None)
        cond = [A.c.id == act_id, A.c.lease_owner == owner]
        if "credential" in fields:  # a credential is written once, never replaced
            cond.append(A.c.credential.is_(None))
        with self.engine.begin() as conn:
            res = conn.execute(update(A).where(*cond).values(**values))
            if res.rowcount != 1:
                return False
            conn.execute(insert(E).values(activation_id=act_id, at=now, event=event_name, status=status,
                                          detail=detail, actor=owner))
        return True

    def release(self, act_id: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(A).where(A.c.id == act_id, A.c.lease_owner == owner)
                         .values(lease_until=None, lease_owner=None))
