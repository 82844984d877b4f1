"""Signed callbacks: the channel's backend hears of its activation without polling.

A submission may carry ``callback_url`` (http or https). Whenever the activation comes to
rest - the card was read and it waits for the identity check, or it reached a final state
(activated, not opened, abnormal card, locked out, expired, failed) - the service POSTs to it:

    {"event": "activation.updated", "activation": <the activation as GET shows it, without
     the credential: the channel reads that with GET>}

signed exactly as the channel signs its own requests (``X-Channel``, ``X-Timestamp``,
``X-Nonce``, ``X-Signature`` over METHOD, the callback's path and query, the timestamp, the
nonce and the body's SHA-256, keyed with the channel's HMAC secret: docs/signing.md), so the
channel verifies it with the code it already has. Delivery is a queue task: a non-2xx
answer or a failed connection is retried with exponential backoff (1 s, 2 s, 4 s ... at most
``CALLBACK_CAP_S``) up to ``CALLBACK_ATTEMPTS`` times; each outcome is in the audit trail.
Delivery is at least once: the channel may see a state twice and should treat the callback as
a hint to read the activation.
"""
from __future__ import annotations

import json
import secrets
import time
from typing import Any, cast
from urllib.parse import urlsplit

import requests
from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from essc.core.masking import get_logger

from . import states
from .channels import Channels, sign
from .models import Callback

log = get_logger("essc.service.callbacks")

C = cast(Table, Callback.__table__)
CALLBACK_ATTEMPTS = 8
CALLBACK_CAP_S = 60.0
TIMEOUT_S = 5.0
#: the states in which the activation rests until the channel (or nobody) acts
RESTING = (states.AWAITING_VERIFICATION,) + states.FINAL


def due_marker(act: dict, delivered: str) -> str | None:
    """The announcement due for ``act`` (``"<status>@<updated_at>"``) when it rests and that was
    not announced yet (``delivered``: the last one, ``''`` for none), else None."""
    if act["status"] not in RESTING:
        return None
    marker = f"{act['status']}@{act['updated_at']}"
    return None if delivered == marker else marker


def target_of(url: str) -> str:
    """PATH_WITH_QUERY of the callback URL, as the signature covers it."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class Callbacks:
    def __init__(self, store, channels: Channels | None) -> None:
        self.store = store
        self.channels = channels
        self.session = requests.Session()
        self.session.trust_env = False

    # -- registration ------------------------------------------------------------------------
    def register(self, act_id: str, url: str) -> None:
        """Remember (or replace) the activation's callback URL."""
        with self.store.writing() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(insert(C).values(activation_id=act_id, url=url, delivered=None))
            except IntegrityError:
                conn.execute(update(C).where(C.c.activation_id == act_id).values(url=url, delivered=None))

    def due(self, act_id: str) -> str | None:
        """The state to announce now (resting and not yet announced), or None."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(C.c.delivered).where(C.c.activation_id == act_id)).first()
        if row is None:
            return None
        act = self.store.get(act_id)
        return None if act is None else due_marker(act, row[0] or "")

    def forget(self, act_id: str) -> None:
        with self.store.writing() as conn:
            conn.execute(delete(C).where(C.c.activation_id == act_id))

    # -- delivery ------------------------------------------------------------------------------
    def deliver(self, act_id: str, marker: str, view: dict[str, Any]) -> bool:
        """POST the signed callback once; True when the channel answered 2xx."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(C.c.url, C.c.delivered).where(C.c.activation_id == act_id)).first()
        if row is None or row[1] == marker:
            return True  # no callback any more, or announced already (at least once is enough)
        url = row[0]
        act = self.store.get(act_id)
        channel = self.channels.channels.get(act["channel"]) if (self.channels and act) else None
        if channel is None or not channel.hmac_secret:
            self._audit(act_id, "callback_failed", "the channel has no HMAC secret to sign callbacks with")
            return True  # nothing to retry
        body = json.dumps({"event": "activation.updated", "activation": view}, ensure_ascii=False).encode()
        stamp, nonce = str(int(time.time())), secrets.token_urlsafe(24)
        headers = {"Content-Type": "application/json", "X-Channel": channel.name, "X-Timestamp": stamp,
                   "X-Nonce": nonce,
                   "X-Signature": sign(channel.hmac_secret, "POST", target_of(url), stamp, nonce, body)}
        try:
            answer = self.session.post(url, data=body, headers=headers, timeout=TIMEOUT_S, allow_redirects=False)
            ok = 200 <= answer.status_code < 300
            why = f"HTTP {answer.status_code}"
        except requests.RequestException as err:
            ok, why = False, type(err).__name__
        if ok:
            with self.store.writing() as conn:
                conn.execute(update(C).where(C.c.activation_id == act_id).values(delivered=marker))
            self._audit(act_id, "callback_delivered", f"{marker.split('@')[0]}: {why}")
        else:
            log.info("activation %s: callback not delivered (%s)", act_id, why)
        return ok

    def _audit(self, act_id: str, event: str, detail: str) -> None:
        from .store import _AUDIT

        act = self.store.get(act_id)
        with self.store.writing() as conn:
            conn.execute(_AUDIT, {"act_id": act_id, "at": time.time(), "event": event,
                                  "status": act["status"] if act else states.RECEIVED, "detail": detail[:300],
                                  "actor": "callbacks"})


def backoff(attempt: int) -> float:
    """Seconds before delivery attempt ``attempt + 1`` (1, 2, 4 ... at most CALLBACK_CAP_S)."""
    return min(CALLBACK_CAP_S, 2.0 ** max(attempt - 1, 0))
