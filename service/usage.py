"""What the e-SSC's users share: the usage audit, pairwise person numbers, and the person as a
relying party may see it.

* :func:`audit_use` records one use (a code issued, verified or refused; a login) in
  ``usage_events``: the party, the business type, the activation id and the outcome code, never
  personal data or the code itself.
* :func:`pairwise_id` is the opaque person number a party knows a citizen by (the portal's
  login result ``essc_no``, the OpenID Connect ``sub``): the same citizen gets the same number
  at one party and unrelated numbers at two parties, and the number says nothing of the ID.
* :func:`person_view` is the citizen as a relying party sees them: sign number, city, sign
  level, masked ID number and name, and in full only what the party's ``scope`` grants.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import cast

from sqlalchemy import Engine, Table, insert

from essc.core import naming
from essc.core.masking import mask_id, mask_name

from .models import UsageEvent

__all__ = ["audit_use", "pairwise_id", "pairwise_key", "person_view", "token_hash"]

U = cast(Table, UsageEvent.__table__)


def token_hash(token: str) -> str:
    """How codes and tokens are kept: SHA-256 (they carry 256 random bits: no key needed)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def audit_use(engine_or_conn, event: str, *, party: str | None, outcome: str = "ok",
              activation_id: str | None = None, busi_type: str | None = None, detail: str | None = None,
              at: float | None = None) -> None:
    """One row of ``usage_events`` (in the connection's transaction when given a connection)."""
    row = dict(at=time.time() if at is None else at, event=event, party=party, outcome=outcome[:32],
               activation_id=activation_id, busi_type=busi_type, detail=detail[:300] if detail else None)
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.begin() as conn:
            conn.execute(insert(U).values(**row))
    else:
        engine_or_conn.execute(insert(U).values(**row))


def pairwise_key(secret: str) -> bytes:
    """The key of :func:`pairwise_id`, derived from the service's secret."""
    return hashlib.sha256(("pairwise:" + secret).encode()).digest()


def pairwise_id(key: bytes, party: str, citizen_key: str) -> str:
    """``E`` + 32 characters of base32: HMAC(key, party + citizen) (see the module doc)."""
    digest = hmac.new(key, f"{party}\n{citizen_key}".encode(), hashlib.sha256).digest()
    return "E" + base64.b32encode(digest[:20]).decode("ascii")


def person_view(party, act: dict, pii: dict, essc_no: str) -> dict:
    """The citizen of activation ``act`` as relying party ``party`` may see them."""
    credential = naming.credential(act["credential"])  # rows stored before contract 1.2 too
    view = {"essc_no": essc_no, "sign_no": credential.get("sign_no"), "city": act["city"],
            "sign_level": credential.get("sign_level"), "id_hint": mask_id(pii["id_number"]),
            "name_hint": mask_name(pii["name"])}
    if party.may_see("id_number"):
        view["id_number"] = pii["id_number"]
    if party.may_see("name"):
        view["name"] = pii["name"]
    return view

