"""The mock's whole mutable state, behind one lock (never held while sleeping or hanging).

One :class:`MockState` lives at ``app.extensions["essc_mock"]``: the cities and their modes,
the virtual clock, per-citizen sync progress of delayed cities, verification tickets,
issued credentials, card statuses and passwords changed since the reset, medical settlements
and the fund usage they hold, attempt counters per (city, operation), fault rules and the
journal.
"""
from __future__ import annotations

import collections
import datetime as dt
import hashlib
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from flask import current_app

from .cities import City, load_cities
from .citizens import Citizen, generate_citizens
from .clock import VirtualClock
from .faults import FaultRule, parse_rule

__all__ = ["STATE_KEY", "TICKET_TTL_S", "Credential", "Settlement", "MockState", "mock_state"]

#: Where the app keeps its state: ``app.extensions[STATE_KEY]``.
STATE_KEY = "essc_mock"
TICKET_TTL_S = 300
CREDENTIAL_YEARS = 10
_MAX_TICKETS = 50_000
_MAX_CITIZEN_CACHE = 2_000  #: (seed, city) entries of generated citizens kept across resets


@dataclass(frozen=True)
class Credential:
    city: str
    sign_no: str
    sign_seq: str
    level: int
    channel: str
    signed_at: dt.datetime  # virtual calendar time
    valid_until: dt.date


