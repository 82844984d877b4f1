"""Persistence of medical settlements (essc.service.settlements): SQLAlchemy Core on the tables
``settlements`` and ``settlement_events``; every state change and its audit event commit in one
transaction, as essc.service.store does for activations.

A leg (a call to the city) runs under a *lease*: one conditional UPDATE claims the settlement
for one worker, and a transition is written only by the lease's owner - so two workers never run
the same leg, and a worker whose lease was taken over (the party asked for a reversal, or the
lease expired after a crash) cannot write over what came after. A pending leg whose queue task
was lost is found again by :meth:`SettlementStore.due` (the sweeper).
"""
from __future__ import annotations

import time
from typing import Any, cast

from sqlalchemy import Table, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from .models import Settlement, SettlementEvent
from .writers import writing

__all__ = ["SettlementStore", "PRE_SETTLING", "PRE_SETTLED", "CONFIRMING", "SETTLED", "REVERSING", "REVERSED",
           "FAILED", "REVERSAL_FAILED", "LEGS", "FINAL", "STATES"]

S = cast(Table, Settlement.__table__)
SE = cast(Table, SettlementEvent.__table__)

PRE_SETTLING = "pre_settling"  #: leg: pre_settle at the city (retried until it answers)
PRE_SETTLED = "pre_settled"  #: the city holds the fund share; waits for the party's confirm (or the hold's end)
CONFIRMING = "confirming"  #: leg: confirm at the city
SETTLED = "settled"  #: confirmed: the fund pays (a party may still reverse it: a refund)
REVERSING = "reversing"  #: leg: reverse at the city (retried until it answers)
REVERSED = "reversed"  #: final: reversed at the city, nothing charged
FAILED = "failed"  #: final: the city refused the pre-settlement, nothing applied
REVERSAL_FAILED = "reversal_failed"  #: final: the city refused the reversal itself: an operator must look
#: states in which a leg is pending (a worker picks them up)
LEGS = (PRE_SETTLING, CONFIRMING, REVERSING)
FINAL = (REVERSED, FAILED, REVERSAL_FAILED)
STATES = (PRE_SETTLING, PRE_SETTLED, CONFIRMING, SETTLED, REVERSING, REVERSED, FAILED, REVERSAL_FAILED)
#: a claim takes a pending leg, or a pre-settlement whose hold ended (to reverse it)
_CLAIMABLE = LEGS + (PRE_SETTLED,)


class SettlementStore:
    def __init__(self, engine) -> None:
        self.engine = engine

    # -- creating and reading ------------------------------------------------------------------
    def create(self, row: dict[str, Any], *, actor: str, detail: str) -> tuple[dict, bool]:
        """Insert a settlement (held by ``row["lease_owner"]``); ``(row, True)``. When the party's
        idempotency key is taken: ``(the settlement holding it, False)``."""
        try:
            with writing(self.engine) as conn:
                conn.execute(insert(S).values(**row))
                conn.execute(insert(SE).values(settlement_id=row["id"], at=row["created_at"], event="created",
                                               state=row["state"], detail=detail, actor=actor))
        except IntegrityError:
            existing = self.by_key(row["party"], row["idempotency_key"])
            if existing is None:  # pragma: no cover - another constraint: a bug
                raise
            return existing, False
        return self.get(row["id"]) or row, True

    def get(self, sid: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(S).where(S.c.id == sid)).mappings().first()
        return dict(row) if row else None

    def by_key(self, party: str, key: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(S).where(S.c.party == party, S.c.idempotency_key == key)).mappings().first()
        return dict(row) if row else None

    def events(self, sid: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(SE).where(SE.c.settlement_id == sid).order_by(SE.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {state: n for state, n in conn.execute(select(S.c.state, func.count()).group_by(S.c.state))}

    def all_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(S.c.id).order_by(S.c.created_at))]

    # -- legs ------------------------------------------------------------------------------------
    def claim(self, sid: str, owner: str, lease_s: float, now: float | None = None) -> dict | None:
        """Take the settlement for ``lease_s`` if a leg is pending (or its hold ended), due and free."""
        now = time.time() if now is None else now
        with writing(self.engine) as conn:
            won = conn.execute(update(S).where(
                S.c.id == sid, S.c.state.in_(_CLAIMABLE), S.c.next_attempt_at.is_not(None),
                S.c.next_attempt_at <= now, or_(S.c.lease_until.is_(None), S.c.lease_until < now))
                .values(lease_until=now + lease_s, lease_owner=owner, runs=S.c.runs + 1)).rowcount == 1
        return self.get(sid) if won else None

    def transition(self, sid: str, owner: str, state: str, event: str, *, detail: str | None = None,
                   release: bool = True, **fields: Any) -> bool:
        """Move a claimed settlement to ``state`` and record the event, atomically; refused (False)
        when ``owner`` no longer holds it."""
        now = time.time()
        values = dict(state=state, updated_at=now, **fields)
        if release:
            values.update(lease_until=None, lease_owner=None)
        with writing(self.engine) as conn:
            if conn.execute(update(S).where(S.c.id == sid, S.c.lease_owner == owner).values(**values)).rowcount != 1:
                return False
            conn.execute(insert(SE).values(settlement_id=sid, at=now, event=event, state=state,
                                           detail=detail[:300] if detail else None, actor=owner[:64]))
        return True

    def request(self, sid: str, from_states: tuple[str, ...], state: str, event: str, *, owner: str, lease_s: float,
                actor: str, detail: str | None = None) -> dict | None:
        """A party's request (confirm, reverse): move the settlement from one of ``from_states`` to
        ``state`` and hold it for ``owner`` - taking the lease over from a leg in flight, which can
        then write nothing more. None when it is in none of ``from_states``."""
        now = time.time()
        with writing(self.engine) as conn:
            moved = conn.execute(update(S).where(S.c.id == sid, S.c.state.in_(from_states)).values(
                state=state, updated_at=now, next_attempt_at=now, leg_started_at=now, lease_until=now + lease_s,
                lease_owner=owner)).rowcount == 1
            if moved:
                conn.execute(insert(SE).values(settlement_id=sid, at=now, event=event, state=state, detail=detail,
                                               actor=actor[:64]))
        return self.get(sid) if moved else None

    def release(self, sid: str, owner: str) -> None:
        with writing(self.engine) as conn:
            conn.execute(update(S).where(S.c.id == sid, S.c.lease_owner == owner)
                         .values(lease_until=None, lease_owner=None))

    def due(self, now: float | None = None, grace_s: float = 0.0, limit: int = 500) -> list[str]:
        """Settlements whose leg (or the end of whose hold) is due and that no live worker holds."""
        now = time.time() if now is None else now
        q = (select(S.c.id).where(S.c.state.in_(_CLAIMABLE), S.c.next_attempt_at <= now - grace_s,
                                  or_(S.c.lease_until.is_(None), S.c.lease_until < now))
             .order_by(S.c.next_attempt_at).limit(limit))
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(q)]

    def release_owned_by(self, prefix: str) -> list[str]:
        """Release every lease whose owner starts with ``prefix`` (a process's shutdown)."""
        held = S.c.lease_owner.startswith(prefix, autoescape=True)
        with self.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(select(S.c.id).where(held))]
        if ids:
            with writing(self.engine) as conn:
                conn.execute(update(S).where(held).values(lease_until=None, lease_owner=None))
        return ids
