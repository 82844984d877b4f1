"""The activation flow: one citizen's e-SSC activation as a durable state machine.

The flow follows the citizen (docs/domain.md): choose the city and agree, wait while the
card record is read, THEN face recognition plus an identity check, then the credential.

* :meth:`ActivationService.submit` records consent and the chosen city and reads the card
  record (``awaiting_verification`` when it was read); it never returns a credential. Anything
  that must wait (record not synced, city unavailable) is handed to the queue with a delay
  (exponential backoff with jitter, the city's ``retry_after`` honoured, a cap, and a maximum
  age after which the activation expires).
* :meth:`ActivationService.verify` runs face + second factor at the city and, when they pass,
  activates: the credential goes to the caller of that request only (and later to the
  activation's own channel on reading it). The secrets of a check are used once and never
  stored. Failed checks are counted per citizen + city across channels; at
  ``max_identity_attempts`` the citizen is locked out for ``identity_lockout_s``.
* :meth:`ActivationService.run` is what a queue worker calls: it claims the activation (a
  lease), resumes from the last completed step and records every transition.
"""
from __future__ import annotations

import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from essc.core.errors import (
    CardStatusAbnormal,
    CityNotOpened,
    EsscError,
    IdentityMismatch,
    InvalidInput,
    RecordNotSynced,
    RetryableError,
    ReverifyError,
    UpstreamUnavailable,
)
from essc.core.idnumber import validate_id_number
from essc.core.masking import get_logger, mask_id
from essc.core.naming import with_deprecated
from essc.core.registry import Registry
from essc.core.resilience import REJECT_REASONS
from essc.core.schemas import validator

from . import states
from .config import ServiceConfig
from .errors import ActivationConflict, ActivationNotFound, CityBusy, IdentityLocked, VerificationBusy
from .names import check_name, string_rule
from .pool import FlowPool, answer_within
from .sealing import Sealer
from .store import Store

log = get_logger("essc.service")

Enqueue = Callable[[str, float], None]  # (activation id, delay in seconds)


_HOST = socket.gethostname()


def worker_id() -> str:
    """``host:pid:thread``: who holds a lease (the host name is read once: a system call)."""
    return f"{_HOST}:{os.getpid()}:{threading.get_ident() % 100000}"


