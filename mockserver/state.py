"""The mock's whole mutable state, behind one lock (never held while sleeping or hanging).

One :class:`MockState` lives at ``app.extensions["essc_mock"]``: the cities and their modes,
the virtual clock, per-citizen sync progress of delayed cities, verification tickets,
issued credentials, attempt counters per (city, operation), fault rules and the journal.
"""
from __future__ import annotations

import collections
import datetime as dt
import hashlib
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from flask import current_app

from .cities import City, load_cities
from .citizens import Citizen, generate_citizens
from .clock import VirtualClock
from .faults import FaultRule, parse_rule

__all__ = ["STATE_KEY", "TICKET_TTL_S", "Credential", "MockState", "mock_state"]

#: Where the app keeps its state: ``app.extensions[STATE_KEY]``.
STATE_KEY = "essc_mock"
TICKET_TTL_S = 300
CREDENTIAL_YEARS = 10
_MAX_TICKETS = 50_000


@dataclass(frozen=True)
class Credential:
    city: str
    sign_no: str
    sign_seq: str
    level: int
    channel: str
    signed_at: dt.datetime  # virtual calendar time
    valid_until: dt.date


class MockState:
    """Thread-safe state of the mock; :meth:`reset` brings it back to the start."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)
        self.citizens_per_city = int(self.config["CITIZENS_PER_CITY"])
        self.hang_s_default = float(self.config["HANG_S_DEFAULT"])
        self._initial_cities = load_cities(self.config.get("CITIES_FILE"))
        self._lock = threading.Lock()
        self._citizen_lock = threading.Lock()
        self._citizen_cache: dict[tuple[int, str], tuple[list[Citizen], dict[str, Citizen]]] = {}
        self._release = threading.Event()
        self.generation = 0
        self.reset()

    # -- reset ---------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Back to the initial state (``seed`` or the configured SEED); releases hung requests."""
        with self._lock:
            self.generation += 1  # requests that started before a reset are not journaled
            self.seed = int(self.config["SEED"]) if seed is None else seed
            self._cities = {c.code: c for c in self._initial_cities}
            self._clock = VirtualClock(self.config["CLOCK_MODE"])
            self._sync: dict[tuple[str, str], dict[str, Any]] = {}
            self._tickets: dict[str, tuple[str, str, float]] = {}
            self._ticket_count = 0
            self._credentials: dict[tuple[str, str], Credential] = {}
            self._sign_seq: collections.Counter[str] = collections.Counter()
            self._attempts: collections.Counter[tuple[str, str]] = collections.Counter()
            self._faults: list[FaultRule] = []
            self._fault_ids = 0
            self._journal: collections.deque[dict[str, Any]] = collections.deque(maxlen=self.config["JOURNAL_MAX"])
            self._seq = 0
        with self._citizen_lock:
            self._citizen_cache.clear()
        self.release_hangs()

    def release_hangs(self) -> None:
        """Let every request that hangs now go; later hangs wait on a fresh event."""
        with self._lock:
            old, self._release = self._release, threading.Event()
        old.set()

    def hang_release(self) -> threading.Event:
        with self._lock:
            return self._release

    # -- cities --------------------------------------------------------------------------
    def cities(self) -> list[City]:
        with self._lock:
            return list(self._cities.values())

    def city(self, code: str) -> City | None:
        with self._lock:
            return self._cities.get(code)

    def add_city(self, city: City) -> None:
        with self._lock:
            if city.code in self._cities:
                raise KeyError(city.code)
            self._cities[city.code] = city

    def update_city(self, code: str, **changes: Any) -> City:
        with self._lock:
            city = self._cities[code] = replace(self._cities[code], **changes)
            return city

    # -- citizens ------------------------------------------------------------------------
    def _citizen_entry(self, city: str) -> tuple[list[Citizen], dict[str, Citizen]]:
        with self._citizen_lock:
            key = (self.seed, city)
            entry = self._citizen_cache.get(key)
            if entry is None:
                people = generate_citizens(self.seed, city, self.citizens_per_city)
                entry = self._citizen_cache[key] = (people, {c.id_number: c for c in people})
            return entry

    def citizens(self, city: str) -> list[Citizen]:
        return list(self._citizen_entry(city)[0])

    def find_citizen(self, city: str, id_number: str) -> Citizen | None:
        return self._citizen_entry(city)[1].get(id_number)

    # -- clock ---------------------------------------------------------------------------
    def now(self) -> float:
        with self._lock:
            return self._clock.now()

    def clock(self) -> dict[str, Any]:
        with self._lock:
            return self._clock.as_dict()

    def advance(self, seconds: float) -> dict[str, Any]:
        with self._lock:
            self._clock.advance(seconds)
            return self._clock.as_dict()

    def set_clock_mode(self, mode: str) -> dict[str, Any]:
        with self._lock:
            self._clock.set_mode(mode)
            return self._clock.as_dict()

    # -- delayed sync --------------------------------------------------------------------
    def sync_remaining(self, city: City, id_number: str, *, read: bool) -> int:
        """Seconds until the citizen's record is visible in a delayed city (0 = visible).
        ``read=True`` records a read_card (the first one starts the sync)."""
        with self._lock:
            now = self._clock.now()
            progress = self._sync.get((city.code, id_number))
            if progress is None:
                if not read:  # only a read_card starts the sync
                    return math.ceil(city.sync_delay_s) if city.sync_delay_s > 0 else 0
                progress = self._sync[(city.code, id_number)] = {"first": now, "reads": 0, "visible": False}
            if read:
                progress["reads"] += 1
            remaining = progress["first"] + city.sync_delay_s - now
            if (remaining <= 0 or (city.sync_after_attempts is not None
                                   and progress["reads"] >= city.sync_after_attempts)):
                progress["visible"] = True
            return 0 if progress["visible"] else max(1, math.ceil(remaining))

    # -- tickets and credentials ---------------------------------------------------------
    def issue_ticket(self, city: str, id_number: str) -> str:
        with self._lock:
            now = self._clock.now()
            if len(self._tickets) >= _MAX_TICKETS:
                self._tickets = {t: v for t, v in self._tickets.items() if v[2] > now}
            self._ticket_count += 1
            digest = hashlib.sha256(f"{self.seed}|ticket|{city}|{id_number}|{self._ticket_count}".encode())
            ticket = "VT" + digest.hexdigest()[:30].upper()
            self._tickets[ticket] = (city, id_number, now + TICKET_TTL_S)
            return ticket

    def ticket_valid(self, ticket: str, city: str, id_number: str) -> bool:
        with self._lock:
            held = self._tickets.get(ticket)
            return held is not None and held[:2] == (city, id_number) and self._clock.now() <= held[2]

    def credential(self, city: str, id_number: str, level: int, channel: str) -> Credential:
        """The citizen's credential in ``city``: issued once, the same one on every later call."""
        with self._lock:
            held = self._credentials.get((city, id_number))
            if held is not None:
                return held
            self._sign_seq[city] += 1
            signed_at = self._clock.datetime()
            try:
                valid_until = signed_at.date().replace(year=signed_at.year + CREDENTIAL_YEARS)
            except ValueError:  # 29 February
                valid_until = signed_at.date().replace(year=signed_at.year + CREDENTIAL_YEARS, day=28)
            sign_no = "ES" + hashlib.sha256(f"{self.seed}|sign|{city}|{id_number}".encode()).hexdigest()[:22].upper()
            held = self._credentials[(city, id_number)] = Credential(
                city=city, sign_no=sign_no, sign_seq=f"{self._sign_seq[city]:08d}", level=level, channel=channel,
                signed_at=signed_at, valid_until=valid_until)
            return held

    # -- attempts and faults -------------------------------------------------------------
    def count_attempt(self, city: str, operation: str) -> int:
        """Count one more request of (city, operation); return its 1-based attempt number."""
        with self._lock:
            self._attempts[(city, operation)] += 1
            return self._attempts[(city, operation)]

    def attempts(self, city: str, operation: str) -> int:
        with self._lock:
            return self._attempts[(city, operation)]

    def add_fault(self, data: Any) -> FaultRule:
        """Validate and add a fault rule (``FaultInputError`` if invalid)."""
        with self._lock:
            rule = parse_rule(data, rule_id=self._fault_ids + 1, known_cities=self._cities,
                              hang_s_default=self.hang_s_default)
            self._fault_ids += 1
            self._faults.append(rule)
            return rule

    def faults(self) -> list[FaultRule]:
        with self._lock:
            return list(self._faults)

    def clear_faults(self) -> int:
        with self._lock:
            count, self._faults = len(self._faults), []
            return count

    def match_fault(self, city: str, operation: str, attempt: int) -> FaultRule | None:
        """The first rule (in the order added) that hits this attempt, if any."""
        with self._lock:
            rules, seed = list(self._faults), self.seed
        return next((r for r in rules if r.applies(seed, city, operation, attempt)), None)

    # -- journal -------------------------------------------------------------------------
    def record(self, generation: int | None = None, **entry: Any) -> dict[str, Any] | None:
        """Append one request to the journal (callers pass masked data only). A request that
        started before the last reset (``generation`` is older) is not recorded."""
        with self._lock:
            if generation is not None and generation != self.generation:
                return None
            self._seq += 1
            entry = {"seq": self._seq, **entry}
            self._journal.append(entry)
            return entry

    def journal(self, city: str | None = None, operation: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            entries: Iterable[dict[str, Any]] = list(self._journal)
        return [dict(e) for e in entries
                if (city is None or e.get("city") == city) and (operation is None or e.get("operation") == operation)]

    def clear_journal(self) -> int:
        with self._lock:
            count = len(self._journal)
            self._journal.clear()
            return count


def mock_state() -> MockState:
    """The state of the current Flask app."""
    return current_app.extensions[STATE_KEY]
