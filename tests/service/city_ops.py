"""Contract 1.2's payment, password and settlement operations for a mock city, in-process.

TEMPORARY: until the reference plugins speak ``enable_payment``, ``reset_password`` and
``settle_medical`` on the wire, :func:`teach` gives one city's adapter these operations, run by
the mock's own business model (mockserver/business.py) on the in-process mock's state, errors
mapped as the dialects map them (essc.core.outcomes). The mock's fault rules (``/__admin/faults``)
apply as on the wire - before the business, journaled - and ``faults`` lets a test make the next
calls fail before the city applies them (``"before"``) or after (``"after"``: the answer is lost);
``after_rate`` loses that share of settle_medical's answers after the city applied the call.
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter

from essc.core.errors import UpstreamUnavailable
from essc.core.outcomes import outcome_error
from essc.mockserver import business
from essc.mockserver.business import MockBusinessError
from essc.mockserver.state import STATE_KEY

OPS = ("enable_payment", "reset_password", "settle_medical")


class CityOps:
    def __init__(self, state, city: str, dialect: str) -> None:
        self.state, self.city, self.dialect = state, city, dialect
        #: (operation, action or None) -> list of "before" / "after" for the next calls
        self.faults: dict[tuple[str, str | None], list[str]] = {}
        self.calls: Counter = Counter()
        self.after_rate = 0.0
        self._rng = random.Random(7)
        self._lock = threading.Lock()

    def _fault(self, operation: str, action: str | None) -> str | None:
        with self._lock:
            self.calls[(operation, action)] += 1
            queue = self.faults.get((operation, action)) or []
            return queue.pop(0) if queue else None

    def _mock_fault(self, operation: str) -> None:
        """The mock's own fault rules, as its dialects apply them (before the business, journaled)."""
        state, generation = self.state, self.state.generation
        attempt = state.count_attempt(self.city, operation)
        rule = state.match_fault(self.city, operation, attempt)
        state.record(generation, at=round(state.now(), 3), city=self.city, operation=operation, dialect=self.dialect,
                     attempt=attempt, status=200, outcome="fault" if rule and rule.kind != "latency" else "ok",
                     fault=rule.kind if rule else None, elapsed_ms=0.0, citizen=None)
        if rule is None:
            return
        if rule.kind == "latency":
            time.sleep(rule.latency_ms / 1000)
            return
        reason = {"http_429": "rate_limited", "malformed": "malformed_response", "hang": "timeout",
                  "drop": "connection"}.get(rule.kind, "http_5xx")
        raise UpstreamUnavailable(f"injected {rule.kind}", reason=reason, city=self.city, operation=operation)

    def _run(self, operation: str, action: str | None, work):
        fault = self._fault(operation, action)
        if fault == "before":
            raise UpstreamUnavailable("injected before", reason="timeout", city=self.city, operation=operation)
        self._mock_fault(operation)
        with self._lock:
            lost = operation == "settle_medical" and self._rng.random() < self.after_rate
            if fault is None and lost:
                fault = "after"
        try:
            answer = work()
        except MockBusinessError as err:
            raise outcome_error(err.kind, city=self.city, operation=operation, status=err.data.get("status"),
                                state=err.data.get("state")) from None
        if fault == "after":
            raise UpstreamUnavailable("injected after", reason="timeout", city=self.city, operation=operation)
        return answer

    def enable_payment(self, request):
        def work():
            b = business.enable_payment(self.state, self.dialect, request["aab301"], request["aac002"],
                                        request["sign_no"], request["verify_id"], request["channel"])
            return {"aab301": b.city, "sign_no": b.sign_no, "sign_level": b.sign_level, "aae008": b.bank,
                    "account_hint": b.account_hint}
        return self._run("enable_payment", None, work)

    def reset_password(self, request):
        def work():
            day = business.reset_password(self.state, self.dialect, request["aab301"], request["aac002"],
                                          request["verify_id"], request["new_password"])
            return {"aab301": request["aab301"], "reset_date": day.strftime("%Y%m%d")}
        return self._run("reset_password", None, work)

    def settle_medical(self, request):
        return self._run("settle_medical", request["action"],
                         lambda: business.settle_medical(self.state, self.dialect, request["aab301"], dict(request)))


def teach(registry, mock_server, city: str) -> CityOps:
    """Give ``city``'s adapter the operations of :data:`OPS` (see the module doc)."""
    state = mock_server.app.extensions[STATE_KEY]
    ops = CityOps(state, city, state.city(city).dialect)
    adapter = registry.adapter(city)
    bound = registry._table.get(city) or registry._resolve(city)
    for name in OPS:
        setattr(adapter, name, getattr(ops, name))
        bound.methods[name] = getattr(ops, name)
    return ops


def forget(registry, city: str) -> None:
    adapter = registry.adapter(city)
    bound = registry._table.get(city) or registry._resolve(city)
    for name in OPS:
        adapter.__dict__.pop(name, None)
        bound.methods.pop(name, None)
