"""Reading a city's answer safely: the helpers every adapter needs to turn a wire answer
into contract dicts and typed errors without leaking personal data.

    call = CityCall(request["aab301"], "read_card")
    card = call.obj(body, "card", dict)
    number = call.text(card, "cardNo")          # malformed_response if absent
    raise call.rejected("the city refused our signature")

Error texts name wire keys only, never values (values may be personal data).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .adapter import Payload
from .errors import ContractViolation, UpstreamUnavailable
from .masking import get_logger
from .schemas import SchemaProblem, validator

log = get_logger("essc.answers")

__all__ = ["CityCall", "retry_seconds", "named_fields", "problem_path"]


def problem_path(problem: SchemaProblem) -> str:
    """The full JSON path of a schema problem: for a missing required property, the property's own
    path (``$.signDate``), not its parent's (``$``)."""
    if problem.rule == "required":
        found = re.match(r"^'([^']+)' is required", problem.message)
        if found:
            name = found.group(1)
            return f"{problem.path}.{name}" if name.isidentifier() else f"{problem.path}['{name}']"
    return problem.path


class CityCall:
    """One operation on one city: the context every error carries, and checked reads."""

    __slots__ = ("city", "operation", "absent")

    def __init__(self, city: str, operation: str) -> None:
        self.city = city
        self.operation = operation
        self.absent: list[str] = []  #: wire keys :meth:`optional` found absent in the city's answer

    @property
    def ctx(self) -> dict[str, str]:
        return {"city": self.city, "operation": self.operation}

    def malformed(self, detail: str) -> UpstreamUnavailable:
        """The answer cannot be understood (retryable: the next one may be fine)."""
        return UpstreamUnavailable(detail, reason="malformed_response", **self.ctx)

    def rejected(self, detail: str) -> ContractViolation:
        """The city refused our request (auth, signature, field): our side must be fixed."""
        return ContractViolation(detail, hook=self.operation, rule="city-rejected-request", **self.ctx)

    def text(self, mapping: Mapping[str, Any], key: str) -> str:
        """A required scalar as text (a number is accepted and written out)."""
        value = mapping.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise self.malformed(f"the answer lacks '{key}'")
        return value

    def optional(self, mapping: Mapping[str, Any], key: str) -> Any:
        """An optional field; ``None`` when absent or empty (empty optional fields are omitted)."""
        value = mapping.get(key)
        if value in (None, ""):
            self.absent.append(key)
            return None
        return value

    def obj(self, mapping: Mapping[str, Any], key: str, kind: type) -> Any:
        value = mapping.get(key)
        if not isinstance(value, kind):
            raise self.malformed(f"the answer lacks '{key}' ({kind.__name__})")
        return value

    def lookup(self, table: Mapping[Any, Any], value: Any, key: str) -> Any:
        if isinstance(value, (str, int)) and not isinstance(value, bool) and value in table:
            return table[value]
        raise self.malformed(f"the answer has an unknown '{key}'")

    def date8(self, value: Any, key: str) -> str:
        """A ``YYYYMMDD`` date, checked to be a real day."""
        try:
            if len(value) == 8:
                return datetime.strptime(value, "%Y%m%d").strftime("%Y%m%d")
        except (TypeError, ValueError):
            pass
        raise self.malformed(f"the answer's '{key}' is not a YYYYMMDD date")

    def iso_date(self, value: Any, key: str) -> str:
        """An ISO date or date-time (``YYYY-MM-DD[THH:MM:SS]``) as ``YYYYMMDD``."""
        try:
            return datetime.fromisoformat(value).strftime("%Y%m%d")
        except (TypeError, ValueError):
            raise self.malformed(f"the answer's '{key}' is not an ISO date") from None


    def fits(self, schema: str, result: Payload) -> Payload:
        """The contract answer, checked against ``schema``.

        A required value missing from ``result`` is the plugin's CONTRACT_VIOLATION, never an
        upstream outage (the readers above refuse a city answer that lacks a value they read), with the
        full JSON path (``$.signDate``) and ``source``: ``city-answer`` when the city's answer lacked a
        key the translation read with :meth:`optional`, else ``translation`` (it dropped the value).
        A value present but not fitting came from the city's data: malformed_response."""
        check = validator(schema)
        if check.is_valid(result):
            return result
        problems = check.problems(result)
        missing = [p for p in problems if p.rule == "required"]
        if missing:
            path = problem_path(missing[0])
            if self.absent:
                keys = ", ".join(f"'{k}'" for k in dict.fromkeys(self.absent))
                detail = (f"{schema} {path} is required but missing: the city's answer lacked {keys} (read with "
                          "CityCall.optional); read a required value with CityCall.text so such an answer is "
                          "refused as malformed, or map the value the translation dropped")
                source = "city-answer"
            else:
                detail = (f"{schema} {path} is required but missing: the translation dropped it (the city's "
                          "answer was read without a gap)")
                source = "translation"
            raise ContractViolation(detail, hook=self.operation, path=path, rule="required", schema=schema,
                                    source=source, **self.ctx)
        problem = problems[0] if problems else None
        path = problem_path(problem) if problem else "$"
        raise self.malformed(f"the city's answer does not fit {schema}: {path} "
                             f"{problem.message if problem else 'rejected'}")

    def services(self, items: Any, code_key: str, name_key: str, table: Mapping[str, str]) -> list[dict[str, str]]:
        """``[{"code", "name"}]`` from the city's service list; services the contract does not
        know (and repeats) are skipped: they are not ours to offer."""
        if not isinstance(items, list):
            raise self.malformed("the answer's service list is not a list")
        out: list[dict[str, str]] = []
        seen: set[str] = set()
        for item in items:
            if not isinstance(item, dict):
                raise self.malformed("the answer's service list holds a non-object")
            wire = item.get(code_key)
            code = table.get(wire) if isinstance(wire, str) else None
            if code is None or code in seen:
                log.debug("city=%s: skipped a service '%s' the contract does not know", self.city, code_key)
                continue
            seen.add(code)
            out.append({"code": code, "name": self.text(item, name_key)})
        return out

    def health(self, state: str, up: str, down: str, latency_ms: float) -> Payload:
        """The ``health`` answer from the city's status word (compared case-insensitively)."""
        state = state.strip().casefold()
        if state == up.casefold():
            return {"status": "up", "latency_ms": latency_ms}
        if state == down.casefold():
            return {"status": "down", "latency_ms": latency_ms, "detail": f"the city reports {down}"}
        return {"status": "degraded", "latency_ms": latency_ms, "detail": f"the city reports a status other than {up}"}


def retry_seconds(value: Any) -> float | int | None:
    """A retry hint in seconds (number or digit string), or ``None`` when unreadable."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def named_fields(message: Any, fields: Iterable[str]) -> list[str]:
    """Which of OUR wire field names the city's message mentions (never its free text)."""
    if not isinstance(message, str):
        return []
    return [f for f in fields if re.search(rf"(?<![A-Za-z0-9_]){re.escape(f)}(?![A-Za-z0-9_])", message)]
