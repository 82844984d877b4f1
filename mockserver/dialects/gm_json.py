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

from essc.core.schemas import validator
from essc.core.signing import sm3_hex, sm4_decrypt, sm4_encrypt

from .. import business
from ..business import MockBusinessError
from . import Dialect, ProtocolError, city_code, guard_body, id_number, mock_state, probe, secrets, text

NAME = "gm-json"
METHODS = {"card.query": "read_card", "identity.verify": "verify_identity", "card.sign": "activate",
           "service.list": "list_services", "health": "health",
           # contract 1.2
           "card.status": "card_status", "card.pay.enable": "enable_payment", "password.reset": "reset_password",
           "contribution.query": "query_contributions", "medical.settle": "settle_medical"}
STATUS = {"normal": "正常", "reported_lost": "挂失", "sealed": "封存", "cancelled": "注销", "locked": "锁定"}
SERVICE_CODES = {"identity_login": "sfrz", "social_security": "sbfw", "employment": "jyfw", "payment": "zfjs",
                 "medical_bill": "yljs"}
BUSINESS_CODES = {"not_opened": 50101, "not_synced": 50102, "card_status": 50103, "identity_mismatch": 50104,
                  "ticket_invalid": 50105, "unknown_city": 40004, "credential_unknown": 50106,
                  "settlement_unknown": 50107, "settlement_conflict": 50108}
#: settle_medical: contract action -> ``czlx``, contract state -> ``jszt``, contribution status -> ``zt``
ACTIONS = {"yjs": "pre_settle", "js": "confirm", "cz": "reverse"}
SETTLEMENT_STATES = {"pre_settled": "01", "settled": "02", "reversed": "03"}
PAID = {"paid": "yj", "owed": "qj"}  # 已缴 / 欠缴
PROTOCOL_CODES = {"bad_signature": (40001, "签名错误"), "undecryptable": (40002, "密文无法解密"),
                  "bad_request": (40003, "缺少或无效字段"), "too_large": (40003, "报文过大")}
TIMESTAMP = re.compile(r"[0-9]{1,16}")  # Unix milliseconds in ASCII digits
PASSWORD = re.compile(r"[0-9]{6}")
MONTH = re.compile(r"(19|20)[0-9]{2}(0[1-9]|1[0-2])")

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
        elif operation in CARD_USE:
            payload = CARD_USE[operation](result)
        else:
            payload = {"zt": "up"}
        return _answer(0, "成功", payload)

    def business_error(self, err: MockBusinessError, ctx: dict[str, Any]) -> Response:
        payload: dict[str, Any] = {}
        if err.kind == "not_synced":
            payload["retryAfter"] = err.data["retry_after"]
        elif err.kind == "card_status":
            payload["kzt"] = STATUS[err.data["status"]]
        elif err.kind == "settlement_conflict" and err.data.get("state"):
            payload["jszt"] = SETTLEMENT_STATES[err.data["state"]]
        return _answer(BUSINESS_CODES[err.kind], err.message, payload)

    def protocol_error(self, err: ProtocolError, ctx: dict[str, Any]) -> Response:
        code, wording = PROTOCOL_CODES[err.kind]
        return _answer(code, f"{wording}: {err.message}")

    def malformed(self, ctx: dict[str, Any]) -> Response:
        return Response('{"code": 0, "message": "成功", "encryptData": "', 200,
                        content_type="application/json; charset=utf-8")


def _card_state(result: business.CardState) -> dict[str, Any]:
    payload: dict[str, Any] = {"xzqh": result.city, "kzt": STATUS[result.status],
                               "cxsj": result.checked_at.strftime("%Y%m%d%H%M%S")}
    if result.sign_level is not None:
        payload["qydj"] = result.sign_level
    return payload


def _binding(result: business.PaymentBinding) -> dict[str, Any]:
    return {"xzqh": result.city, "qyh": result.sign_no, "qydj": result.sign_level, "yh": result.bank,
            "zhym": result.account_hint}


def _history(result: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
    city, months = result
    return {"xzqh": city, "jfjl": [{"ny": e["month"], "xz": e["insurance"], "jfjs": e["base_cents"],
                                    "jfje": e["paid_cents"], "zt": PAID[e["status"]]} for e in months]}


def _settlement(result: dict[str, Any]) -> dict[str, Any]:
    return {"jsid": result["settlement_id"], "jszt": SETTLEMENT_STATES[result["state"]], "zje": result["total_cents"],
            "tcje": result["fund_cents"], "zfje": result["self_pay_cents"], "lsh": result["city_ref"]}


#: contract 1.2 operation -> its answer payload
CARD_USE = {
    "card_status": _card_state,
    "enable_payment": _binding,
    "reset_password": lambda result: {"xzqh": result[0], "czrq": result[1].strftime("%Y%m%d")},
    "query_contributions": _history,
    "settle_medical": _settlement,
}

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
    if operation == "health":
        return business.health(state, NAME, city)
    return _run_card_use(operation, data, city)


def _run_card_use(operation: str, data: dict[str, Any], city: str) -> Any:
    """The operations of contract 1.2."""
    state, idn = mock_state(), id_number(data, "sfzh")
    if operation == "card_status":
        sign_no = data.get("qyh")
        return business.card_status(state, NAME, city, idn, text(data, "qyh") if sign_no is not None else None)
    if operation == "enable_payment":
        return business.enable_payment(state, NAME, city, idn, text(data, "qyh"), text(data, "yzid"),
                                       text(data, "qd"))
    if operation == "reset_password":
        password = text(data, "xmm")
        if not PASSWORD.fullmatch(password):
            raise ProtocolError("bad_request", "invalid field: xmm (6 digits)", "xmm")
        return city, business.reset_password(state, NAME, city, idn, text(data, "yzid"), password)
    if operation == "query_contributions":
        first, last = text(data, "ksny"), text(data, "jsny")
        if not (MONTH.fullmatch(first) and MONTH.fullmatch(last)):
            raise ProtocolError("bad_request", "invalid field: ksny/jsny (YYYYMM)", "ksny")
        return city, business.query_contributions(state, NAME, city, idn, first, last)
    request = {"action": ACTIONS.get(text(data, "czlx"), ""), "settlement_id": text(data, "jsid"), "aac002": idn,
               "aab301": city, "sign_no": text(data, "qyh"), "busi_type": text(data, "ywlx"),
               "hospital": {"code": text(data, "jgbm"), "name": text(data, "jgmc")}}
    items = data.get("fymx")
    if items is not None:
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ProtocolError("bad_request", "invalid field: fymx (a list of objects)", "fymx")
        request["items"] = [{"code": i.get("xmbm"), "name": i.get("xmmc"), "category": i.get("lb"),
                             "amount_cents": i.get("je"), "quantity": i.get("sl")} for i in items]
    problem = validator("settlement_request").first_problem(request)
    if problem is not None:
        raise ProtocolError("bad_request", f"invalid field: {problem.path} ({problem.rule})", problem.path)
    return business.settle_medical(state, NAME, city, request)


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
