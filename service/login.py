"""Scan login for government portals (扫码登录).

1. A portal (a relying party of kind ``portal``) opens a login session
   (:meth:`LoginSessions.open`): a session id it keeps, and a login code (``essl1.`` + a random
   256-bit token, valid ``login_ttl_s``, 120 s) it shows as a QR code.
2. The citizen scans it in their e-SSC channel, which confirms it for one of its activated
   e-SSCs after a fresh face + SMS code or password check through the city
   (:meth:`LoginSessions.confirm`, essc.service.identity; the card must be normal).
3. The portal polls the session (:meth:`LoginSessions.poll`) and gets the result once: an
   opaque person number pairwise per portal (``essc_no``: never the ID number), the city, the
   sign level, the masked ID number and name, the name in full when its scope grants it.

The OpenID Connect provider (essc.service.oidc) runs its authorization step over the same
sessions (:meth:`LoginSessions.take`). Only hashes of the login codes are stored; every step
is audited (``usage_events``, and the activation's trail for a confirmation) without personal
data.
"""
from __future__ import annotations

import secrets
import time
import uuid
from typing import cast

from sqlalchemy import Table, insert, select, update

from essc.core.errors import CardStatusAbnormal
from essc.core.masking import get_logger

from . import states
from .cardstatus import current_card_status
from .errors import ActivationNotFound
from .identity import fresh_identity_check
from .models import AuditEvent, LoginSession
from .purging import Purger
from .relying import RelyingParty
from .usage import audit_use, pairwise_id, pairwise_key, person_view, token_hash
from .use_errors import LoginNotAllowed, LoginSessionExpired, LoginSessionNotFound, LoginSessionUsed, NotActivated
from .writers import writing

__all__ = ["LoginSessions", "PREFIX", "PENDING", "CONFIRMED", "DELIVERED", "EXPIRED"]

log = get_logger("essc.service.login")

L = cast(Table, LoginSession.__table__)
E = cast(Table, AuditEvent.__table__)
PREFIX = "essl1."
PENDING, CONFIRMED, DELIVERED, EXPIRED = "pending", "confirmed", "delivered", "expired"


