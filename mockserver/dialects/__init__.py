"""The four wire dialects of docs/dialects.md, one blueprint each, on a shared request pipeline.

:meth:`Dialect.exchange` runs every request the same way: count the attempt of its (city,
operation) when both are known, apply the first matching fault, else run the dialect's
``work`` (validation + business call) and render the result or error in the dialect's own
form; finally journal the request with the citizen's ID number masked.

:func:`guard_body` runs before every dialect view: a body above ``MAX_BODY_BYTES`` is refused
with the dialect's own protocol error (kind ``too_large``) by its ``Content-Length`` without
being read, and a body without one (chunked) is read at most one byte past the limit.
"""
from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from essc.core.errors import InvalidInput
from essc.core.idnumber import validate_id_number
from essc.core.masking import mask_id

from .. import faults
from ..business import MockBusinessError
from ..state import mock_state

__all__ = ["ProtocolError", "Dialect", "mock_state", "register_dialects", "guard_body", "body_within_limit",
           "CITY_CODE", "text", "city_code", "id_number", "probe", "secrets"]

CITY_CODE = re.compile(r"^[0-9]{6}$")
#: The longest citizen hint the journal keeps (an ID number has 18 characters).
_CITIZEN_HINT = 18
_READ_CHUNK = 64 * 1024


class ProtocolError(Exception):
    """A request the dialect refuses before any business logic. ``kind`` is one of
    ``unauthorized, bad_request, bad_signature, bad_timestamp, undecryptable, unparseable,
    unknown_operation, too_large``; ``field`` names the offending field where there is one.
    Each dialect answers ``too_large`` as it answers a malformed request."""

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
        # taken first: a reset or stop after this point releases this request if it hangs
        release = state.hang_release()
        at, generation = state.now(), state.generation
        attempt = rule = None
        city = city if city and CITY_CODE.match(city) else None  # nothing else from the wire is journaled
        if operation and city:
            attempt = state.count_attempt(city, operation)
            rule = state.match_fault(city, operation, attempt)
        if rule is not None and rule.kind not in faults.APPLIED:
            resp = faults.fault_response(rule, release, lambda: self.malformed(ctx))
            outcome, status = "fault", (None if rule.kind == "hang" else resp.status_code)
        else:
            if rule is not None and rule.kind == "latency":
                faults.pause(rule)
            try:
                resp, outcome = self.ok(operation or "", work(), ctx), "ok"
            except ProtocolError as err:
                resp, outcome = self.protocol_error(err, ctx), err.kind
            except MockBusinessError as err:
                resp, outcome = self.business_error(err, ctx), err.kind
            status = resp.status_code
            if rule is not None and rule.kind == "lost_answer":  # carried out; the answer never arrives
                resp = faults.lost_answer()
        state.record(generation, at=round(at, 3), city=city, operation=operation, dialect=self.name, attempt=attempt,
                     status=status, outcome=outcome, fault=rule.kind if rule else None,
                     elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
                     citizen=_citizen_hint(citizen))
        return resp


def _citizen_hint(citizen: str | None) -> str | None:
    """The masked ID number for the journal, never longer than an ID number (+ "…")."""
    if not citizen:
        return None
    if len(citizen) > _CITIZEN_HINT:
        return mask_id(citizen[:_CITIZEN_HINT]) + "…"
    return mask_id(citizen)


def body_within_limit(limit: int) -> bool:
    """Is the request body at most ``limit`` bytes? Decided by ``Content-Length`` without
    reading; a body the server streams without one (chunked, ``wsgi.input_terminated``) is
    read up to ``limit + 1`` bytes, and when it fits it is put back as a sized body."""
    length = request.content_length
    if length is not None:
        return length <= limit
    environ = request.environ
    if "wsgi.input_terminated" not in environ:
        return True  # no length and no terminated stream: werkzeug reads it as empty
    stream, chunks, total = environ["wsgi.input"], [], 0
    while total <= limit:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:
        return False
    data = b"".join(chunks)
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))
    del environ["wsgi.input_terminated"]
    return True


def guard_body(bp: Blueprint, dialect: Dialect, operation_of: Callable[[], str | None]) -> None:
    """Refuse bodies above ``MAX_BODY_BYTES`` on ``bp`` with ``dialect``'s protocol error,
    journaled (without city or citizen: the body is never parsed) under ``operation_of()``."""

    def refuse(why: str = "") -> Response:
        limit = current_app.config["MAX_BODY_BYTES"]
        err = ProtocolError("too_large", why or f"body: the request body is larger than {limit} bytes", "body")

        def work() -> Any:
            raise err

        return dialect.exchange(operation_of(), None, None, work)

    @bp.before_request
    def _limit_body() -> Response | None:
        return None if body_within_limit(current_app.config["MAX_BODY_BYTES"]) else refuse()

    @bp.errorhandler(RequestEntityTooLarge)
    def _too_large(err: RequestEntityTooLarge) -> Response:  # werkzeug's own limits (form parts, memory)
        return refuse("body: the request body is too large to parse (too many or too large form parts)")


def register_dialects(app: Flask) -> None:
    """Register every dialect the mock plays on ``app``: the four hand-written ones, then each
    installed dialect (essc.core.dialects) - from its spec, or by its own city-side code.
    With ``SPEC_CITY_SIDES`` true the built-in dialects that have a spec are played from
    their spec instead of the hand-written modules (both must answer alike). The hand-written
    modules play the operations of contract 1.0; the operations of 1.2 of a dialect that has a
    spec are played from the spec (on their own routes, or handed over by a gateway module)."""
    import importlib

    from essc.core.dialects import dialects

    from . import gm_json, pinyin_form, rest_json, xml_envelope
    from .spec_dialect import SINCE_1_2, register_spec_dialect

    from_specs = bool(app.config.get("SPEC_CITY_SIDES"))  # play the built-in specs instead of the code
    hand_written = {"rest-json": rest_json, "pinyin-form": pinyin_form, "xml-envelope": xml_envelope,
                    "gm-json": gm_json}
    installed = dialects()
    for name, module in hand_written.items():
        entry = installed.get(name)
        if not (from_specs and entry is not None and entry.spec is not None):
            app.register_blueprint(module.bp)
            if entry is not None and entry.spec is not None:
                register_spec_dialect(app, entry.spec, operations=SINCE_1_2)
    for name, entry in installed.items():
        if name in hand_written and not (from_specs and entry.spec is not None):
            continue  # played by the hand-written module
        if entry.city_side:
            module_name, _, func = entry.city_side.partition(":")
            getattr(importlib.import_module(module_name), func)(app)
        elif entry.spec is not None:
            register_spec_dialect(app, entry.spec)
