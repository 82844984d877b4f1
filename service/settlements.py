"""Medical settlement as a durable saga (issue 11, section 4).

A hospital or pharmacy - a relying party allowed business type ``02`` (payment) or ``04``
(cross-region medical care) - scans the citizen's code and settles a bill through the platform:

1. :meth:`Settlements.create` verifies the code (essc.service.qrcodes, the very verification of
   ``POST /v1/qrcode/verify``), records the settlement and **pre-settles** it at the citizen's city
   (``settle_medical`` action ``pre_settle``): the city computes the fund's share and holds it; the
   citizen pays the rest (``self_pay_cents``), which needs the e-SSC at sign level 2 (payment
   enabled) - otherwise the pre-settlement is reversed and the party gets ``PAYMENT_NOT_ENABLED``;
2. :meth:`Settlements.confirm` **settles** it (action ``confirm``);
3. :meth:`Settlements.reverse` **reverses** it (action ``reverse``: a held or settled bill).

Every state and leg is in the database (essc.service.settlement_store) before and after each call
to the city; the city's side is idempotent by the settlement's id, so an unknown outcome (a
timeout, a dropped connection) is resolved by making the same call again, by the queue with
backoff (a leg pending after a crash is picked up again by the sweeper). The saga never leaves a
bill half-done: a pre-settlement or a confirmation that fails for good, or that does not get an
answer within ``settlement_leg_deadline_s``, is **reversed**; a pre-settlement not confirmed within
``settlement_hold_s`` is reversed too. The reversal is retried until the city answers.

A party knows its settlements by its own idempotency key: the same key with the same body gives
the same settlement (the code is not verified again), another body ``IDEMPOTENCY_KEY_REUSED``.
Only the party that created a settlement sees it.
"""
from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import cast

from sqlalchemy import Table, select

from essc.core import naming
from essc.core.errors import (
    ContractViolation,
    EsscError,
    RetryableError,
    error_from_dict,
)
from essc.core.masking import get_logger

from . import settlement_store as st
from .flow import worker_id
from .models import QrCode
from .pay_errors import (
    IdempotencyKeyReused,
    NotOffered,
    PaymentNotEnabled,
    SettlementAborted,
    SettlementHoldExpired,
    SettlementNotFound,
    SettlementStateConflict,
)
from .payment import require_offered
from .pool import answer_within
from .usage import audit_use, token_hash
from .use_errors import QrCodeUsed

__all__ = ["Settlements", "request_hash", "stored_error"]

log = get_logger("essc.service.settlements")

OPERATION = "settle_medical"
Q = cast(Table, QrCode.__table__)
#: how long a request whose code another request just spent waits for that one's settlement
RACE_WAIT_S = 2.0
_OWN_ERRORS = {cls.code: cls for cls in (PaymentNotEnabled, SettlementHoldExpired, SettlementAborted, NotOffered)}


