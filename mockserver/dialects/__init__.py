"""The four wire dialects of docs/dialects.md, one blueprint each, on a shared request pipeline.

:meth:`Dialect.exchange` runs every request the same way: count the attempt of its (city,
operation) when both are known, apply the first matching fault, else run the dialect's
``work`` (validation + business call) and render the result or error in the dialect's own
form; finally journal the request with the citizen's ID number masked.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app

from essc.core.errors import InvalidInput
from essc.core.idnumber import validate_id_number
from essc.core.masking import mask_id

from .. import faults
from ..business import MockBusinessError
from ..state import mock_state

__all__ = ["ProtocolError", "Dialect", "mock_state", "register_dialects", "CITY_CODE"]

CITY_CODE = re.compile(r"^[0-9]{6}$")


class ProtocolError(Exception):
    """A request the dialect refuses before any business logic. ``kind`` is one of
    ``unauthorized, bad_request, bad_signature, bad_timestamp, undecryptable, unparseable,
    unknown_operation``; ``field`` names the offending field where there is one."""

    def __init__(self, kind: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.field = field


def secrets(dialect: str) -> dict[str, str]:
    return current_app.config["SECRETS"][dialect]


# -- field helpers shared by the dialects (they raise ProtocolError("bad_request")) ----------
def text(data: Any, field: str, *, choices: tuple[str, ...] | None = None) -> str:
    """A required non-empty string field (optionally one of ``choices``)."""
    value = data.get(field) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise ProtocolError("bad_request", f"missing or empty field: {field}", field)
    value = value.strip()
    if choices is not None and value not in choices:
        raise ProtocolError("bad_request", f"invalid field: {field} (one of {', '.join(choices)})", field)
    return value


def city_code(data: Any, field: str) -> str:
    value = text(data, field)
    if not CITY_CODE.match(value):
        raise ProtocolError("bad_request", f"invalid field: {field} (a 6-digit division code)", field)
    return value


def id_number(data: Any, field: str) -> str:
    value = text(data, field)
    try:
        return validate_id_number(value, field=field)
    except InvalidInput as err:
        raise ProtocolError("bad_request", f"invalid field: {field} ({err.detail})", field) from None


def probe(data: Any, field: str) -> str | None:
    """A field's raw value for attempt counting and the journal, without validation."""
    value = data.get(field) if isinstance(data, dict) else None
    return value.strip() if isinstance(value, str) else None


class Dialect:
    """One wire dialect: subclasses render results and errors in their own form."""

    name = ""

    def ok(self, operation: str, result: Any, ctx: dict[str, Any]) -> Response:
        raise NotImplementedError

    def business_error(self, err: MockBusinessError, ctx: dict[str, Any]) -> Response:
        raise NotImplementedError

    def protocol_error(self, err: ProtocolError, ctx: dict[str, Any]) -> Response:
        raise NotImplementedError

    def malformed(self, ctx: dict[str, Any]) -> Response:
        """HTTP 200 with a body that is not valid in this dialect (the ``malformed`` fault)."""
        raise NotImplementedError

    def exchange(self, operation: str | None, city: str | None, citizen: str | None,
                 work: Callable[[], Any], ctx: dict[str, Any] | None = None) -> Response:
        """Run one request through attempts, faults, ``work`` and the journal."""
        ctx = ctx if ctx is not None else {}
        state = mock_state()
        started = time.perf_counter()
        at, generation = state.now(), state.generation
        attempt = rule = None
        city = city if city and CITY_CODE.match(city) else None  # nothing else from the wire is journaled
        if operation and city:
            attempt = state.count_attempt(city, operation)
            rule = state.match_fault(city, operation, attempt)
        if rule is not None and rule.kind != "latency":
            resp = faults.fault_response(rule, state.hang_release(), lambda: self.malformed(ctx))
            outcome, status = "fault", (None if rule.kind == "hang" else resp.status_code)
        else:
            if rule is not None:
                faults.pause(rule)
            try:
                resp, outcome = self.ok(operation or "", work(), ctx), "ok"
            except ProtocolError as err:
                resp, outcome = self.protocol_error(err, ctx), err.kind
            except MockBusinessError as err:
                resp, outcome = self.business_error(err, ctx), err.kind
            status = resp.status_code
        state.record(generation, at=round(at, 3), city=city, operation=operation, dialect=self.name, attempt=attempt,
                     status=status, outcome=outcome, fault=rule.kind if rule else None,
                     elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
                     citizen=mask_id(citizen) if citizen else None)
        return resp


def register_dialects(app: Flask) -> None:
    """Register the blueprints of all four dialects on ``app``."""
    from . import gm_json, pinyin_form, rest_json, xml_envelope

    for module in (rest_json, pinyin_form, xml_envelope, gm_json):
        app.register_blueprint(module.bp)
