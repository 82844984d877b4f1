"""The citizen's dynamic code (展码) and its verification by relying parties.

* :meth:`QrCodes.issue` (the channel holding an activated e-SSC) makes a code valid
  ``qrcode_ttl_s`` (60 s): ``essc1.`` + 43 characters of a random 256-bit token. It carries no
  personal data and cannot be guessed; the service keeps only its SHA-256, bound to the
  activation (one channel's binding of the credential). A new code replaces the binding's
  unused one. Refused when the activation is not activated (``NOT_ACTIVATED``) or the city
  reports the card abnormal (``CARD_STATUS_ABNORMAL`` naming the status; essc.service.cardstatus).
* :meth:`QrCodes.verify` (a relying party, for a business type it is allowed) spends the code
  once - one conditional UPDATE, so of two parties verifying the same code at once exactly one
  wins - and returns the person as that party may see it (essc.service.usage.person_view).
  Refusals are typed: ``BUSI_TYPE_NOT_ALLOWED`` (checked first: the code is not spent),
  ``QRCODE_NOT_FOUND``, ``QRCODE_EXPIRED``, ``QRCODE_USED``, ``QRCODE_REVOKED`` (the binding
  was unlinked), ``CARD_STATUS_ABNORMAL``.

Every issue, verification and refusal is in ``usage_events``; a verification also in the
activation's own audit trail (the channel sees which party verified the code, and for what).
Neither holds personal data or the code.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, insert, select, update

from essc.core.errors import CardStatusAbnormal, EsscError
from essc.core.masking import get_logger

from . import states
from .cardstatus import CardStatus, current_card_status
from .errors import ActivationNotFound
from .models import AuditEvent, QrCode
from .purging import Purger
from .relying import RelyingParty
from .usage import audit_use, pairwise_id, pairwise_key, person_view, token_hash
from .use_errors import (
    BusiTypeNotAllowed,
    NotActivated,
    QrCodeExpired,
    QrCodeNotFound,
    QrCodeRevoked,
    QrCodeUsed,
)
from .writers import writing

__all__ = ["QrCodes", "VerifiedCode", "PREFIX"]

log = get_logger("essc.service.qrcodes")

Q = cast(Table, QrCode.__table__)
E = cast(Table, AuditEvent.__table__)
PREFIX = "essc1."


@dataclass(frozen=True)
class VerifiedCode:
    """A code spent by a relying party: ``view`` is what the party may see; the rest is for the
    platform's own next steps (e.g. a settlement at the citizen's city), never to be shown."""

    view: dict
    activation: dict = field(repr=False)
    id_number: str = field(repr=False)
    card: CardStatus
    busi_type: str


class QrCodes:
    def __init__(self, runtime, *, clock=time.time) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.engine = runtime.store.engine
        self.sealer = runtime.service.sealer
        self.clock = clock
        self._pairwise = pairwise_key(runtime.config.resolved_secret())
        self._purge = Purger(self.engine, Q)

    @property
    def ttl_s(self) -> float:
        return float(self.runtime.config.qrcode_ttl_s)

    # -- the citizen's side ------------------------------------------------------------------
    def issue(self, act_id: str, channel: str) -> dict:
        """A fresh code for the channel's activated e-SSC ``act_id`` (see the module doc)."""
        act = self.store.get(act_id)
        if act is None or act["channel"] != channel:
            raise ActivationNotFound("no activation with this id")
        if act["status"] != states.ACTIVATED:
            raise NotActivated(f"the activation is {act['status']}: only an activated e-SSC shows a code",
                               activation_status=act["status"])
        pii = self.sealer.unseal(act["sealed"])
        card = current_card_status(self.runtime.registry, self.engine, act, pii["id_number"], actor=channel)
        if not card.normal:
            audit_use(self.engine, "qrcode_refused", party=channel, outcome=CardStatusAbnormal.code,
                      activation_id=act_id, detail=f"card status {card.status} ({card.source})")
            raise CardStatusAbnormal(status=card.status, city=act["city"], card_status_source=card.source)
        code = PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        expires_at = now + self.ttl_s
        with writing(self.engine) as conn:
            conn.execute(update(Q).where(Q.c.activation_id == act_id, Q.c.used_at.is_(None), Q.c.expires_at > now)
                         .values(expires_at=now))  # one live code per binding: the new one replaces it
            conn.execute(insert(Q).values(code_hash=token_hash(code), activation_id=act_id, issued_at=now,
                                          expires_at=expires_at))
            audit_use(conn, "qrcode_issued", party=channel, activation_id=act_id, at=now,
                      detail=f"card status {card.status} ({card.source}" + (f": {card.reason})" if card.reason
                                                                              else ")"))
        self._purge(now)
        answer = {"qrcode": code, "expires_at": expires_at, "ttl_s": self.ttl_s, "card_status": card.status,
                  "card_status_source": card.source}
        if card.reason:
            answer["card_status_note"] = card.reason
        return answer

    # -- the relying party's side ------------------------------------------------------------
    def verify(self, code: str, busi_type: str, party: RelyingParty) -> VerifiedCode:
        """Spend ``code`` for ``busi_type`` on behalf of ``party`` (see the module doc)."""
        seen: dict[str, str] = {}
        try:
            return self._verify(code, busi_type, party, seen)
        except EsscError as err:
            audit_use(self.engine, "qrcode_refused", party=party.name, outcome=err.code,
                      activation_id=seen.get("activation_id"),
                      busi_type=busi_type if busi_type in party.busi_types else None, detail=err.detail)
            log.info("code verification by %s for busi_type %s refused: %s", party.name,
                     busi_type if busi_type in party.busi_types else "?", err.code)
            raise

    def _verify(self, code: str, busi_type: str, party: RelyingParty, seen: dict[str, str]) -> VerifiedCode:
        if busi_type not in party.busi_types:
            raise BusiTypeNotAllowed("this relying party's configuration does not allow this business type",
                                     field="$.busi_type", allowed=sorted(party.busi_types))
        digest = token_hash(code)
        with self.engine.connect() as conn:
            row = conn.execute(select(Q).where(Q.c.code_hash == digest)).mappings().first()
        if row is None:
            raise QrCodeNotFound("the code was never issued, or long ago")
        act_id = seen["activation_id"] = row["activation_id"]
        now = self.clock()
        act = self.store.get(act_id)
        if row["revoked_at"] is not None or act is None or act["status"] != states.ACTIVATED:
            raise QrCodeRevoked("the channel binding this code was shown for has ended")
        if row["used_at"] is not None:
            raise QrCodeUsed("a code is verified once; ask the citizen for a fresh one")
        if row["expires_at"] <= now:
            raise QrCodeExpired("ask the citizen for a fresh code")
        pii = self.sealer.unseal(act["sealed"])
        card = current_card_status(self.runtime.registry, self.engine, act, pii["id_number"], actor=party.name)
        if not card.normal:
            raise CardStatusAbnormal(status=card.status, city=act["city"], card_status_source=card.source)
        detail = f"by {party.name} for busi_type {busi_type}; card status {card.status} ({card.source})"
        if not self._spend(digest, act, party.name, busi_type, now, detail):
            # another party spent it (or it was replaced or revoked) in between
            with self.engine.connect() as conn:
                row = conn.execute(select(Q).where(Q.c.code_hash == digest)).mappings().first()
            if row is not None and row["revoked_at"] is not None:
                raise QrCodeRevoked("the channel binding this code was shown for has ended")
            if row is not None and row["used_at"] is not None:
                raise QrCodeUsed("a code is verified once; ask the citizen for a fresh one")
            raise QrCodeExpired("ask the citizen for a fresh code")
        view = person_view(party, act, pii, pairwise_id(self._pairwise, party.name, act["citizen_key"]))
        view.update(busi_type=busi_type, card_status=card.status, verified_at=now)
        return VerifiedCode(view, act, pii["id_number"], card, busi_type)

    def _spend(self, digest: str, act: dict, party: str, busi_type: str, now: float, detail: str) -> bool:
        """The one conditional UPDATE that spends the code (False: someone else spent it, or it
        was replaced or revoked in between), with its audit, in one transaction."""
        with writing(self.engine) as conn:
            won = conn.execute(update(Q).where(Q.c.code_hash == digest, Q.c.used_at.is_(None),
                                               Q.c.revoked_at.is_(None), Q.c.expires_at > now)
                               .values(used_at=now, used_by=party, busi_type=busi_type)).rowcount == 1
            if won:
                audit_use(conn, "qrcode_verified", party=party, activation_id=act["id"], busi_type=busi_type,
                          at=now, detail=detail)
                conn.execute(insert(E).values(activation_id=act["id"], at=now, event="qrcode_verified",
                                              status=act["status"], detail=detail, actor=party))
        return won

    # -- lifecycle -----------------------------------------------------------------------------
    def revoke(self, conn, act_id: str, now: float) -> int:
        """Revoke the codes of the binding ``act_id`` (in the caller's transaction: unlinking)."""
        return conn.execute(update(Q).where(Q.c.activation_id == act_id, Q.c.revoked_at.is_(None))
                            .values(revoked_at=now)).rowcount
