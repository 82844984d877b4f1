"""Per-city bulkheads and circuit breakers: a city that hangs or fails never starves the others.

Every city served by a loaded plugin has one :class:`CityGuard` (made by :class:`Resilience`,
held by the registry beside the city's adapter), which :meth:`Registry.call
<essc.core.registry.Registry.call>` enters before it invokes the adapter and leaves afterwards:

* **bulkhead** - at most ``limit`` calls to the city in flight at once (the manifest's
  ``concurrency.max_in_flight``, else ``Settings.bulkhead_max_in_flight``, 32). A call beyond it
  waits up to ``Settings.bulkhead_wait_s`` (default 0.25 s; 0: it fails at once) for a slot, then fails with
  :class:`~essc.core.errors.UpstreamUnavailable` ``bulkhead_full``. A hanging city holds at most
  ``limit`` threads. New work for a city (:meth:`CityGuard.saturated`, the API's 429) is refused
  while the bulkhead is full and no call may wait, or as many calls wait as it has slots.
* **circuit breaker** - ``closed`` while the city answers. ``Settings.breaker_failures`` (5)
  consecutive upstream failures (``UpstreamUnavailable`` of reason :data:`TRIP_REASONS`), counted
  while they come within ``breaker_window_s`` (60 s) of the first, open it: calls then fail at once
  with ``circuit_open`` and ``retry_after`` = seconds until the cool-down ends, without touching the
  city. After ``breaker_cooldown_s`` (10 s) it is ``half_open``: ONE call goes through as a probe
  (the others still fail fast); a success closes the breaker, a failure re-opens it with the
  cool-down doubled (up to ``breaker_cooldown_max_s``, 300 s). An answer of the city - a response
  or a business error - is a success; a contract violation or a malformed answer counts neither
  way (the breaker guards against an unreachable city, not a broken plugin).

Thread-safe: each guard has one lock, taken once on entry and once on exit (no sleeping; a
call only blocks when ``bulkhead_wait_s`` > 0, on a condition, for at most that long). Breaker
time comes from an injectable clock (``Registry(settings, clock=...)``), so tests never wait.
:meth:`Resilience.snapshot` reports every guarded city (``Registry.resilience_snapshot()``, the
service's Prometheus metrics ``essc_city_*``).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ContractViolation, EsscError, UpstreamUnavailable

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["CLOSED", "OPEN", "HALF_OPEN", "STATES", "TRIP_REASONS", "REJECT_REASONS", "BUSY_RETRY_AFTER_S",
           "Clock", "Policy", "CityGuard", "Resilience", "outcome_of"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
#: the breaker's states, as metrics label them
STATES = (CLOSED, OPEN, HALF_OPEN)
#: upstream failures that count towards opening a breaker
TRIP_REASONS = frozenset({"timeout", "connection", "http_5xx", "rate_limited"})
#: reasons of the calls a guard refuses (the city is not called)
REJECT_REASONS = ("bulkhead_full", "circuit_open")
#: retry hint (seconds) of a call refused because the bulkhead is full or the half-open probe is out
BUSY_RETRY_AFTER_S = 1.0

#: seconds on a monotonic scale (``time.monotonic`` unless a test injects its own)
Clock = Callable[[], float]

#: outcomes of a call for the breaker (see :func:`outcome_of`)
SUCCESS, FAILURE, NEUTRAL = 0, 1, 2


def outcome_of(error: BaseException | None) -> int:
    """``FAILURE`` for an upstream failure of :data:`TRIP_REASONS`; ``NEUTRAL`` for a contract
    violation, another upstream reason (e.g. ``malformed_response``) or an untyped exception;
    ``SUCCESS`` for a response or any other typed error (the city answered: a business error)."""
    if error is None:
        return SUCCESS
    if isinstance(error, UpstreamUnavailable):
        return FAILURE if error.details.get("reason") in TRIP_REASONS else NEUTRAL
    if isinstance(error, ContractViolation) or not isinstance(error, EsscError):
        return NEUTRAL
    return SUCCESS


class Peers(Protocol):
    """What the processes that guard the same cities share (several API processes:
    essc.service.processes.SharedInFlight, in memory they share).

    The bulkhead: calls in flight to each city in the other processes. Only the process itself
    changes its own count; the sum is read without a lock, so two processes admitting a call at
    the same instant may exceed the limit by one each.

    The breaker: until when a process opened the city's breaker (``clock`` time, which must be
    the same in every process: ``time.monotonic`` is). A process whose breaker is closed and sees
    a later time adopts it: it stops calling the city too, and after the cool-down sends its own
    half-open probe (at most one per process, not one per call). A probe that succeeds clears it."""

    def covers(self, city: str) -> bool: ...

    def others(self, city: str) -> int: ...

    def add(self, city: str, delta: int) -> None: ...

    def open_until(self, city: str) -> float: ...

    def set_open_until(self, city: str, until: float) -> None: ...


@dataclass(frozen=True)
class Policy:
    """The knobs (``Settings`` fields ``bulkhead_*`` / ``breaker_*``)."""

    max_in_flight: int = 32
    wait_s: float = 0.25
    failures: int = 5  #: 0 disables the breaker
    window_s: float = 60.0
    cooldown_s: float = 10.0
    cooldown_max_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise ValueError(f"bulkhead max_in_flight must be at least 1, got {self.max_in_flight}")
        for name in ("wait_s", "failures", "window_s", "cooldown_s", "cooldown_max_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"resilience {name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(settings.bulkhead_max_in_flight, settings.bulkhead_wait_s, settings.breaker_failures,
                   settings.breaker_window_s, settings.breaker_cooldown_s, settings.breaker_cooldown_max_s)


class CityGuard:
    """One city's bulkhead and breaker, under one lock."""

    __slots__ = ("city", "limit", "policy", "clock", "peers", "_cond", "state", "in_flight", "waiting", "failures",
                 "_streak_at", "_opened_at", "cooldown_s", "_probing", "rejected", "opened")

    def __init__(self, city: str, limit: int, policy: Policy, clock: Clock, peers: Peers | None = None) -> None:
        if limit < 1:
            raise ValueError(f"city {city}: max_in_flight must be at least 1, got {limit}")
        self.city = city
        self.limit = limit
        self.policy = policy
        self.clock = clock
        #: the other processes' calls in flight to this city, when they share its bulkhead
        self.peers = peers
        self._cond = threading.Condition(threading.Lock())
        self.state = CLOSED
        self.in_flight = 0
        self.waiting = 0  #: calls of this process waiting for a slot (``bulkhead_wait_s``)
        self.failures = 0  #: consecutive upstream failures in the current window
        self._streak_at = 0.0  #: when the first of them came
        self._opened_at = 0.0
        self.cooldown_s = policy.cooldown_s  #: the current cool-down (grows after failed probes)
        self._probing = False  #: the half-open probe is in flight
        self.rejected = dict.fromkeys(REJECT_REASONS, 0)
        self.opened = 0  #: times the breaker opened

    # -- the call path -----------------------------------------------------------------
    def enter(self) -> bool:
        """Admit one call (take a slot), returning whether it is the half-open probe; or raise
        :class:`UpstreamUnavailable` ``circuit_open`` / ``bulkhead_full`` (no slot taken)."""
        with self._cond:
            reason, retry_after = self._refusal()
            if reason is None:
                self.in_flight += 1
                if self.peers is not None:
                    self.peers.add(self.city, 1)
                if self.state == HALF_OPEN:
                    self._probing = True
                    return True
                return False
            self.rejected[reason] += 1
        detail = (f"city {self.city}: circuit breaker open after repeated upstream failures" if reason == "circuit_open"
                  else f"city {self.city}: {self.limit} calls already in flight (bulkhead full)")
        raise UpstreamUnavailable(detail, reason=reason, retry_after=round(retry_after, 3), city=self.city)

    def _refusal(self) -> tuple[str | None, float]:
        """``(None, 0)`` when a call may go now, else the refusal's reason and retry hint. Holds the lock;
        may wait on the condition (real time, at most ``wait_s``) for a slot."""
        deadline: float | None = None
        while True:
            if self.state == CLOSED and self.peers is not None:
                self._adopt(self.clock())
            if self.state != CLOSED:
                if self.state == OPEN:
                    left = self._opened_at + self.cooldown_s - self.clock()
                    if left > 0:
                        return "circuit_open", left
                    self.state = HALF_OPEN
                if self._probing:
                    return "circuit_open", BUSY_RETRY_AFTER_S
            if not self.full():
                return None, 0.0
            if self.policy.wait_s <= 0:
                return "bulkhead_full", BUSY_RETRY_AFTER_S
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.policy.wait_s
            if now >= deadline:
                return "bulkhead_full", BUSY_RETRY_AFTER_S
            # then check everything again: the breaker may have moved (a slot freed by another
            # process wakes nobody here: look again every 10 ms)
            self.waiting += 1
            try:
                self._cond.wait(deadline - now if self.peers is None else min(deadline - now, 0.01))
            finally:
                self.waiting -= 1

    def full(self) -> bool:
        """Every slot taken (by this process, and by the others sharing the bulkhead)."""
        others = self.peers.others(self.city) if self.peers is not None else 0
        return self.in_flight + others >= self.limit

    def saturated(self) -> bool:
        """New work for the city should be refused: every slot is taken and no call may wait for
        one (``bulkhead_wait_s`` 0), or as many calls as there are slots wait already (a queue
        as deep as the bulkhead, each call waiting at most ``bulkhead_wait_s``)."""
        return self.full() and (self.policy.wait_s <= 0 or self.waiting >= self.limit)

    def leave(self, probe: bool, error: BaseException | None) -> None:
        """Free the slot and feed the call's outcome (its error, ``None`` for a response) to the breaker."""
        kind = outcome_of(error)
        with self._cond:
            self.in_flight -= 1
            if self.peers is not None:
                self.peers.add(self.city, -1)
            if self.policy.wait_s > 0:
                self._cond.notify()
            if probe:
                self._probing = False
                if kind == FAILURE:
                    self._open(self.clock(), min(self.cooldown_s * 2, max(self.policy.cooldown_max_s,
                                                                          self.policy.cooldown_s)))
                elif kind == SUCCESS:
                    self.state, self.failures, self.cooldown_s = CLOSED, 0, self.policy.cooldown_s
                    if self.peers is not None:
                        self.peers.set_open_until(self.city, 0.0)  # the city answers: for every process
                # NEUTRAL: still half-open, the next call probes
            elif self.state == CLOSED:  # late outcomes of calls let in before the breaker opened do not count
                if kind == FAILURE and self.policy.failures > 0:
                    now = self.clock()
                    if self.failures == 0 or now - self._streak_at > self.policy.window_s:
                        self.failures, self._streak_at = 1, now
                    else:
                        self.failures += 1
                    if self.failures >= self.policy.failures:
                        self._open(now, self.policy.cooldown_s)
                elif kind == SUCCESS:
                    self.failures = 0

    def _open(self, now: float, cooldown_s: float) -> None:
        self.state, self._opened_at, self.cooldown_s, self.failures = OPEN, now, cooldown_s, 0
        self.opened += 1
        if self.peers is not None:
            self.peers.set_open_until(self.city, now + cooldown_s)

    def _adopt(self, now: float) -> None:
        """Closed here, but another process opened the city's breaker (until a later time): open it
        here too, for the rest of that cool-down (not counted in ``opened``: it opened elsewhere)."""
        assert self.peers is not None
        until = self.peers.open_until(self.city)
        if until > now:
            # the time left as it is; the cool-down at least the policy's (a failed probe doubles it)
            self.cooldown_s = max(until - now, self.policy.cooldown_s)
            self.state, self._opened_at, self.failures = OPEN, until - self.cooldown_s, 0

    # -- introspection -----------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """``breaker`` (``closed``/``open``/``half_open``: an open breaker whose cool-down is over
        reads ``half_open``), ``in_flight``, ``limit``, ``rejected`` (total) and ``rejected_by``
        reason, ``opened`` (times), ``failures`` (consecutive, now), ``retry_after`` (seconds until
        an open breaker lets a probe through, else 0)."""
        with self._cond:
            if self.state == CLOSED and self.peers is not None:
                self._adopt(self.clock())
            state, retry_after = self.state, 0.0
            if state == OPEN:
                retry_after = self._opened_at + self.cooldown_s - self.clock()
                if retry_after <= 0:
                    state, retry_after = HALF_OPEN, 0.0
            in_flight = self.in_flight + (self.peers.others(self.city) if self.peers is not None else 0)
            return {"breaker": state, "in_flight": in_flight, "limit": self.limit,
                    "rejected": sum(self.rejected.values()), "rejected_by": dict(self.rejected),
                    "opened": self.opened, "failures": self.failures, "retry_after": round(retry_after, 3)}


class Resilience:
    """The guards of every city, made on first use with one policy and one clock."""

    def __init__(self, policy: Policy | None = None, clock: Clock | None = None, share: int = 1,
                 peers: Peers | None = None) -> None:
        if share < 1:
            raise ValueError(f"bulkhead share must be at least 1, got {share}")
        self.policy = policy or Policy()
        self.clock: Clock = clock or time.monotonic
        #: processes sharing each city's limit: with ``peers`` covering the city, the limit holds
        #: for the sum of their calls; else this one guards ceil(limit / share) slots
        self.share, self.peers = share, peers
        self._guards: dict[str, CityGuard] = {}
        self._lock = threading.Lock()

    def guard(self, city: str, max_in_flight: int | None = None) -> CityGuard:
        """The city's guard; a new one has ``max_in_flight`` slots (the manifest's), else the policy's:
        shared with the other processes through ``peers`` when they cover the city, else divided
        among the processes (rounded up)."""
        with self._lock:
            found = self._guards.get(city)
            if found is None:
                limit = max_in_flight or self.policy.max_in_flight
                peers = self.peers if self.peers is not None and self.peers.covers(city) else None
                if peers is None:
                    limit = -(-limit // self.share)
                found = self._guards[city] = CityGuard(city, limit, self.policy, self.clock, peers)
            return found

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """``{city: CityGuard.snapshot()}`` for every guarded city, by city code."""
        with self._lock:
            guards = sorted(self._guards.items())
        return {city: guard.snapshot() for city, guard in guards}