class ActivationService:
    def __init__(self, registry: Registry, store: Store, config: ServiceConfig, *,
                 enqueue: Enqueue | None = None, rng: random.Random | None = None,
                 pool: FlowPool | None = None) -> None:
        self.registry = registry
        self.store = store
        self.config = config
        self.sealer = Sealer(config.resolved_secret())
        self.enqueue = enqueue
        #: with a pool, city steps run there and the API waits at most config.answer_budget_s
        #: for them; without one (tests, scripts) they run in the caller's thread
        self.pool = pool
        self._rng = rng or random.Random()
        props = validator("identity_check").schema["properties"]
        self._identity_rules = {name: string_rule(props[name]) for name in ("face_token", "code")}
        self._channel_re = re.compile(validator("activation_request").schema["properties"]["channel"]["pattern"])

    # -- entry points --------------------------------------------------------------------
    def submit(self, *, city: str, id_number: str, name: str, consent: bool, channel: str) -> dict:
        """Start the channel's activation of the citizen in ``city`` (or restart it with this
        data: see :meth:`Store.create`) and read the card record once now."""
        if consent is not True:
            raise InvalidInput("the citizen must agree to the terms (consent: true)", field="consent", rule="const")
        try:
            self.registry.city(city)  # no city (unknown, abolished, a district) -> InvalidInput
        except CityNotOpened:
            pass  # a city of the country no plugin serves: recorded, and ends city_not_opened without a call
        self._check_channel(channel)
        id_number = validate_id_number(id_number, field="id_number")
        name = check_name(name, field="name")
        sealed = self.sealer.seal({"id_number": id_number, "name": name})
        if self.pool is not None:
            self.pool.check()  # full: 503 before anything is recorded
        wait = self.registry.saturated(city)
        if wait is not None:  # the city's bulkhead is full: 429, not a queue without bound
            raise CityBusy(f"city {city} has as many calls in flight as it takes", retry_after=wait, city=city)
        owner = worker_id()
        act, outcome = self.store.create(citizen_key=self.sealer.citizen_key(id_number), city=city,
                                         channel=channel, id_hint=mask_id(id_number), sealed=sealed,
                                         owner=owner, lease_s=self.config.lease_s)
        log.info("activation %s %s for %s in %s via %s", act["id"], outcome, act["id_hint"], city, channel)
        if outcome == "found":
            return act
        if self.pool is None:
            return self._run_claimed(act, owner)
        done, result = answer_within(self.pool.run(self._run_claimed, act, owner), self.config.answer_budget_s)
        return result if done else self.store.present(act["id"])  # slower than the budget: it goes on

    def verify(self, act_id: str, *, channel: str, face_token: str, sms_code: str | None = None,
               password: str | None = None) -> tuple[dict, dict | None]:
        """Face liveness + one second factor for the channel's activation ``act_id``; on success
        the credential is issued. Returns ``(activation, credential issued by this call or None)``.

        Raises :class:`ActivationNotFound` (not this channel's), :class:`IdentityLocked`
        (``retry_after``), :class:`IdentityMismatch` (``attempts_left``), :class:`VerificationBusy`,
        :class:`ActivationConflict` (not waiting for a check), :class:`InvalidInput`, or the
        city's retryable error (nothing recorded: verify again later)."""
        self._check_channel(channel)
        factor, code = self._second_factor(face_token, sms_code, password)
        owner = worker_id()
        # the usual case in one transaction: the channel's activation, waiting for a check, held by no
        # one, claimed, and its citizen + city held for the check; when it is not that, _not_claimed
        # says why (as it is: not found, locked, conflict, busy)
        act, held = self.store.claim_check(act_id, owner, self.config.lease_s, channel=channel)
        if act is None:
            raise self._not_claimed(act_id, channel)
        city, key = act["city"], act["citizen_key"]
        if not held:
            ident = self.store.identity(key, city) or {}
            if (ident.get("locked_until") or 0) > time.time():
                raise self._locked(ident["locked_until"] - time.time())
            raise VerificationBusy("another identity check of this citizen in this city is running", retry_after=1.0)
        if self.pool is not None:
            try:
                self.pool.check()
            except EsscError:
                self.store.identity_end(key, city, passed=None, max_failures=self.config.max_identity_attempts,
                                        lockout_s=self.config.identity_lockout_s)
                self.store.release(act_id, owner)
                raise
        if self.pool is None:
            return self._check_identity(act, owner, factor, face_token, code)
        # the secrets live only in this closure, never in the database; the check goes on if the
        # city is slower than the budget, and its outcome is recorded on the activation
        future = self.pool.run(self._check_identity_logged, act, owner, factor, face_token, code)
        done, result = answer_within(future, self.config.answer_budget_s)
        if done:
            return result
        act = self.store.present(act_id)
        if act["status"] == states.ACTIVATED:  # this check ended right after the budget:
            return act, act["credential"]  # the credential is this request's (it held the activation)
        return act, None

    def _not_claimed(self, act_id: str, channel: str) -> EsscError:
        """Why the channel's verification of ``act_id`` could not take it, checked in this order:
        not the channel's (404), the citizen locked out, not waiting for a check (409), held."""
        act = self.store.get(act_id)
        if act is None or act["channel"] != channel:
            return ActivationNotFound("no activation with this id")
        ident = self.store.identity(act["citizen_key"], act["city"])
        now = time.time()
        if ident and ident["locked_until"] and ident["locked_until"] > now:
            return self._locked(ident["locked_until"] - now)
        if act["status"] != states.AWAITING_VERIFICATION:
            why = {states.ACTIVATED: "the activation is already activated (read it with GET)",
                   states.VERIFIED: "the identity check already passed; the credential is being issued"}
            return ActivationConflict(why.get(act["status"], f"no card record waits for a check (status "
                                                                 f"{act['status']}; submit again to re-read it)"),
                                      activation_status=act["status"])
        return VerificationBusy("this activation is being verified or re-read right now", retry_after=1.0)

    def _check_identity_logged(self, act: dict, owner: str, factor: str, face_token: str, code: str
                               ) -> tuple[dict, dict | None]:
        try:
            return self._check_identity(act, owner, factor, face_token, code)
        except EsscError:
            raise  # recorded on the activation already; the caller (if still waiting) reports it
        except Exception:
            log.exception("activation %s: unexpected error during the identity check", act["id"])
            raise

    def _check_identity(self, act: dict, owner: str, factor: str, face_token: str, code: str
                        ) -> tuple[dict, dict | None]:
        act_id, city, key = act["id"], act["city"], act["citizen_key"]
        pii = self.sealer.unseal(act["sealed"])
        passed: bool | None = None
        try:
            verification = self.registry.call(city, "verify_identity", {
                "aac002": pii["id_number"], "aab301": city, "face_token": face_token, "factor": factor,
                "code": code})
            passed = True
        except IdentityMismatch as err:
            passed = False
            return self._mismatch(act, owner, err), None
        except RetryableError as err:  # nothing learnt: the citizen verifies again later
            self.store.transition(act_id, owner, states.AWAITING_VERIFICATION, "verification_unavailable",
                                  release=True, error=err.to_dict(), detail=f"verify_identity: {err.code}")
            raise
        except EsscError as err:
            return self._failed(act, owner, "verify_identity", err) or self.store.present(act_id), None
        except BaseException:
            self.store.release(act_id, owner)
            raise
        finally:
            if passed is None:  # no outcome: release the hold (a mismatch is recorded by _mismatch, a pass below)
                self.store.identity_end(key, city, passed=None, max_failures=self.config.max_identity_attempts,
                                        lockout_s=self.config.identity_lockout_s)
        # runnable from now on: if this process dies, the sweeper finds it once the lease ends; the
        # passed check is recorded in the same transaction
        verified = self.store.transition(act_id, owner, states.VERIFIED, "identity_verified",
                                         next_attempt_at=time.time(), detail=f"face + {verification['factor']}",
                                         verified=self.sealer.seal({"verify_id": verification["verify_id"]}),
                                         check_passed=(key, city))
        if verified is None:
            raise ActivationConflict("the activation was resubmitted during the identity check; verify again")
        act = self._run_claimed(verified, owner, pii=pii, verify_id=verification["verify_id"])
        return act, act["credential"] if act["status"] == states.ACTIVATED else None

    def _mismatch(self, act: dict, owner: str, err: IdentityMismatch) -> dict:
        limit = self.config.max_identity_attempts
        row = self.store.identity_end(act["citizen_key"], act["city"], passed=False, max_failures=limit,
                                      lockout_s=self.config.identity_lockout_s)
        if row["failures"] == 0:  # this failure reached the limit: the count restarts after the lockout
            locked = self._locked(row["locked_until"] - time.time())
            self.store.transition(act["id"], owner, states.IDENTITY_FAILED, "identity_locked", release=True,
                                  error=locked.to_dict(), next_attempt_at=None,
                                  detail=f"{limit} failed checks: locked for {self.config.identity_lockout_s:g}s")
            log.warning("activation %s: %s locked out in %s after %d failed identity checks", act["id"],
                        act["id_hint"], act["city"], limit)
            raise locked from None
        left = limit - row["failures"]
        err.details["attempts_left"] = left
        self.store.transition(act["id"], owner, states.AWAITING_VERIFICATION, "identity_mismatch", release=True,
                              error=err.to_dict(), detail=f"failed check {row['failures']} of {limit}")
        raise err

    def _locked(self, remaining: float) -> IdentityLocked:
        return IdentityLocked(f"locked for another {remaining:.0f}s", retry_after=round(max(remaining, 1.0), 1))

    def _check_channel(self, channel: str) -> None:
        if not isinstance(channel, str) or not self._channel_re.match(channel):
            raise InvalidInput("a channel name is 2-40 of a-z, 0-9, '_', '.', '-'", field="channel", rule="pattern")

    def _second_factor(self, face_token: str, sms_code: str | None, password: str | None) -> tuple[str, str]:
        """``(factor, code)`` after checking them against the contract's identity check."""
        if (sms_code is None) == (password is None):
            raise InvalidInput("give exactly one second factor: sms_code or password", field="verification",
                               rule="one-of")
        factor, code, field = ("sms", sms_code, "sms_code") if sms_code is not None else (
            "password", password, "password")
        rules = self._identity_rules
        if not isinstance(face_token, str) or not rules["face_token"](face_token):
            raise InvalidInput("the face token does not have the contract's form", field="face_token",
                               rule="identity_check")
        if not isinstance(code, str) or not rules["code"](code):
            raise InvalidInput(f"the {field} must be 6 digits", field=field, rule="pattern")
        return factor, code

    def run(self, act_id: str, owner: str | None = None) -> dict | None:
        """Claim the activation and take it as far as it can go now (None: there is no such activation)."""
        owner = owner or worker_id()
        act = self.store.claim(act_id, owner, self.config.lease_s)
        if act is None:
            return self.store.get(act_id)
        return self._run_claimed(act, owner)

    def _run_claimed(self, act: dict, owner: str, *, pii: dict | None = None, verify_id: str | None = None) -> dict:
        """Take the claimed activation as far as it goes now; the activation as it is then."""
        act_id = act["id"]
        try:
            now = self._steps(act, owner, pii, verify_id)
        except Exception:  # a bug, not a city failure: keep the activation, try later
            log.exception("activation %s: unexpected error; retrying later", act_id)
            now = self.store.transition(act_id, owner, act["status"], "internal_error", release=True,
                                        next_attempt_at=time.time() + self.config.retry_cap_s)
            self._schedule(act_id, self.config.retry_cap_s)
        return now if now is not None else self.store.present(act_id)  # None: the lease was lost meanwhile

    # -- the steps -------------------------------------------------------------------------
    def _steps(self, act: dict, owner: str, pii: dict | None = None, verify_id: str | None = None) -> dict | None:
        """The card read (before the identity check) or the credential (after it). Returns the
        activation after its transition (None if the lease was lost). ``pii`` and ``verify_id``:
        the sealed values already opened by the caller."""
        act_id, city = act["id"], act["city"]
        pii = pii or self.sealer.unseal(act["sealed"])
        ident = {"aac002": pii["id_number"], "aab301": city}
        step = "read_card"
        try:
            if act["verified"] is None:
                record = self.registry.call(city, "read_card", {**ident, "aac003": pii["name"]})
                status = record["aaz502"]
                if status != "normal":
                    raise CardStatusAbnormal(status=status, city=city)
                return self.store.transition(act_id, owner, states.AWAITING_VERIFICATION, "card_read", release=True,
                                             detail="card status normal", card_status=status, next_attempt_at=None,
                                             error=None)
            step = "activate"
            verify_id = verify_id or self.sealer.unseal(act["verified"])["verify_id"]
            credential = self.registry.call(city, "activate", {**ident, "verify_id": verify_id,
                                                                "channel": act["channel"]})
            done = self.store.transition(act_id, owner, states.ACTIVATED, "activated", release=True,
                                         detail=f"sign level {credential['sign_level']}", credential=credential,
                                         next_attempt_at=None, error=None, verified=None)
            if done is None:
                log.warning("activation %s: lease lost before the credential was stored", act_id)
            return done
        except EsscError as err:
            return self._failed(act, owner, step, err)

    def _failed(self, act: dict, owner: str, step: str, err: EsscError) -> dict | None:
        """Record the step's failure (retry later, check again, or a final state): the activation
        after it, None if the lease was lost."""
        act_id, now = act["id"], time.time()
        error = err.to_dict()
        deadline = act["created_at"] + self.config.max_age_s
        if isinstance(err, RetryableError):
            if now >= deadline:
                return self.store.transition(act_id, owner, states.EXPIRED, "expired", release=True,
                                             next_attempt_at=None, error=error,
                                             detail=f"still {err.code} after {self.config.max_age_s:g}s")
            refused = isinstance(err, UpstreamUnavailable) and err.reason in REJECT_REASONS
            delay = min(self.retry_delay(act["runs"], err.retry_after, refused=refused), max(deadline - now, 0.0))
            status = states.PENDING_SYNC if isinstance(err, RecordNotSynced) else states.PENDING_UPSTREAM
            pending = self.store.transition(act_id, owner, status, status, release=True, next_attempt_at=now + delay,
                                            detail=f"{step}: {err.code}; retry in {delay:.1f}s", error=error)
            self._schedule(act_id, delay)
            return pending
        if isinstance(err, ReverifyError):  # the city no longer accepts the check (e.g. its ticket expired)
            return self.store.transition(act_id, owner, states.AWAITING_VERIFICATION, "reverify", release=True,
                                         next_attempt_at=None, error=error, verified=None, detail=f"{step}: {err.code}")
        if isinstance(err, CityNotOpened):
            status = states.CITY_NOT_OPENED
        elif isinstance(err, CardStatusAbnormal):
            status = states.CARD_STATUS_ABNORMAL
        else:
            status = states.FAILED
        extra: dict[str, Any] = {"card_status": err.status} if isinstance(err, CardStatusAbnormal) else {}
        return self.store.transition(act_id, owner, status, status, release=True, next_attempt_at=None, error=error,
                                     verified=None, detail=f"{step}: {err.code}", **extra)

    def retry_delay(self, runs: int, retry_after: float | None, *, refused: bool = False) -> float:
        """Seconds until the next try: the city's hint if it gave one, else exponential
        backoff with jitter; never more than the cap.

        ``refused``: the framework itself refused the call (the city's bulkhead was full or its
        breaker open: core/resilience.py), so the hint is ours, a floor, and the backoff still
        grows with the runs. A city that hangs holds its bulkhead until its calls time out; its
        waiting activations retried every 1 s hint, each try a claim, a refusal and a write, and
        that churn took the CPU the healthy cities needed (issue 10, ``isolation``)."""
        cap = self.config.retry_cap_s
        if retry_after is not None and not refused:
            return min(cap, retry_after) + self._rng.uniform(0, min(0.2, 0.05 * retry_after))
        backoff = min(cap, self.config.retry_base_s * 2 ** max(runs - 1, 0)) * self._rng.uniform(0.5, 1.0)
        if retry_after is None:
            return backoff
        return max(min(cap, retry_after) + self._rng.uniform(0, min(0.2, 0.05 * retry_after)), backoff)

    def _schedule(self, act_id: str, delay: float) -> None:
        if self.enqueue is not None:
            try:
                self.enqueue(act_id, delay)
            except Exception:  # the sweeper will find it: it is in the database
                log.exception("activation %s: could not enqueue the retry", act_id)

    # -- views ---------------------------------------------------------------------------
    def view(self, act: dict, *, credential: bool = False) -> dict:
        """The public representation (no personal data but the masked ID hint). The credential
        only when asked for: to the channel holding the activation, never on a submission."""
        out = {"id": act["id"], "status": act["status"], "city": act["city"], "channel": act["channel"],
               "id_hint": act["id_hint"], "created_at": act["created_at"], "updated_at": act["updated_at"],
               "final": act["status"] in states.FINAL}
        if credential and act["status"] == states.ACTIVATED:
            out["credential"] = with_deprecated("credential", act["credential"])  # 1.0 names too, for channels
        if act["status"] in states.PENDING:
            out["next_attempt_at"] = act["next_attempt_at"]
        if act.get("card_status"):
            out["card_status"] = act["card_status"]
        if act["error"] and act["status"] != states.ACTIVATED:
            out["error"] = act["error"]
        return out

