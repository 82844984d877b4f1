"""pinyin-form: form POST with 人社 field codes, HMAC-SHA256 signed (docs/dialects.md), base ``/pinyin``.

Every answer is HTTP 200 JSON ``{"code", "msg", "data"}`` unless a fault is injected.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request

from essc.core.signing import verify_hmac_sha256

from .. import business
from ..business import MockBusinessError
from . import Dialect, ProtocolError, city_code, guard_body, id_number, mock_state, secrets, text

NAME = "pinyin-form"
MAX_SKEW_S = 300
STATUS = {"normal": "1", "reported_lost": "2", "sealed": "3", "cancelled": "4", "locked": "5"}
SERVICE_CODES = {"identity_login": "01", "social_security": "02", "employment": "03", "payment": "04",
                 "medical_bill": "05"}
VERIFY_TYPES = {"1": "sms", "2": "password"}
BUSINESS_CODES = {"not_opened": "1001", "not_synced": "1002", "card_status": "1003", "identity_mismatch": "1004",
                  "ticket_invalid": "1005", "unknown_city": "9004"}
PROTOCOL_CODES = {"bad_signature": ("9001", "签名错误"), "bad_request": ("9002", "缺少或无效字段"),
                  "bad_timestamp": ("9003", "时间戳超出允许范围"), "too_large": ("9002", "报文过大")}
TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits only: int() would take any Unicode digit

bp = Blueprint("pinyin_form", __name__, url_prefix="/pinyin")


def _answer(code: str, msg: str, data: dict[str, Any] | None = None) -> Response:
    return jsonify({"code": code, "msg": msg, "data": data if data is not None else {}})


class PinyinForm(Dialect):
    name = NAME

    def ok(self, operation: str, result: Any, ctx: dict[str, Any]) -> Response:
        if operation == "read_card":
            data = {"aac002": result.id_number, "aac003": result.name, "aab301": result.city,
                    "aaz500": result.card_no, "aaz501": result.card_id, "aaz502": STATUS[result.card_status],
                    "aaz508": result.generation, "aae008": result.bank, "aac067": result.mobile}
        elif operation == "verify_identity":
            data = {"verify_id": result}
        elif operation == "activate":
            data = {"aab301": result.city, "signNo": result.sign_no, "signSeq": result.sign_seq,
                    "signLevel": str(result.level), "validate": result.valid_until.strftime("%Y%m%d"),
                    "signDate": result.signed_at.strftime("%Y%m%d")}
        elif operation == "list_services":
            data = {"list": [{"fwbm": SERVICE_CODES[code], "fwmc": title} for code, title in result]}
        else:
            data = {"status": "ok"}
        return _answer("0000", "成功", data)

    def business_error(self, err: MockBusinessError, ctx: dict[str, Any]) -> Response:
        data: dict[str, Any] = {}
        if err.kind == "not_synced":
            data["retry_after"] = err.data["retry_after"]
        elif err.kind == "card_status":
            data["aaz502"] = STATUS[err.data["status"]]
        return _answer(BUSINESS_CODES[err.kind], err.message, data)

    def protocol_error(self, err: ProtocolError, ctx: dict[str, Any]) -> Response:
        code, wording = PROTOCOL_CODES[err.kind]
        return _answer(code, f"{wording}: {err.message}")

    def malformed(self, ctx: dict[str, Any]) -> Response:
        return Response('{"code": "0000", "msg": "成功", "data": {"aac002": ', 200,
                        content_type="application/json; charset=utf-8")


DIALECT = PinyinForm()
#: The views are named after their operations.
guard_body(bp, DIALECT, lambda: (request.endpoint or "").rpartition(".")[2] or None)


def _form() -> dict[str, str]:
    return {key: request.form.get(key, "") for key in request.form}


def _checked(form: dict[str, str]) -> dict[str, str]:
    """The common fields present, the signature right and the timestamp fresh."""
    for field in ("appid", "timestamp", "nonce", "sign"):
        text(form, field)
    if len(form["nonce"].strip()) < 8:
        raise ProtocolError("bad_request", "invalid field: nonce (8 or more characters)", "nonce")
    timestamp = form["timestamp"].strip()
    if not TIMESTAMP.fullmatch(timestamp):
        raise ProtocolError("bad_request", "invalid field: timestamp (Unix seconds, ASCII digits)", "timestamp")
    credentials = secrets(NAME)
    if form["appid"] != credentials["appid"]:
        raise ProtocolError("bad_signature", "unknown appid")
    # compare_digest refuses non-ASCII strings (TypeError): such a sign is simply wrong
    if not form["sign"].isascii() or not verify_hmac_sha256(form, credentials["secret"]):
        raise ProtocolError("bad_signature", "sign does not match")
    if abs(time.time() - int(timestamp)) > MAX_SKEW_S:
        raise ProtocolError("bad_timestamp", f"timestamp is more than {MAX_SKEW_S} s off")
    return form


def _serve(operation: str, run: Callable[[dict[str, str]], Any]) -> Response:
    form = _form()
    return DIALECT.exchange(operation, form.get("aab301"), form.get("aac002"), lambda: run(_checked(form)))


def _verify(form: dict[str, str]) -> str:
    city, idn, face_token = city_code(form, "aab301"), id_number(form, "aac002"), text(form, "face_token")
    factor = VERIFY_TYPES[text(form, "verify_type", choices=tuple(VERIFY_TYPES))]
    return business.verify_identity(mock_state(), NAME, city, idn, face_token, factor, text(form, "verify_code"))


def _activate(form: dict[str, str]) -> Any:
    city, idn = city_code(form, "aab301"), id_number(form, "aac002")
    ticket, channel = text(form, "verify_id"), text(form, "channel")
    level = int(text(form, "sign_level", choices=("1", "2")))
    return business.activate(mock_state(), NAME, city, idn, ticket, channel, level)


@bp.post("/card/query")
def read_card() -> Response:
    return _serve("read_card", lambda form: business.read_card(
        mock_state(), NAME, city_code(form, "aab301"), id_number(form, "aac002"), text(form, "aac003")))


@bp.post("/identity/verify")
def verify_identity() -> Response:
    return _serve("verify_identity", _verify)


@bp.post("/card/sign")
def activate() -> Response:
    return _serve("activate", _activate)


@bp.post("/service/list")
def list_services() -> Response:
    return _serve("list_services", lambda form: business.list_services(mock_state(), NAME, city_code(form, "aab301")))


@bp.post("/health")
def health() -> Response:
    return _serve("health", lambda form: business.health(mock_state(), NAME, city_code(form, "aab301")))
