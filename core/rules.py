"""Rules over several fields of a request that the JSON Schemas cannot say; the registry
applies them after the schema, before the adapter is called, so every city refuses the same
request the same way (:class:`~essc.core.errors.InvalidInput` naming the field)."""
from __future__ import annotations

from collections.abc import Callable

from .adapter import Payload
from .errors import InvalidInput

__all__ = ["MAX_CONTRIBUTION_MONTHS", "request_problem"]

#: the longest period ``query_contributions`` takes, in months (five years)
MAX_CONTRIBUTION_MONTHS = 60


def _months(yyyymm: str) -> int:
    return int(yyyymm[:4]) * 12 + int(yyyymm[4:]) - 1


def _contribution_period(request: Payload) -> InvalidInput | None:
    first, last = _months(request["from_month"]), _months(request["to_month"])
    if last < first:
        return InvalidInput("to_month is before from_month", field="$.to_month", rule="period-order")
    if last - first + 1 > MAX_CONTRIBUTION_MONTHS:
        return InvalidInput(f"the period spans {last - first + 1} months; at most {MAX_CONTRIBUTION_MONTHS} in one "
                            "query", field="$.to_month", rule="period-length")
    return None


_RULES: dict[str, Callable[[Payload], InvalidInput | None]] = {"query_contributions": _contribution_period}


def request_problem(operation: str, request: Payload) -> InvalidInput | None:
    """The first cross-field problem of a schema-valid ``request`` of ``operation``, or None."""
    rule = _RULES.get(operation)
    return rule(request) if rule is not None else None
