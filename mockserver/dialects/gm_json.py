"""gm-json: JSON sealed with national crypto - SM4 payload, SM3 signature (docs/dialects.md).

``POST /gm/api/<method>``; answers are HTTP 200 ``{"code", "message", "encryptData", "signData"}``
unless a fault is injected.
"""
from __future__ import annotations

import hmac
import json
import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from essc.core.signing import sm3_hex, sm4_decrypt, sm4_encrypt

from .. import business
from ..business import MockBusinessError
from . import Dialect, ProtocolError, city_code, guard_body, id_number, mock_state, probe, secrets, text

NAME = "gm-json"
METHODS = {"card.query": "read_card", "identity.verify": "verify_identity", "card.sign": "activate",
           "service.list": "list_services", "health": "health"}
STATUS = {"normal": "正常", "reported_lost": "挂失", "sealed": "封存", "cancelled": "注销", "locked": "锁定"}
SERVICE_CODES = {"identity_login": "sfrz", "social_security": "sbfw", "employment": "jyfw", "payment": "zfjs",
                 "medical_bill": "yljs"}
BUSINESS_CODES = {"not_opened": 50101, "not_synced": 50102, "card_status": 50103, "identity_mismatch": 50104,
                  "ticket_invalid": 50105, "unknown_city": 40004}
PROTOCOL_CODES = {"bad_signature": (40001, "签名错误"), "undecryptable": (40002, "密文无法解密"),
                  "bad_request": (40003, "缺少或无效字段"), "too_large": (40003, "报文过大")}
TIMESTAMP = re.compile(r"[0-9]{1,16}")  # Unix milliseconds in ASCII digits

bp = Blueprint("gm_json", __name__, url_prefix="/gm")


def _sm4_key() -> bytes:
    return secrets(NAME)["sm4_key"].encode()


def _answer(code: int, message: str, payload: dict[str, Any] | None = None) -> Response:
    encrypted = sm4_encrypt(_sm4_key(), json.dumps(payload or {}).encode())
    return jsonify({"code": code, "message": message, "encryptData": encrypted,
                    "signData": sm3_hex(str(code) + encrypted + secrets(NAME)["sm3_secret"])})


class GmJson(Dialect):
    name = NAME

    def ok(self, operation: str, result: Any, ctx: dict[str, Any]) -> Response:
        if operation == "read_card":
            payload = {"sfzh": result.id_number, "xm": result.name, "xzqh": result.city, "kh": result.card_no,
                       "sbm": result.card_id, "kzt": STATUS[result.card_status], "gfbb": result.generation,
                       "yh": result.bank, "sjh": result.mobile}
        elif operation == "verify_identity":
            payload = {"yzid": result}
        elif operation == "activate":
            payload = {"xzqh": result.city, "qyh": result.sign_no, "qyxh": result.sign_seq, "qydj": result.level,
                       "yxq": result.valid_until.strftime("%Y%m%d"), "qyrq": result.signed_at.strftime("%Y%m%d")}
        elif operation == "list_services":
            payload = {"fwlb": [{"fwdm": SERVICE_CODES[code], "fwmc": title} for code, title in result]}
        else:
            payload = {"zt": "up"}
        return _answer(0, "成功", payload)

    def business_error(self, err: MockBusinessError, ctx: dict[str, Any]) -> Response:
        payload: dict[str, Any] = {}
        if err.kind == "not_synced":
            payload["retryAfter"] = err.data["retry_after"]
        elif err.kind == "card_status":
            payload["kzt"] = STATUS[err.data["status"]]
        return _answer(BUSINESS_CODES[err.kind], err.message, payload)

    def protocol_error(self, err: ProtocolError, ctx: dict[str, Any]) -> Response:
        code, wording = PROTOCOL_CODES[err.kind]
        return _answer(code, f"{wording}: {err.message}")

    def malformed(self, ctx: dict[str, Any]) -> Response:
        return Response('{"code": 0, "message": "成功", "encryptData": "', 200,
                        content_type="application/json; charset=utf-8")


DIALECT = GmJson()
guard_body(bp, DIALECT, lambda: METHODS.get((request.view_args or {}).get("method", "")))


def decrypt_payload(envelope: Any) -> dict[str, Any] | None:
    """The decrypted JSON object of ``encryptData``, or ``None`` if there is none."""
    encrypted = envelope.get("encryptData") if isinstance(envelope, dict) else None
    if not isinstance(encrypted, str):
        return None
    try:
        payload = json.loads(sm4_decrypt(_sm4_key(), encrypted).decode("utf-8"))
    except (ValueError, RecursionError):  # not base64, bad length/padding, not UTF-8, not JSON, too deep
        return None
    return payload if isinstance(payload, dict) else None


def _check(envelope: Any, payload: dict[str, Any] | None) -> dict[str, Any]:
    """The payload of an envelope that is whole, correctly signed and decryptable."""
    if not isinstance(envelope, dict):
        raise ProtocolError("bad_request", "body: the request body must be a JSON object", "body")
    for field in ("appId", "encryptData", "signData"):
        text(envelope, field)
    timestamp = envelope.get("timestamp")
    if type(timestamp) is int and timestamp >= 0:
        timestamp = str(timestamp)
    if not isinstance(timestamp, str) or not TIMESTAMP.fullmatch(timestamp):
        raise ProtocolError("bad_request", "missing or invalid field: timestamp (Unix milliseconds, ASCII digits)",
                            "timestamp")
    credentials = secrets(NAME)
    if envelope["appId"] != credentials["app_id"]:
        raise ProtocolError("bad_signature", "unknown appId")
    expected = sm3_hex(envelope["appId"] + timestamp + envelope["encryptData"] + credentials["sm3_secret"])
    if not hmac.compare_digest(envelope["signData"].lower().encode(), expected.encode()):
        raise ProtocolError("bad_signature", "signData does not match")
    if payload is None:
        raise ProtocolError("undecryptable", "encryptData is not SM4-encrypted JSON of an object")
    return payload


def _run(operation: str, data: dict[str, Any]) -> Any:
    state, city = mock_state(), city_code(data, "xzqh")
    if operation == "read_card":
        return business.read_card(state, NAME, city, id_number(data, "sfzh"), text(data, "xm"))
    if operation == "verify_identity":
        idn, face_token = id_number(data, "sfzh"), text(data, "rlToken")
        factor = text(data, "yzlx", choices=("sms", "password"))
        return business.verify_identity(state, NAME, city, idn, face_token, factor, text(data, "yzm"))
    if operation == "activate":
        idn, ticket, channel = id_number(data, "sfzh"), text(data, "yzid"), text(data, "qd")
        level = data.get("qydj")
        if type(level) is not int or level not in (1, 2):
            raise ProtocolError("bad_request", "missing or invalid field: qydj (1 or 2)", "qydj")
        return business.activate(state, NAME, city, idn, ticket, channel, level)
    if operation == "list_services":
        return business.list_services(state, NAME, city)
    return business.health(state, NAME, city)


@bp.post("/api/<method>")
def api(method: str) -> Response:
    operation = METHODS.get(method)
    envelope = request.get_json(force=True, silent=True)
    payload = decrypt_payload(envelope)

    def work() -> Any:
        if operation is None:
            raise ProtocolError("bad_request", f"unknown method (one of {', '.join(METHODS)})", "method")
        return _run(operation, _check(envelope, payload))

    return DIALECT.exchange(operation, probe(payload, "xzqh"), probe(payload, "sfzh"), work)
