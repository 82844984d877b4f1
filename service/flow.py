"""The activation flow: one citizen's e-SSC activation as a durable state machine.

``submit`` records consent and the chosen city, then runs the flow once in the caller's
thread; anything that must wait (record not synced, city unavailable) is handed to the
queue with a delay (exponential backoff with jitter, the city's ``retry_after`` honoured,
a cap, and a maximum age after which the activation expires). ``run`` is what a queue
worker calls: it claims the activation (a lease), resumes from the last completed step
and records every transition with the audit trail.
"""
from __future__ import annotations

import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable

from essc.core.errors import (
    CardStatusAbnormal,
    CityNotOpened,
    EsscError,
    IdentityMismatch,
    InvalidInput,
    RecordNotSynced,
    RetryableError,
)
from essc.core.idnumber import validate_id_number
from essc.core.masking import get_logger, mask_id
from essc.core.registry import Registry
from essc.core.schemas import validator

from . import states
from .config import ServiceConfig
from .sealing import Sealer
from .store import Store

log = get_logger("essc.service")

Enqueue = Callable[[str, float], None]  # (activation id, delay in seconds)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


class ActivationService:
    def __init__(self, registry: Registry, store: Store, config: ServiceConfig, *,
                 enqueue: Enqueue | None = None, rng: random.Random | None = None) -> None:
        self.registry = registry
        self.store = store
        self.config = config
        self.sealer = Sealer(config.resolved_secret())
        self.enqueue = enqueue
        self._rng = rng or random.Random()
        self._name_check = validator("card_query")
        self._channel_re = re.compile(validator("activation_request").schema["properties"]["channel"]["pattern"])

    # -- entry points --------------------------------------------------------------------
    def submit(self, *, city: str, id_number: str, name: str, consent: bool, channel: str,
               face_token: str, sms_code: str | None = None, password: str | None = None) -> dict:
        """Start (or find) the citizen's activation in ``city`` and run it once."""
        if consent is not True:
            raise InvalidInput("the citizen must agree to the terms (consent: true)", field="consent", rule="const")
        self.registry.city(city)  # unknown / abolished city -> InvalidInput
        if not isinstance(channel, str) or not self._channel_re.match(channel):
            raise InvalidInput("a channel name is 2-40 of a-z, 0-9, '_', '.', '-'", field="channel", rule="pattern")
        id_number = validate_id_number(id_number, field="id_number")
        if not self._name_check.is_valid({"aac002": id_number, "aac003": name, "aab301": city}):
            raise InvalidInput("the name must be 1-40 Chinese characters", field="name", rule="pattern")
        if bool(sms_code) == bool(password):
            raise InvalidInput("give exactly one second factor: sms_code or password", field="verification",
                               rule="one-of")
        factor, code = ("sms", sms_code) if sms_code else ("password", password)
        sealed = self.sealer.seal({"id_number": id_number, "name": name, "face_token": face_token,
                                   "factor": factor, "code": code})
        owner = worker_id()
        act, created = self.store.create(citizen_key=self.sealer.citizen_key(id_number), city=city,
                                          channel=channel, id_hint=mask_id(id_number), sealed=sealed,
                                          owner=owner, lease_s=self.config.lease_s)
        log.info("activation %s %s for %s in %s via %s", act["id"], "created" if created else "found",
                 act["id_hint"], city, channel)
        if created:
            return self._run_claimed(act, owner)
        if act["status"] in states.RUNNABLE:
            return self.run(act["id"], owner)
        return act

    def run(self, act_id: str, owner: str | None = None) -> dict:
        """Claim the activation and take it as far as it can go now."""
        owner = owner or worker_id()
        act = self.store.claim(act_id, owner, self.config.lease_s)
        if act is None:
            return self.store.get(act_id)
        return self._run_claimed(act, owner)

    def _run_claimed(self, act: dict, owner: str) -> dict:
        act_id = act["id"]
        try:
            self._steps(act, owner)
        except Exception:  # a bug, not a city failure: keep the activation, try later
            log.exception("activation %s: unexpected error; retrying later", act_id)
            self.store.transition(act_id, owner, act["status"], "internal_error", release=True,
                                  next_attempt_at=time.time() + self.config.retry_cap_s)
            self._schedule(act_id, self.config.retry_cap_s)
        return self.store.get(act_id)

    # -- the steps -------------------------------------------------------------------------
    def _steps(self, act: dict, owner: str) -> None:
        act_id, city = act["id"], act["city"]
        pii = self.sealer.unseal(act["sealed"])
        ident = {"aac002": pii["id_number"], "aab301": city}
        step = "read_card"
        try:
            if act["card_status"] is None:
                record = self.registry.call(city, "read_card", {**ident, "aac003": pii["name"]})
                status = record["aaz502"]
                if status != "normal":
                    raise CardStatusAbnormal(status=status, city=city)
                self.store.transition(act_id, owner, states.CARD_READ, "card_read", detail="card status normal",
                                      card_status=status)
            step = "verify_identity"
            verification = self.registry.call(city, "verify_identity", {
                **ident, "face_token": pii["face_token"], "factor": pii["factor"], "code": pii["code"]})
            self.store.transition(act_id, owner, states.VERIFIED, "identity_verified",
                                  detail=f"face + {verification['factor']}")
            step = "activate"
            credential = self.registry.call(city, "activate", {**ident, "verify_id": verification["verify_id"],
                                                                "channel": act["channel"]})
            if not self.store.transition(act_id, owner, states.ACTIVATED, "activated", release=True,
                                         detail=f"sign level {credential['signLevel']}", credential=credential,
                                         next_attempt_at=None, error=None):
                log.warning("activation %s: lease lost before the credential was stored", act_id)
        except EsscError as err:
            self._failed(act, owner, step, err)

    def _failed(self, act: dict, owner: str, step: str, err: EsscError) -> None:
        act_id, now = act["id"], time.time()
        error = err.to_dict()
        deadline = act["created_at"] + self.config.max_age_s
        if isinstance(err, RetryableError):
            if now >= deadline:
                self.store.transition(act_id, owner, states.EXPIRED, "expired", release=True, next_attempt_at=None,
                                      detail=f"still {err.code} after {self.config.max_age_s:g}s", error=error)
                return
            delay = min(self.retry_delay(act["runs"], err.retry_after), max(deadline - now, 0.0))
            status = states.PENDING_SYNC if isinstance(err, RecordNotSynced) else states.PENDING_UPSTREAM
            self.store.transition(act_id, owner, status, status, release=True, next_attempt_at=now + delay,
                                  detail=f"{step}: {err.code}; retry in {delay:.1f}s", error=error)
            self._schedule(act_id, delay)
            return
        if isinstance(err, IdentityMismatch):
            failures = act["identity_failures"] + 1
            final = failures >= self.config.max_identity_attempts
            self.store.transition(act_id, owner, states.IDENTITY_FAILED if final else states.AWAITING_VERIFICATION,
                                  "identity_mismatch", release=True, next_attempt_at=None, error=error,
                                  identity_failures=failures,
                                  detail=f"attempt {failures} of {self.config.max_identity_attempts}")
            return
        if isinstance(err, CityNotOpened):
            status = states.CITY_NOT_OPENED
        elif isinstance(err, CardStatusAbnormal):
            status = states.CARD_STATUS_ABNORMAL
        else:
            status = states.FAILED
        extra = {"card_status": err.status} if isinstance(err, CardStatusAbnormal) else {}
        self.store.transition(act_id, owner, status, status, release=True, next_attempt_at=None, error=error,
                              detail=f"{step}: {err.code}", **extra)

    def retry_delay(self, runs: int, retry_after: float | None) -> float:
        """Seconds until the next try: the city's hint if it gave one, else exponential
        backoff with jitter; never more than the cap."""
        cap = self.config.retry_cap_s
        if retry_after is not None:
            return min(cap, retry_after) + self._rng.uniform(0, min(0.2, 0.05 * retry_after))
        backoff = min(cap, self.config.retry_base_s * 2 ** max(runs - 1, 0))
        return backoff * self._rng.uniform(0.5, 1.0)

    def _schedule(self, act_id: str, delay: float) -> None:
        if self.enqueue is not None:
            try:
                self.enqueue(act_id, delay)
            except Exception:  # the sweeper will find it: it is in the database
                log.exception("activation %s: could not enqueue the retry", act_id)

    # -- views ---------------------------------------------------------------------------
    def view(self, act: dict) -> dict:
        """The public representation (no personal data but the masked ID hint)."""
        out = {"id": act["id"], "status": act["status"], "city": act["city"], "channel": act["channel"],
               "id_hint": act["id_hint"], "created_at": act["created_at"], "updated_at": act["updated_at"],
               "final": act["status"] in states.FINAL}
        if act["status"] == states.ACTIVATED:
            out["credential"] = act["credential"]
        if act["status"] in states.PENDING:
            out["next_attempt_at"] = act["next_attempt_at"]
        if act.get("card_status"):
            out["card_status"] = act["card_status"]
        if act["error"] and act["status"] != states.ACTIVATED:
            out["error"] = act["error"]
        return out


