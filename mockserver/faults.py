"""Injected faults (docs/mock.md "Faults"): rules, their selection, and the responses they give.

A rule is checked per request, after the request's attempt number for its (city, operation)
is counted and before any validation or business logic. The first matching rule wins. Every
kind but ``latency`` and ``lost_answer`` answers instead of the city (nothing is carried out);
``lost_answer`` carries the request out and then breaks the connection before the answer.
"""
from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from flask import Response

from essc.core.adapter import OPERATIONS as CONTRACT_OPERATIONS

from .citizens import derive_seed

__all__ = ["KINDS", "APPLIED", "OPERATIONS", "FaultRule", "FaultInputError", "parse_rule", "draw", "fault_response",
           "lost_answer"]

KINDS = ("latency", "http_500", "http_503", "http_429", "malformed", "hang", "drop", "lost_answer")
#: kinds after which the request is still carried out (the others answer instead of the city)
APPLIED = ("latency", "lost_answer")
#: the contract's operations (a fault or a journal filter names one of them)
OPERATIONS = tuple(CONTRACT_OPERATIONS)
SELECTORS = ("attempts", "every", "rate")
PARAMS = ("latency_ms", "retry_after", "hang_s")
DEFAULT_LATENCY_MS = 1000
DEFAULT_RETRY_AFTER = 1
#: How many bytes a dropped response promises beyond what it sends.
DROP_MISSING_BYTES = 4096
#: Upper bounds of the parameters (a sleep or wait must stay a number the platform takes).
MAX_LATENCY_MS = 3_600_000
MAX_HANG_S = 86_400
MAX_RETRY_AFTER = 86_400


class FaultInputError(ValueError):
    """A fault rule that cannot be accepted; the message says why."""


@dataclass(frozen=True)
class FaultRule:
    id: int
    city: str  # a city code or "*"
    operation: str  # an operation or "*"
    kind: str
    attempts: tuple[int, ...] | None = None
    every: int | None = None
    rate: float | None = None
    latency_ms: float = DEFAULT_LATENCY_MS
    retry_after: int | None = None
    hang_s: float = 30.0

    def applies(self, seed: int, city: str, operation: str, attempt: int) -> bool:
        """Does this rule hit the ``attempt``-th request (1-based) of ``city`` + ``operation``?"""
        if self.city not in ("*", city) or self.operation not in ("*", operation):
            return False
        if self.attempts is not None:
            return attempt in self.attempts
        if self.every is not None:
            return attempt % self.every == 0
        if self.rate is not None:
            return draw(seed, city, operation, attempt, self.id) < self.rate
        return True

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v is not None}
        if self.attempts is not None:
            out["attempts"] = list(self.attempts)
        return out


def draw(seed: int, city: str, operation: str, attempt: int, rule_id: int) -> float:
    """The reproducible random number in [0, 1) that a ``rate`` selector compares with.

    Each rule draws its own number, so several ``rate`` rules on the same requests are
    independent (with one shared draw, only the rule with the highest rate could ever fire)."""
    return random.Random(derive_seed(seed, "fault-rate", city, operation, attempt, rule_id)).random()


def _number(data: Mapping[str, Any], key: str, *, integer: bool = False, minimum: float = 0,
            maximum: float | None = None) -> Any:
    """``data[key]``: an integer (or a finite number) within the bounds; else FaultInputError."""
    value = data[key]
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise FaultInputError(f"{key!r} must be {'an integer' if integer else 'a number'}")
    if isinstance(value, float) and not math.isfinite(value):
        raise FaultInputError(f"{key!r} must be a finite number (not NaN or Infinity)")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise FaultInputError(f"{key!r} must be {bound}")
    return value


