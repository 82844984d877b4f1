"""xml-envelope: ``<ROOT><HEADER/><BODY/></ROOT>`` with ResultCode and an SM3 DSIGN (docs/dialects.md).

``POST /xml/gateway``; requests are parsed with defusedxml. Answers are HTTP 200, or 400
for an envelope that cannot be parsed (99001).
"""
from __future__ import annotations

import datetime as dt
import hmac
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from defusedxml import ElementTree as SafeET
from flask import Blueprint, Response, request

from essc.core.dialects import DialectSpec, dialect
from essc.core.signing import canonical_string, sm3_hex

from .. import business
from ..business import MockBusinessError
from . import Dialect, ProtocolError, city_code, guard_body, id_number, mock_state, secrets, text
from .spec_dialect import play

NAME = "xml-envelope"
MSG_TYPES = {"CARD_QUERY": "read_card", "IDENTITY_VERIFY": "verify_identity", "CARD_SIGN": "activate",
             "SERVICE_LIST": "list_services", "HEALTH": "health"}
STATUS = {"normal": "0", "reported_lost": "1", "sealed": "2", "cancelled": "3", "locked": "4"}
SERVICE_CODES = {"identity_login": "A01", "social_security": "A02", "employment": "A03", "payment": "A04",
                 "medical_bill": "A05"}
VERIFY_TYPES = {"1": "sms", "2": "password"}
BUSINESS_CODES = {"not_opened": "90101", "not_synced": "90102", "card_status": "90103",
                  "identity_mismatch": "90104", "ticket_invalid": "90105", "unknown_city": "99005"}
PROTOCOL_CODES = {"unparseable": ("99001", "报文无法解析"), "bad_signature": ("99002", "签名错误"),
                  "unknown_operation": ("99003", "未知的报文类型"), "bad_request": ("99004", "缺少或无效字段"),
                  "too_large": ("99001", "报文过大")}
SEND_TIME = re.compile(r"[0-9]{14}")  # ASCII digits only, then a real calendar time
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

bp = Blueprint("xml_envelope", __name__, url_prefix="/xml")


@dataclass(frozen=True)
class Envelope:
    header: dict[str, str]  # stripped texts
    body: dict[str, str]  # raw texts, as signed


def parse_envelope(data: bytes) -> Envelope | None:
    """The envelope, or ``None`` when it cannot be parsed (bad XML, entities, no HEADER/BODY)."""
    try:
        root = SafeET.fromstring(data)
    except (ET.ParseError, ValueError):  # defusedxml's refusals are ValueErrors
        return None
    header, body = root.find("HEADER"), root.find("BODY")
    if root.tag != "ROOT" or header is None or body is None:
        return None
    return Envelope({c.tag: (c.text or "").strip() for c in header}, {c.tag: c.text or "" for c in body})


def _answer(ctx: dict[str, Any], code: str, message: str, body: list[tuple[str, Any]] = (), status: int = 200
            ) -> Response:
    root = ET.Element("ROOT")
    header = ET.SubElement(root, "HEADER")
    for tag, value in (("MsgType", ctx.get("msg_type", "")), ("MsgID", ctx.get("msg_id", "")),
                       ("ResultCode", code), ("ResultMsg", message)):
        ET.SubElement(header, tag).text = value
    body_el = ET.SubElement(root, "BODY")
    for tag, value in body:
        child = ET.SubElement(body_el, tag)
        if isinstance(value, list):  # nested, e.g. <SERVICE><CODE/><NAME/></SERVICE>
            for sub_tag, sub_value in value:
                ET.SubElement(child, sub_tag).text = sub_value
        else:
            child.text = str(value)
    payload = XML_DECLARATION + ET.tostring(root, encoding="unicode")
    return Response(payload.encode("utf-8"), status, content_type="application/xml; charset=utf-8")