def request_hash(body: dict) -> str:
    """The fingerprint of a request body as sent (canonical JSON; the code included)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                          .encode()).hexdigest()


def stored_error(data: dict, **details) -> EsscError:
    """The typed error of a stored error object, with ``details`` added."""
    cls = _OWN_ERRORS.get(data.get("code", ""))
    if cls is None:
        err = error_from_dict(data)
    else:
        err = cls.__new__(cls)
        EsscError.__init__(err, data.get("detail"), **data.get("details", {}))
    err.details.update(details)
    return err


def _refused(err: EsscError) -> bool:
    """Did the city refuse the request (nothing applied), as opposed to an outcome we cannot know
    (a broken answer, an unexpected failure)?"""
    return err.recovery in ("permanent", "reverify") and not isinstance(err, ContractViolation) \
        and type(err) is not EsscError


class Settlements:
    """The settlement saga of one process (``runtime.settlements``)."""

    def __init__(self, registry, store: st.SettlementStore, config, sealer, *, retry_delay, enqueue=None,
                 pool=None) -> None:
        self.registry = registry
        self.store = store
        self.config = config
        self.sealer = sealer
        self.retry_delay = retry_delay  #: (runs, retry_after) -> seconds: the activations' backoff
        self.enqueue = enqueue  #: (settlement id, delay) -> None: the queue
        self.pool = pool

    # -- the relying party's requests ---------------------------------------------------------------
    def create(self, party, body: dict, qrcodes) -> tuple[dict, bool]:
        """Settle ``body`` (``{qrcode, busi_type, hospital, items, idempotency_key}``, valid) for
        ``party``; returns ``(settlement, created)`` - ``created`` False for a replay of the key."""
        key, digest = body["idempotency_key"], request_hash(body)
        existing = self.store.by_key(party.name, key)
        if existing is not None:
            return self._replay(existing, digest), False
        if self.pool is not None:
            self.pool.check()  # full: 503 before the code is spent
        try:
            verified = qrcodes.verify(body["qrcode"], body["busi_type"], party)
        except QrCodeUsed:  # the same request racing itself? the winner records it right after the code
            existing = self._recorded(party.name, key, body["qrcode"])
            if existing is not None:
                return self._replay(existing, digest), False
            raise
        act = verified.activation
        require_offered(self.registry, act["city"], OPERATION)
        now, owner = time.time(), worker_id()
        credential = naming.credential(act["credential"])  # rows stored before contract 1.2 too
        sealed = self.sealer.seal({"id_number": verified.id_number, "sign_no": credential["sign_no"],
                                   "items": body["items"]})
        row = dict(id=uuid.uuid4().hex, party=party.name, idempotency_key=key, request_hash=digest,
                   activation_id=act["id"], city=act["city"], busi_type=body["busi_type"],
                   hospital_code=body["hospital"]["code"], hospital_name=body["hospital"]["name"],
                   sign_level=int(credential.get("sign_level") or 1), essc_no=verified.view["essc_no"],
                   sealed=sealed, state=st.PRE_SETTLING, runs=1, next_attempt_at=now, leg_started_at=now,
                   lease_until=now + self.config.lease_s, lease_owner=owner, created_at=now, updated_at=now)
        row, created = self.store.create(row, actor=party.name, detail=f"{len(body['items'])} item(s), busi_type "
                                         f"{body['busi_type']}, hospital {body['hospital']['code']}")
        if not created:
            return self._replay(row, digest), False
        audit_use(self.store.engine, "settlement_created", party=party.name, activation_id=act["id"],
                  busi_type=body["busi_type"], detail=f"settlement {row['id']}")
        log.info("settlement %s: %s for busi_type %s in %s", row["id"], party.name, body["busi_type"], act["city"])
        return self._leg_now(row["id"], owner), True

    def get(self, party, sid: str) -> dict:
        row = self.store.get(sid) if isinstance(sid, str) else None
        if row is None or row["party"] != party.name:  # another party's: as if it did not exist
            raise SettlementNotFound("no settlement with this id")
        return row

    def confirm(self, party, sid: str) -> dict:
        """Settle the party's pre-settled ``sid`` (idempotent: confirming or settled, it is answered)."""
        row = self.get(party, sid)
        if row["state"] not in (st.CONFIRMING, st.SETTLED):
            owner = worker_id()
            moved = self.store.request(sid, (st.PRE_SETTLED,), st.CONFIRMING, "confirm_requested", owner=owner,
                                       lease_s=self.config.lease_s, actor=party.name)
            if moved is None:
                row = self.store.get(sid) or row
                if row["state"] not in (st.CONFIRMING, st.SETTLED):
                    raise SettlementStateConflict(f"a {row['state']} settlement cannot be confirmed",
                                                  settlement_state=row["state"], settlement_id=sid)
            else:
                row = self._leg_now(sid, owner)
        return row

    def reverse(self, party, sid: str) -> dict:
        """Reverse the party's ``sid`` (held or settled; a leg in flight is taken over). Idempotent."""
        row = self.get(party, sid)
        if row["state"] in (st.REVERSING,) + st.FINAL:
            return row
        owner = worker_id()
        moved = self.store.request(sid, (st.PRE_SETTLING, st.PRE_SETTLED, st.CONFIRMING, st.SETTLED), st.REVERSING,
                                   "reverse_requested", owner=owner, lease_s=self.config.lease_s, actor=party.name,
                                   detail=f"was {row['state']}")
        if moved is None:
            return self.store.get(sid) or row
        return self._leg_now(sid, owner)

    def _recorded(self, party: str, key: str, code: str) -> dict | None:
        """The settlement under (party, key); when this party spent ``code`` a moment ago, waiting up
        to :data:`RACE_WAIT_S` for that request to record it."""
        wait_s = RACE_WAIT_S
        with self.store.engine.connect() as conn:
            spent = conn.execute(select(Q.c.used_by, Q.c.used_at).where(Q.c.code_hash == token_hash(code))).first()
        recent = spent is not None and spent.used_by == party and (spent.used_at or 0) > time.time() - wait_s
        deadline = time.monotonic() + (wait_s if recent else 0.0)
        while True:
            row = self.store.by_key(party, key)
            if row is not None or time.monotonic() >= deadline:
                return row
            time.sleep(0.02)

    def _replay(self, row: dict, digest: str) -> dict:
        if row["request_hash"] != digest:
            raise IdempotencyKeyReused("give each settlement its own idempotency_key", field="$.idempotency_key",
                                       settlement_id=row["id"])
        return row

    # -- legs ------------------------------------------------------------------------------------
    def _leg_now(self, sid: str, owner: str) -> dict:
        """Run the leg ``owner`` holds: in the flow pool within the answer budget when there is one."""
        if self.pool is None:
            self._leg(sid, owner)
        else:
            answer_within(self.pool.run(self._leg, sid, owner), self.config.answer_budget_s)
        return self.store.get(sid)  # type: ignore[return-value]

    def run(self, sid: str) -> dict | None:
        """A queue task: claim the settlement's due leg and run it."""
        owner = worker_id()
        if self.store.claim(sid, owner, self.config.lease_s) is not None:
            self._leg(sid, owner)
        return self.store.get(sid)

    def due(self, grace_s: float = 0.0) -> list[str]:
        return self.store.due(grace_s=grace_s)

    def _leg(self, sid: str, owner: str) -> None:
        row = self.store.get(sid)
        if row is None or row["lease_owner"] != owner:
            return
        try:
            if row["state"] == st.PRE_SETTLING:
                self._pre_settle(row, owner)
            elif row["state"] == st.CONFIRMING:
                self._confirm(row, owner)
            elif row["state"] == st.PRE_SETTLED:  # claimed at the end of its hold: nobody confirmed it
                self._compensate(row, owner, SettlementHoldExpired(
                    f"not confirmed within {self.config.settlement_hold_s:g}s", settlement_id=sid))
            elif row["state"] == st.REVERSING:
                self._reverse(row, owner)
            else:
                self.store.release(sid, owner)
        except Exception:  # a bug, not a city failure: keep the leg, try later
            log.exception("settlement %s: unexpected error in the %s leg; retrying later", sid, row["state"])
            delay = self.config.retry_cap_s
            if self.store.transition(sid, owner, row["state"], "internal_error", next_attempt_at=time.time() + delay):
                self._schedule(sid, delay)

    def _city(self, row: dict, action: str) -> dict:
        sealed = self.sealer.unseal(row["sealed"])
        request = {"action": action, "settlement_id": row["id"], "aac002": sealed["id_number"], "aab301": row["city"],
                   "sign_no": sealed["sign_no"], "busi_type": row["busi_type"],
                   "hospital": {"code": row["hospital_code"], "name": row["hospital_name"]}}
        if action == "pre_settle":
            request["items"] = sealed["items"]
        return self.registry.call(row["city"], OPERATION, request)

    @staticmethod
    def _amounts(result: dict) -> dict:
        return dict(total_cents=result["total_cents"], fund_cents=result["fund_cents"],
                    self_pay_cents=result["self_pay_cents"], city_ref=result.get("city_ref"))

    def _pre_settle(self, row: dict, owner: str) -> None:
        sid = row["id"]
        try:
            result = self._city(row, "pre_settle")
        except RetryableError as err:
            return self._retry(row, owner, "pre_settle", err)
        except EsscError as err:
            if _refused(err):  # the city refused the bill: nothing applied, nothing to undo
                self.store.transition(sid, owner, st.FAILED, "pre_settle_refused", next_attempt_at=None,
                                      error=err.to_dict(), detail=f"pre_settle: {err.code}")
                log.info("settlement %s: pre_settle refused by city %s: %s", sid, row["city"], err.code)
                return None
            return self._compensate(row, owner, SettlementAborted(f"pre_settle: {err.code}", cause=err.code))
        amounts = self._amounts(result)
        if amounts["self_pay_cents"] > 0 and row["sign_level"] < 2:
            refusal = PaymentNotEnabled(f"{amounts['self_pay_cents']} fen to pay by the citizen; sign level "
                                        f"{row['sign_level']}", self_pay_cents=amounts["self_pay_cents"])
            return self._compensate(row, owner, refusal, **amounts)
        hold_until = time.time() + self.config.settlement_hold_s
        self.store.transition(sid, owner, st.PRE_SETTLED, "pre_settled", next_attempt_at=hold_until,
                              leg_started_at=None, error=None, **amounts,
                              detail=f"total {amounts['total_cents']}, fund {amounts['fund_cents']}, self-pay "
                                     f"{amounts['self_pay_cents']} fen")
        return None

    def _confirm(self, row: dict, owner: str) -> None:
        try:
            result = self._city(row, "confirm")
        except RetryableError as err:
            return self._retry(row, owner, "confirm", err)
        except EsscError as err:  # it may have been applied (or half): undo it
            cause = err if _refused(err) else SettlementAborted(f"confirm: {err.code}", cause=err.code)
            return self._compensate(row, owner, cause)
        self.store.transition(row["id"], owner, st.SETTLED, "settled", next_attempt_at=None, leg_started_at=None,
                              error=None, **self._amounts(result),
                              detail=f"fund {result['fund_cents']}, self-pay {result['self_pay_cents']} fen")
        return None

    def _reverse(self, row: dict, owner: str) -> None:
        sid = row["id"]
        try:
            result = self._city(row, "reverse")
        except RetryableError as err:
            return self._retry(row, owner, "reverse", err)
        except EsscError as err:
            self.store.transition(sid, owner, st.REVERSAL_FAILED, "reversal_failed", next_attempt_at=None,
                                  detail=f"reverse: {err.code}")
            log.error("settlement %s: city %s refused the reversal (%s): an operator must look", sid, row["city"],
                      err.code)
            return None
        self.store.transition(sid, owner, st.REVERSED, "reversed", next_attempt_at=None, leg_started_at=None,
                              city_ref=result.get("city_ref") or row["city_ref"],
                              detail="reversed at the city" + (f" ({row['error']['code']})" if row["error"] else ""))
        return None

    def _compensate(self, row: dict, owner: str, cause: EsscError, **fields) -> None:
        """The bill cannot go on: record why and reverse it at the city now."""
        now = time.time()
        cause.details.setdefault("settlement_id", row["id"])
        if not self.store.transition(row["id"], owner, st.REVERSING, "compensating", release=False,
                                     error=cause.to_dict(), next_attempt_at=now, leg_started_at=now,
                                     detail=f"{row['state']}: {cause.code}; reversing", **fields):
            return
        log.info("settlement %s: %s during %s; reversing", row["id"], cause.code, row["state"])
        self._reverse(self.store.get(row["id"]), owner)  # type: ignore[arg-type]

    def _retry(self, row: dict, owner: str, action: str, err: RetryableError) -> None:
        """An unknown outcome: the same (idempotent) call again later - or, for a pre-settlement or
        a confirmation past its deadline, a reversal."""
        now = time.time()
        started = row["leg_started_at"] or row["created_at"]
        if action != "reverse" and now - started >= self.config.settlement_leg_deadline_s:
            cause = SettlementAborted(f"{action}: still {err.code} after {now - started:.0f}s", cause=err.code)
            return self._compensate(row, owner, cause)
        delay = self.retry_delay(row["runs"], err.retry_after)
        if self.store.transition(row["id"], owner, row["state"], f"{action}_retry", next_attempt_at=now + delay,
                                 detail=f"{action}: {err.code}; retry in {delay:.1f}s"):
            self._schedule(row["id"], delay)
        return None

    def _schedule(self, sid: str, delay: float) -> None:
        if self.enqueue is not None:
            try:
                self.enqueue(sid, delay)
            except Exception:  # the sweeper will find it: it is in the database
                log.exception("settlement %s: could not enqueue the retry", sid)

    # -- views -----------------------------------------------------------------------------------
    @staticmethod
    def view(row: dict) -> dict:
        """The settlement as its party sees it (no personal data: the pairwise person number)."""
        out = {"id": row["id"], "state": row["state"], "final": row["state"] in st.FINAL,
               "idempotency_key": row["idempotency_key"], "busi_type": row["busi_type"], "city": row["city"],
               "hospital": {"code": row["hospital_code"], "name": row["hospital_name"]}, "essc_no": row["essc_no"],
               "sign_level": row["sign_level"], "total_cents": row["total_cents"], "fund_cents": row["fund_cents"],
               "self_pay_cents": row["self_pay_cents"], "city_ref": row["city_ref"], "created_at": row["created_at"],
               "updated_at": row["updated_at"]}
        if row["state"] in st.LEGS:
            out["next_attempt_at"] = row["next_attempt_at"]
        if row["state"] == st.PRE_SETTLED:
            out["hold_until"] = row["next_attempt_at"]
        if row["error"]:
            out["error"] = row["error"]
        return out

    def failure(self, row: dict) -> EsscError | None:
        """The error a request on ``row`` answers with: why the platform failed or reversed it."""
        if row["error"] and row["state"] in (st.FAILED, st.REVERSING, st.REVERSED, st.REVERSAL_FAILED):
            return stored_error(row["error"], settlement_id=row["id"], settlement_state=row["state"])
        return None