def parse_rule(data: Any, *, rule_id: int, known_cities: Iterable[str], hang_s_default: float) -> FaultRule:
    """Validate the body of ``POST /__admin/faults``; raise :class:`FaultInputError`."""
    if not isinstance(data, dict):
        raise FaultInputError("the body must be a JSON object")
    unknown = sorted(set(data) - {"city", "operation", "kind", *SELECTORS, *PARAMS})
    if unknown:
        raise FaultInputError(f"unknown field(s): {', '.join(unknown)}")
    city = data.get("city", "*")
    if city != "*" and city not in set(known_cities):
        raise FaultInputError(f"'city' must be '*' or the code of a mock city, not {city!r}")
    operation = data.get("operation", "*")
    if operation != "*" and operation not in OPERATIONS:
        raise FaultInputError(f"'operation' must be '*' or one of {', '.join(OPERATIONS)}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise FaultInputError(f"'kind' must be one of {', '.join(KINDS)}")
    chosen = [s for s in SELECTORS if s in data]
    if len(chosen) > 1:
        raise FaultInputError(f"give at most one selector of attempts, every, rate (got {', '.join(chosen)})")
    rule: dict[str, Any] = {"id": rule_id, "city": city, "operation": operation, "kind": kind,
                            "hang_s": hang_s_default}
    if "attempts" in data:
        attempts = data["attempts"]
        if (not isinstance(attempts, list) or not attempts
                or any(isinstance(a, bool) or not isinstance(a, int) or a < 1 for a in attempts)):
            raise FaultInputError("'attempts' must be a non-empty list of attempt numbers (integers >= 1)")
        rule["attempts"] = tuple(sorted(set(attempts)))
    if "every" in data:
        rule["every"] = _number(data, "every", integer=True, minimum=1)
    if "rate" in data:
        rule["rate"] = float(_number(data, "rate", maximum=1))
    if "latency_ms" in data:
        rule["latency_ms"] = _number(data, "latency_ms", maximum=MAX_LATENCY_MS)
    if "retry_after" in data:
        rule["retry_after"] = _number(data, "retry_after", integer=True, maximum=MAX_RETRY_AFTER)
    if "hang_s" in data:
        rule["hang_s"] = _number(data, "hang_s", maximum=MAX_HANG_S)
    return FaultRule(**rule)


def _dropped(status: int = 200, content_type: str = "application/json") -> Response:
    """Headers that promise more bytes than the body has: the server closes the connection
    after the short body (waitress and werkzeug both do), so the client sees a broken read."""
    partial = b'{"code": '

    def body():  # a generator, so nobody recomputes Content-Length from the body
        yield partial

    resp = Response(body(), status=status, content_type=content_type)
    resp.headers["Content-Length"] = str(len(partial) + DROP_MISSING_BYTES)
    return resp


def fault_response(rule: FaultRule, release: threading.Event, malformed: Callable[[], Response]) -> Response:
    """The answer a non-latency fault gives (a hang waits first; reset sets ``release``)."""
    if rule.kind == "http_500":
        return Response("injected fault: internal server error\n", 500, content_type="text/plain")
    if rule.kind in ("http_503", "http_429"):
        status = 503 if rule.kind == "http_503" else 429
        resp = Response(f"injected fault: {rule.kind}\n", status, content_type="text/plain")
        retry_after = rule.retry_after if rule.retry_after is not None else (
            DEFAULT_RETRY_AFTER if status == 429 else None)
        if retry_after is not None:
            resp.headers["Retry-After"] = str(retry_after)
        return resp
    if rule.kind == "malformed":
        return malformed()
    if rule.kind == "hang":
        release.wait(rule.hang_s)  # never answer properly: after the hang the connection breaks
        return _dropped()
    if rule.kind == "drop":
        return _dropped()
    raise ValueError(f"no response for fault kind {rule.kind!r}")  # pragma: no cover


def lost_answer() -> Response:
    """The ``lost_answer`` fault: the city carried the request out, then its answer is lost on the
    way back (the connection breaks as for ``drop``): the client cannot know it was applied."""
    return _dropped()


def pause(rule: FaultRule) -> None:
    """The latency fault: sleep (no lock is held), then the request goes on normally."""
    time.sleep(rule.latency_ms / 1000)