class XmlEnvelope(Dialect):
    name = NAME

    def ok(self, operation: str, result: Any, ctx: dict[str, Any]) -> Response:
        if operation == "read_card":
            body = [("AAC002", result.id_number), ("AAC003", result.name), ("AAB301", result.city),
                    ("AAZ500", result.card_no), ("AAZ501", result.card_id), ("AAZ502", STATUS[result.card_status]),
                    ("AAZ508", result.generation), ("AAE008", result.bank), ("AAC067", result.mobile)]
        elif operation == "verify_identity":
            body = [("VERIFYID", result)]
        elif operation == "activate":
            body = [("AAB301", result.city), ("SIGNNO", result.sign_no), ("SIGNSEQ", result.sign_seq),
                    ("SIGNLEVEL", str(result.level)), ("VALIDATE", result.valid_until.strftime("%Y%m%d")),
                    ("SIGNDATE", result.signed_at.strftime("%Y%m%d"))]
        elif operation == "list_services":
            body = [("SERVICE", [("CODE", SERVICE_CODES[code]), ("NAME", title)]) for code, title in result]
        else:
            body = [("STATUS", "UP")]
        return _answer(ctx, "90000", "成功", body)

    def business_error(self, err: MockBusinessError, ctx: dict[str, Any]) -> Response:
        body: list[tuple[str, Any]] = []
        if err.kind == "not_synced":
            body.append(("RETRYAFTER", err.data["retry_after"]))
        elif err.kind == "card_status":
            body.append(("AAZ502", STATUS[err.data["status"]]))
        return _answer(ctx, BUSINESS_CODES[err.kind], err.message, body)

    def protocol_error(self, err: ProtocolError, ctx: dict[str, Any]) -> Response:
        code, wording = PROTOCOL_CODES[err.kind]
        return _answer(ctx, code, f"{wording}: {err.message}", status=400 if code == "99001" else 200)

    def malformed(self, ctx: dict[str, Any]) -> Response:
        return Response(XML_DECLARATION + "<ROOT><HEADER><MsgType>" + ctx.get("msg_type", "")
                        + "</MsgType><ResultCode>90000</ResultCode></HEADER><BODY><AAC002>", 200,
                        content_type="application/xml; charset=utf-8")


DIALECT = XmlEnvelope()
guard_body(bp, DIALECT, lambda: None)  # the operation is inside the (unread) envelope


def _send_time_ok(value: str) -> bool:
    if not SEND_TIME.fullmatch(value):
        return False
    try:
        dt.datetime.strptime(value, "%Y%m%d%H%M%S")
    except ValueError:
        return False
    return True


def _check(env: Envelope | None) -> tuple[str, dict[str, str]]:
    """The operation and the stripped BODY of an envelope that is whole and correctly signed."""
    if env is None:
        raise ProtocolError("unparseable", "the envelope is not XML of the form <ROOT><HEADER/><BODY/></ROOT>")
    header = env.header
    if header.get("MsgType") not in MSG_TYPES:
        raise ProtocolError("unknown_operation", f"MsgType must be one of {', '.join(MSG_TYPES)}", "MsgType")
    for field in ("SenderID", "MsgID", "SendTime", "DSIGN"):
        text(header, field)
    if not _send_time_ok(header["SendTime"]):
        raise ProtocolError("bad_request", "invalid field: SendTime (YYYYMMDDHHMMSS)", "SendTime")
    credentials = secrets(NAME)
    if header["SenderID"] != credentials["sender_id"]:
        raise ProtocolError("bad_signature", "unknown SenderID")
    expected = sm3_hex(header["MsgType"] + header["MsgID"] + canonical_string(env.body) + "&key=" + credentials["key"])
    if not hmac.compare_digest(header["DSIGN"].lower().encode(), expected.encode()):
        raise ProtocolError("bad_signature", "DSIGN does not match")
    return MSG_TYPES[header["MsgType"]], {k: v.strip() for k, v in env.body.items()}


def _run(operation: str, body: dict[str, str]) -> Any:
    state, city = mock_state(), city_code(body, "AAB301")
    if operation == "read_card":
        return business.read_card(state, NAME, city, id_number(body, "AAC002"), text(body, "AAC003"))
    if operation == "verify_identity":
        idn, face_token = id_number(body, "AAC002"), text(body, "FACETOKEN")
        factor = VERIFY_TYPES[text(body, "VERIFYTYPE", choices=tuple(VERIFY_TYPES))]
        return business.verify_identity(state, NAME, city, idn, face_token, factor, text(body, "VERIFYCODE"))
    if operation == "activate":
        idn, ticket, channel = id_number(body, "AAC002"), text(body, "VERIFYID"), text(body, "CHANNEL")
        level = int(text(body, "SIGNLEVEL", choices=("1", "2")))
        return business.activate(state, NAME, city, idn, ticket, channel, level)
    if operation == "list_services":
        return business.list_services(state, NAME, city)
    return business.health(state, NAME, city)


def _spec() -> DialectSpec | None:
    entry = dialect(NAME)
    return entry.spec if entry is not None else None


@bp.post("/gateway")
def gateway() -> Response:
    env = parse_envelope(request.get_data())
    header, body = (env.header, env.body) if env else ({}, {})
    ctx = {"msg_type": header.get("MsgType", ""), "msg_id": header.get("MsgID", "")}

    def work() -> Any:
        operation, fields = _check(env)
        return _run(operation, fields)

    spec = _spec()
    if spec is not None and header.get("MsgType") not in MSG_TYPES and any(
            op.code == header.get("MsgType") for op in spec.operations.values()):
        return play(spec)  # an operation of contract 1.2: played from the dialect's spec
    city, citizen = body.get("AAB301"), body.get("AAC002")
    return DIALECT.exchange(MSG_TYPES.get(header.get("MsgType", "")), city.strip() if city else None,
                            citizen.strip() if citizen else None, work, ctx)
