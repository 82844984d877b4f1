"""rest-json: JSON REST with a bearer token (docs/dialects.md), base path ``/rest/v1``."""
from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, jsonify, request

from .. import business
from ..business import MockBusinessError
from . import Dialect, ProtocolError, city_code, guard_body, id_number, mock_state, probe, secrets, text

NAME = "rest-json"
STATUS = {"normal": "ACTIVE", "reported_lost": "LOST", "sealed": "SEALED", "cancelled": "CANCELLED",
          "locked": "LOCKED"}
SERVICE_IDS = {"identity_login": "ID_LOGIN", "social_security": "SOCIAL_SECURITY", "employment": "EMPLOYMENT",
               "payment": "PAYMENT", "medical_bill": "MEDICAL_BILL"}
FACTORS = {"SMS": "sms", "PASSWORD": "password"}
#: business error kind -> (HTTP status, error code)
ERRORS = {
    "not_opened": (404, "CITY_NOT_OPENED"),
    "not_synced": (404, "RECORD_NOT_FOUND"),
    "card_status": (409, "CARD_STATUS"),
    "identity_mismatch": (403, "IDENTITY_MISMATCH"),
    "ticket_invalid": (403, "TICKET_INVALID"),
    "unknown_city": (400, "UNKNOWN_CITY"),
}

bp = Blueprint("rest_json", __name__, url_prefix="/rest/v1")


def _json(status: int, body: dict[str, Any]) -> Response:
    resp = jsonify(body)
    resp.status_code = status
    return resp


def _error(http_status: int, code: str, message: str, /, **extra: Any) -> Response:
    return _json(http_status, {"error": {"code": code, "message": message, **extra}})


class RestJson(Dialect):
    name = NAME

    def ok(self, operation: str, result: Any, ctx: dict[str, Any]) -> Response:
        if operation == "read_card":
            return _json(200, {"card": {
                "idNumber": result.id_number, "name": result.name, "cityCode": result.city, "cardNo": result.card_no,
                "cardId": result.card_id, "status": STATUS[result.card_status], "generation": int(result.generation),
                "bank": result.bank, "mobile": result.mobile}})
        if operation == "verify_identity":
            return _json(200, {"verified": True, "ticket": result})
        if operation == "activate":
            return _json(201, {"credential": {
                "signNo": result.sign_no, "signSeq": result.sign_seq, "level": result.level,
                "validUntil": result.valid_until.isoformat(),
                "signedAt": result.signed_at.strftime("%Y-%m-%dT%H:%M:%S")}})
        if operation == "list_services":
            return _json(200, {"services": [{"id": SERVICE_IDS[code], "title": title} for code, title in result]})
        return _json(200, {"status": "UP"})

    def business_error(self, err: MockBusinessError, ctx: dict[str, Any]) -> Response:
        status, code = ERRORS[err.kind]
        extra: dict[str, Any] = {}
        if err.kind == "not_synced":
            extra["retryAfterSeconds"] = err.data["retry_after"]
        elif err.kind == "card_status":
            extra["status"] = STATUS[err.data["status"]]
        return _error(status, code, err.message, **extra)

    def protocol_error(self, err: ProtocolError, ctx: dict[str, Any]) -> Response:
        if err.kind == "unauthorized":
            return _error(401, "UNAUTHORIZED", err.message)
        return _error(400, "BAD_REQUEST", err.message)

    def malformed(self, ctx: dict[str, Any]) -> Response:
        return Response('{"card": {"idNumber": "11010119', 200, content_type="application/json")


DIALECT = RestJson()
#: The views are named after their operations.
guard_body(bp, DIALECT, lambda: (request.endpoint or "").rpartition(".")[2] or None)


def _authorize() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProtocolError("unauthorized", "missing bearer token (Authorization: Bearer <token>)")
    if not hmac.compare_digest(token.strip().encode(), secrets(NAME)["token"].encode()):
        raise ProtocolError("unauthorized", "invalid bearer token")


def _body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ProtocolError("bad_request", "body: the request body must be a JSON object", "body")
    return body


@bp.post("/cards/query")
def read_card() -> Response:
    raw = request.get_json(force=True, silent=True)

    def work() -> Any:
        _authorize()
        body = _body()
        return business.read_card(mock_state(), NAME, city_code(body, "cityCode"), id_number(body, "idNumber"),
                                  text(body, "name"))

    return DIALECT.exchange("read_card", probe(raw, "cityCode"), probe(raw, "idNumber"), work)


@bp.post("/identity/verify")
def verify_identity() -> Response:
    raw = request.get_json(force=True, silent=True)

    def work() -> Any:
        _authorize()
        body = _body()
        city, idn = city_code(body, "cityCode"), id_number(body, "idNumber")
        face_token = text(body, "faceToken")
        factor = FACTORS[text(body, "factor", choices=tuple(FACTORS))]
        return business.verify_identity(mock_state(), NAME, city, idn, face_token, factor, text(body, "code"))

    return DIALECT.exchange("verify_identity", probe(raw, "cityCode"), probe(raw, "idNumber"), work)


@bp.post("/credentials")
def activate() -> Response:
    raw = request.get_json(force=True, silent=True)

    def work() -> Any:
        _authorize()
        body = _body()
        city, idn = city_code(body, "cityCode"), id_number(body, "idNumber")
        ticket, channel = text(body, "ticket"), text(body, "channel")
        level = body.get("level")
        if type(level) is not int or level not in (1, 2):
            raise ProtocolError("bad_request", "missing or invalid field: level (1 or 2)", "level")
        return business.activate(mock_state(), NAME, city, idn, ticket, channel, level)

    return DIALECT.exchange("activate", probe(raw, "cityCode"), probe(raw, "idNumber"), work)


@bp.get("/cities/<city>/services")
def list_services(city: str) -> Response:
    def work() -> Any:
        _authorize()
        return business.list_services(mock_state(), NAME, city_code({"cityCode": city}, "cityCode"))

    return DIALECT.exchange("list_services", city, None, work)


@bp.get("/health")
def health() -> Response:
    def work() -> Any:
        _authorize()
        return business.health(mock_state(), NAME, city_code(request.args, "cityCode"))

    return DIALECT.exchange("health", request.args.get("cityCode"), None, work)