class LoginSessions:
    def __init__(self, runtime, *, clock=time.time) -> None:
        self.runtime = runtime
        self.service = runtime.service
        self.store = runtime.store
        self.engine = runtime.store.engine
        self.clock = clock
        self._pairwise = pairwise_key(runtime.config.resolved_secret())
        self._purge = Purger(self.engine, L)

    @property
    def ttl_s(self) -> float:
        return float(self.runtime.config.login_ttl_s)

    # -- the portal ------------------------------------------------------------------------------
    def open(self, party: RelyingParty, *, request_hash: str | None = None) -> dict:
        """A new login session of portal ``party``: ``{session_id, login_code, expires_at, ttl_s}``.
        ``request_hash``: the OpenID Connect authorization request it serves (None: scan login)."""
        if not party.portal:
            raise LoginNotAllowed('only a relying party of kind "portal" logs citizens in', party_kind=party.kind)
        code, session_id, now = PREFIX + secrets.token_urlsafe(32), uuid.uuid4().hex, self.clock()
        expires_at = now + self.ttl_s
        with writing(self.engine) as conn:
            conn.execute(insert(L).values(id=session_id, code_hash=token_hash(code), party=party.name, status=PENDING,
                                          created_at=now, expires_at=expires_at, request_hash=request_hash))
            audit_use(conn, "login_opened", party=party.name, at=now, detail="oidc" if request_hash else "scan")
        self._purge(now)
        return {"session_id": session_id, "login_code": code, "expires_at": expires_at, "ttl_s": self.ttl_s}

    def poll(self, session_id: str, party: RelyingParty) -> dict:
        """The portal's scan-login session: pending, expired, confirmed (with the person: this
        answer only) or delivered (the result was read already)."""
        row = self._row(L.c.id == session_id)
        if row is None or row["party"] != party.name or row["request_hash"] is not None:
            raise LoginSessionNotFound("no login session with this id for this portal")
        status = self._status(row)
        view: dict = {"session_id": row["id"], "status": status, "expires_at": row["expires_at"]}
        if status != CONFIRMED:
            return view
        act = self._deliver(row)
        if act is None:  # another poll read it first
            view["status"] = DELIVERED
            return view
        view["person"] = self.login_view(party, act)
        return view

    def take(self, session_id: str, code: str, client_id: str, request_hash: str) -> tuple[str, dict | None, float]:
        """For the OpenID Connect authorization page: ``(status, activation, confirmed_at)`` of the
        session ``session_id`` with login code ``code``, opened for ``client_id``'s authorization
        request ``request_hash``. A confirmed session is delivered by this call (once): only then
        is the activation given."""
        row = self._row(L.c.id == session_id)
        if row is None or row["party"] != client_id or row["request_hash"] != request_hash \
                or row["code_hash"] != token_hash(code):
            raise LoginSessionNotFound("no login session for this authorization request")
        status = self._status(row)
        if status != CONFIRMED:
            return status, None, 0.0
        act = self._deliver(row)
        return (CONFIRMED, act, row["confirmed_at"]) if act is not None else (DELIVERED, None, 0.0)

    def login_view(self, party: RelyingParty, act: dict) -> dict:
        """The logged-in citizen as the portal may see them: never the ID number nor the sign number."""
        pii = self.service.sealer.unseal(act["sealed"])
        view = person_view(party, act, pii, self.person_number(party.name, act))
        view.pop("id_number", None)
        view.pop("sign_no", None)
        return view

    def person_number(self, party: str, act: dict) -> str:
        return pairwise_id(self._pairwise, party, act["citizen_key"])

    # -- the citizen's channel -------------------------------------------------------------------
    def confirm(self, code: str, *, channel: str, activation_id: str, face_token: str, parties,
                sms_code: str | None = None, password: str | None = None) -> dict:
        """The citizen confirms the login code in their channel, for the channel's activated
        e-SSC ``activation_id``, with a fresh identity check. Returns ``{status, portal}``."""
        row = self._row(L.c.code_hash == token_hash(code))
        if row is None:
            raise LoginSessionNotFound("no login session with this code")
        self._pending(row)
        act = self.store.get(activation_id)
        if act is None or act["channel"] != channel:
            raise ActivationNotFound("no activation with this id")
        if act["status"] != states.ACTIVATED:
            raise NotActivated(f"the activation is {act['status']}: only an activated e-SSC logs in",
                               activation_status=act["status"])
        pii = self.service.sealer.unseal(act["sealed"])
        card = current_card_status(self.runtime.registry, self.engine, act, pii["id_number"], actor=channel)
        if not card.normal:
            audit_use(self.engine, "login_refused", party=channel, activation_id=activation_id,
                      outcome=CardStatusAbnormal.code, detail=f"card status {card.status} ({card.source})")
            raise CardStatusAbnormal(status=card.status, city=act["city"], card_status_source=card.source)
        fresh_identity_check(self.service, act, pii, face_token=face_token, sms_code=sms_code, password=password)
        now = self.clock()
        with writing(self.engine) as conn:
            won = conn.execute(update(L).where(L.c.id == row["id"], L.c.status == PENDING, L.c.expires_at > now)
                               .values(status=CONFIRMED, activation_id=activation_id, confirmed_at=now)).rowcount
            if won:
                detail = f"login to portal {row['party']} confirmed by channel {channel} (face + identity check)"
                conn.execute(insert(E).values(activation_id=activation_id, at=now, event="login_confirmed",
                                              status=act["status"], detail=detail, actor=channel))
                audit_use(conn, "login_confirmed", party=row["party"], activation_id=activation_id, at=now,
                          detail=f"by channel {channel}")
        if not won:
            self._pending(self._row(L.c.id == row["id"]) or row)  # raises: used or expired in between
            raise LoginSessionUsed("the login session was confirmed in between")
        portal = parties.get(row["party"]) if parties is not None else None
        log.info("login session %s of portal %s confirmed by channel %s", row["id"], row["party"], channel)
        return {"status": CONFIRMED, "portal": {"name": row["party"],
                                                "description": portal.description if portal else ""}}

    # -- helpers -----------------------------------------------------------------------------------
    def _row(self, where) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(L).where(where)).mappings().first()
        return dict(row) if row else None

    def _status(self, row: dict) -> str:
        if row["status"] == PENDING and row["expires_at"] <= self.clock():
            return EXPIRED
        return row["status"]

    def _pending(self, row: dict) -> None:
        status = self._status(row)
        if status == EXPIRED:
            raise LoginSessionExpired("the portal shows a new login code")
        if status != PENDING:
            raise LoginSessionUsed("a login code is confirmed once")

    def _deliver(self, row: dict) -> dict | None:
        """Mark a confirmed session delivered (one conditional UPDATE: the result goes out once);
        the activation, or None when someone else delivered it first."""
        now = self.clock()
        with writing(self.engine) as conn:
            won = conn.execute(update(L).where(L.c.id == row["id"], L.c.status == CONFIRMED)
                               .values(status=DELIVERED, delivered_at=now)).rowcount
            if won:
                audit_use(conn, "login_delivered", party=row["party"], activation_id=row["activation_id"], at=now)
        return self.store.get(row["activation_id"]) if won else None