@dataclass(frozen=True)
class Settlement:
    """A medical settlement at a city (mockserver/settlement.py computes it)."""

    city: str
    settlement_id: str
    id_number: str
    digest: str  #: what was billed (busi_type, hospital, items): the same id with another bill conflicts
    state: str  #: pre_settled | settled | reversed
    total_cents: int
    fund_cents: int
    deductible_cents: int  #: the part of the yearly deductible the bill used
    year: int
    city_ref: str
    busi_type: str = ""
    hospital: str = ""  #: the institution code

    def result(self) -> dict[str, Any]:
        """The contract's ``settlement_result``."""
        return {"settlement_id": self.settlement_id, "state": self.state, "total_cents": self.total_cents,
                "fund_cents": self.fund_cents, "self_pay_cents": self.total_cents - self.fund_cents,
                "city_ref": self.city_ref}


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
    def reset(self, seed: int | None = None, *, keep_cities: bool = False) -> None:
        """Back to the initial state (``seed`` or the configured SEED); releases hung requests.
        ``keep_cities``: the cities added through the admin API stay (each as it was added), so
        that a suite which taught the mock its cities once can reset it before every check."""
        with self._lock:
            self.generation += 1  # requests that started before a reset are not journaled
            self.seed = int(self.config["SEED"]) if seed is None else seed
            if not keep_cities:
                self._added: dict[str, City] = {}
            self._cities = {c.code: c for c in self._initial_cities}
            self._cities.update(self._added)
            self._clock = VirtualClock(self.config["CLOCK_MODE"])
            self._sync: dict[tuple[str, str], dict[str, Any]] = {}
            self._tickets: dict[str, tuple[str, str, float, str]] = {}
            self._ticket_count = 0
            self._credentials: dict[tuple[str, str], Credential] = {}
            self._card_status: dict[tuple[str, str], str] = {}
            self._passwords: dict[tuple[str, str], str] = {}
            self._settlements: dict[tuple[str, str], Settlement] = {}
            #: (city, ID number, year) -> [deductible used, fund paid] by pre-settled and settled bills
            self._fund_usage: dict[tuple[str, str, int], list[int]] = {}
            self._sign_seq: collections.Counter[str] = collections.Counter()
            self._attempts: collections.Counter[tuple[str, str]] = collections.Counter()
            self._faults: list[FaultRule] = []
            self._fault_ids = 0
            self._journal: collections.deque[dict[str, Any]] = collections.deque(maxlen=self.config["JOURNAL_MAX"])
            self._seq = 0
        with self._citizen_lock:  # keyed by seed and city: still right after a reset, only bounded
            if len(self._citizen_cache) > _MAX_CITIZEN_CACHE:
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
            self._cities[city.code] = self._added[city.code] = city

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
        return [self._changed(c) for c in self._citizen_entry(city)[0]]

    def find_citizen(self, city: str, id_number: str) -> Citizen | None:
        citizen = self._citizen_entry(city)[1].get(id_number)
        return self._changed(citizen) if citizen is not None else None

    def _changed(self, citizen: Citizen) -> Citizen:
        """The citizen with the card status the admin or a password reset set since the reset."""
        if not self._card_status:  # the common case: nothing changed
            return citizen
        with self._lock:
            status = self._card_status.get((citizen.city, citizen.id_number))
        return citizen if status is None or status == citizen.card_status else replace(citizen, card_status=status)

    def set_card_status(self, city: str, id_number: str, status: str) -> Citizen | None:
        """Change a citizen's card status (lost, sealed, ... or back to normal); None if unknown."""
        citizen = self._citizen_entry(city)[1].get(id_number)
        if citizen is None:
            return None
        with self._lock:
            self._card_status[(city, id_number)] = status
        return self._changed(citizen)

    def password(self, city: str, id_number: str, default: str) -> str:
        """The citizen's e-SSC password: ``default`` until reset_password set another."""
        with self._lock:
            return self._passwords.get((city, id_number), default)

    def set_password(self, city: str, id_number: str, password: str) -> None:
        with self._lock:
            self._passwords[(city, id_number)] = password

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
    def issue_ticket(self, city: str, id_number: str, factor: str = "sms") -> str:
        """A verification ticket of the citizen in ``city``, valid TICKET_TTL_S virtual seconds;
        it remembers the second factor the check used (sms or password)."""
        with self._lock:
            now = self._clock.now()
            if len(self._tickets) >= _MAX_TICKETS:
                self._tickets = {t: v for t, v in self._tickets.items() if v[2] > now}
            self._ticket_count += 1
            digest = hashlib.sha256(f"{self.seed}|ticket|{city}|{id_number}|{self._ticket_count}".encode())
            ticket = "VT" + digest.hexdigest()[:30].upper()
            self._tickets[ticket] = (city, id_number, now + TICKET_TTL_S, factor)
            return ticket

    def ticket_valid(self, ticket: str, city: str, id_number: str, factor: str | None = None) -> bool:
        """Is ``ticket`` the citizen's in ``city``, unexpired and (when given) of ``factor``?"""
        with self._lock:
            held = self._tickets.get(ticket)
            return (held is not None and held[:2] == (city, id_number) and self._clock.now() <= held[2]
                    and (factor is None or held[3] == factor))

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

    def find_credential(self, city: str, id_number: str) -> Credential | None:
        with self._lock:
            return self._credentials.get((city, id_number))

    def raise_level(self, city: str, id_number: str, level: int) -> Credential:
        """The citizen's credential at sign level ``level`` (KeyError when none was issued)."""
        with self._lock:
            held = self._credentials[(city, id_number)]
            if held.level != level:
                held = self._credentials[(city, id_number)] = replace(held, level=level)
            return held

    # -- medical settlements -------------------------------------------------------------
    def settlement(self, city: str, settlement_id: str) -> Settlement | None:
        with self._lock:
            return self._settlements.get((city, settlement_id))

    def settlements(self, city: str | None = None) -> list[Settlement]:
        with self._lock:
            return [s for s in self._settlements.values() if city is None or s.city == city]

    def fund_usage(self, city: str, id_number: str, year: int) -> tuple[int, int]:
        """``(deductible used, fund paid)`` of the citizen's pre-settled and settled bills in ``year``."""
        with self._lock:
            used = self._fund_usage.get((city, id_number, year), [0, 0])
            return used[0], used[1]

    def change_settlement(self, city: str, settlement_id: str,
                          decide: Callable[[Settlement | None, Callable[[str, int], tuple[int, int]]], Settlement],
                          ) -> Settlement:
        """Run ``decide(current, usage)`` under the state's lock and store what it returns, moving the
        citizen's yearly fund usage by what the settlement holds. ``current`` is the stored settlement
        (None: the city never saw the id); ``usage(id_number, year)`` gives ``(deductible used, fund
        paid)`` of the citizen's pre-settled and settled bills. ``decide`` may raise (nothing changes)
        and must not call back into the state."""
        with self._lock:
            key = (city, settlement_id)
            current = self._settlements.get(key)

            def usage(id_number: str, year: int) -> tuple[int, int]:
                used = self._fund_usage.get((city, id_number, year), [0, 0])
                return used[0], used[1]

            new = decide(current, usage)
            if new is current:
                return new
            for held, sign in ((current, -1), (new, 1)):
                if held is not None and held.state != "reversed":
                    used = self._fund_usage.setdefault((held.city, held.id_number, held.year), [0, 0])
                    used[0] += sign * held.deductible_cents
                    used[1] += sign * held.fund_cents
            self._settlements[key] = new
            return new

    def calendar(self) -> dt.datetime:
        """The virtual calendar time now (China Standard Time)."""
        with self._lock:
            return self._clock.datetime()

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
