"""Adapter of the ministry's national e-SSC gateway (xml-envelope, docs/dialects.md "xml-envelope").

The gateway serves every city whose records sit in the national card-holder base; the city
travels in ``AAB301``, so ONE adapter object serves all of them. Requests are
``<ROOT><HEADER/><BODY/></ROOT>`` envelopes signed with an SM3 ``DSIGN``; an answer must echo
our MsgType and MsgID before anything in it is believed.
"""
from __future__ import annotations

import time
import uuid
from datetime import datetime
from xml.etree import ElementTree

from essc.core import CityAdapter
from essc.core.answers import CityCall, named_fields, retry_seconds
from essc.core.errors import (
    CardStatusAbnormal,
    CityNotOpened,
    EsscError,
    IdentityMismatch,
    InvalidInput,
    RecordNotSynced,
)
from essc.core.http import parse_xml
from essc.core.settings import PluginContext
from essc.core.signing import canonical_string, sm3_hex

from . import const


def _children(element: ElementTree.Element | None) -> dict[str, str]:
    """``{tag: text}`` of an element's children (text stripped; an empty element gives "")."""
    if element is None:
        return {}
    return {child.tag: (child.text or "").strip() for child in element}


class MohrssAdapter(CityAdapter):
    """Contract <-> xml-envelope translation for every city of the national gateway."""

    def __init__(self, context: PluginContext) -> None:
        self.context = context
        self.log = context.logger
        self.http = context.http_client()
        self._sender_id = context.credential(const.CREDENTIAL_SENDER_ID, const.DEFAULT_SENDER_ID)
        self._key = context.credential(const.CREDENTIAL_DSIGN_KEY, const.DEFAULT_DSIGN_KEY)

    # --- operations -------------------------------------------------------------------------
    def read_card(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "read_card")
        body = _children(self._call(call, const.MSG_CARD_QUERY, {
            "AAC002": request["aac002"], "AAC003": request["aac003"], "AAB301": call.city}))
        record = {
            "aac002": call.text(body, "AAC002"),
            "aac003": call.text(body, "AAC003"),
            "aab301": call.text(body, "AAB301"),
            "aaz500": call.text(body, "AAZ500"),
            "aaz501": call.optional(body, "AAZ501"),
            "aaz502": call.lookup(const.CARD_STATUSES, body.get("AAZ502"), "AAZ502"),
            "aaz508": call.lookup(const.GENERATIONS, body.get("AAZ508"), "AAZ508"),
            "aae008": call.optional(body, "AAE008"),
            "aac067": call.optional(body, "AAC067"),
        }
        return call.fits("card_record", {k: v for k, v in record.items() if v is not None})

    def verify_identity(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "verify_identity")
        factor = request["factor"]
        if factor not in const.VERIFY_TYPES:
            raise InvalidInput("unsupported second factor", field="factor", **call.ctx)
        body = _children(self._call(call, const.MSG_IDENTITY_VERIFY, {
            "AAC002": request["aac002"], "AAB301": call.city, "FACETOKEN": request["face_token"],
            "VERIFYTYPE": const.VERIFY_TYPES[factor], "VERIFYCODE": request["code"]}))
        return call.fits("verification",
                            {"verified": True, "verify_id": call.text(body, "VERIFYID"), "factor": factor})

    def activate(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "activate")
        level = request.get("sign_level", 1)
        if level not in const.SIGN_LEVELS_OUT:
            raise InvalidInput("sign_level must be 1 or 2", field="sign_level", **call.ctx)
        body = _children(self._call(call, const.MSG_CARD_SIGN, {
            "AAC002": request["aac002"], "AAB301": call.city, "VERIFYID": request["verify_id"],
            "CHANNEL": request["channel"], "SIGNLEVEL": const.SIGN_LEVELS_OUT[level]}, idempotent=False))
        credential = {
            "aab301": call.text(body, "AAB301"),
            "signNo": call.text(body, "SIGNNO"),
            "signSeq": call.text(body, "SIGNSEQ"),
            "signLevel": call.lookup(const.SIGN_LEVELS_IN, body.get("SIGNLEVEL"), "SIGNLEVEL"),
            "validate": call.date8(body.get("VALIDATE"), "VALIDATE"),
            "signDate": call.date8(body.get("SIGNDATE"), "SIGNDATE"),
        }
        return call.fits("credential", credential)

    def list_services(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "list_services")
        body = self._call(call, const.MSG_SERVICE_LIST, {"AAB301": call.city})
        items = [_children(e) for e in body.findall(const.SERVICE)]
        services = call.services(items, const.SERVICE_CODE, const.SERVICE_NAME, const.SERVICES)
        return call.fits("service_list", {"aab301": call.city, "services": services})

    def health(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "health")
        started = time.perf_counter()
        body = _children(self._call(call, const.MSG_HEALTH, {"AAB301": call.city}))
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        state = call.text(body, "STATUS")
        return call.fits("health", call.health(state, const.HEALTH_UP, const.HEALTH_DOWN, latency_ms))

    # --- wire -------------------------------------------------------------------------------
    def _envelope(self, msg_type: str, msg_id: str, fields: dict[str, str]) -> bytes:
        """The signed request envelope, UTF-8."""
        dsign = sm3_hex(msg_type + msg_id + canonical_string(fields) + const.DSIGN_KEY_SEPARATOR + self._key)
        root = ElementTree.Element(const.ROOT)
        header = ElementTree.SubElement(root, const.HEADER)
        for tag, text in ((const.MSG_TYPE, msg_type), (const.SENDER_ID, self._sender_id), (const.MSG_ID, msg_id),
                          (const.SEND_TIME, datetime.now(const.SEND_TIME_ZONE).strftime(const.SEND_TIME_FORMAT)),
                          (const.DSIGN, dsign)):
            ElementTree.SubElement(header, tag).text = text
        body = ElementTree.SubElement(root, const.BODY)
        for tag, text in fields.items():
            ElementTree.SubElement(body, tag).text = text
        return (const.XML_DECLARATION + ElementTree.tostring(root, encoding="unicode")).encode("utf-8")

    def _call(self, call: CityCall, msg_type: str, fields: dict[str, str], *,
              idempotent: bool = True) -> ElementTree.Element:
        """POST one envelope; return the BODY of a 90000 answer, raise the typed error otherwise."""
        msg_id = uuid.uuid4().hex
        resp = self.http.request("POST", const.PATH, city=call.city, operation=call.operation, idempotent=idempotent,
                                 data=self._envelope(msg_type, msg_id, fields),
                                 headers={"Content-Type": const.CONTENT_TYPE})
        root = parse_xml(resp, city=call.city, operation=call.operation)
        header = root.find(const.HEADER)
        if root.tag != const.ROOT or header is None:
            raise call.malformed(f"the answer is not a ROOT/HEADER envelope (HTTP {resp.status_code})")
        head = _children(header)
        code = head.get(const.RESULT_CODE)
        if not code:
            raise call.malformed(f"the answer lacks a ResultCode (HTTP {resp.status_code})")
        if code != const.ENVELOPE_NOT_PARSEABLE and (head.get(const.MSG_ID) != msg_id
                                                     or head.get(const.MSG_TYPE) != msg_type):
            raise call.malformed("the answer does not echo our MsgID and MsgType")
        body = root.find(const.BODY)
        if code == const.SUCCESS:
            if body is None:
                raise call.malformed("the answer lacks a BODY")
            return body
        raise self._business_error(call, code, head, _children(body))

    def _business_error(self, call: CityCall, code: str, head: dict[str, str], body: dict[str, str]) -> EsscError:
        kind = const.ERRORS.get(code)
        if kind is None:
            return call.malformed("the answer has an unknown ResultCode")
        self.log.debug("%s city=%s op=%s: ResultCode %s", self.context.name, call.city, call.operation, code)
        if kind == "not_opened":
            return CityNotOpened(f"the gateway answered {code}", **call.ctx)
        if kind == "not_synced":
            retry_after = retry_seconds(body.get(const.RETRY_AFTER_TAG))
            return RecordNotSynced(f"the gateway answered {code}", retry_after=retry_after, **call.ctx)
        if kind == "card_status":
            status_ = const.CARD_STATUSES.get(body.get(const.STATUS_TAG))
            if status_ in (None, "normal"):
                return call.malformed(f"{code} without an abnormal card status")
            return CardStatusAbnormal(status=status_, **call.ctx)
        if kind == "identity":
            return IdentityMismatch(f"the gateway answered {code}", **call.ctx)
        fields = named_fields(head.get(const.RESULT_MSG), const.REQUEST_FIELDS)
        named = f"; field(s) named: {', '.join(fields)}" if fields else ""
        return call.rejected(f"the gateway rejected the request with {code} ({const.REJECTIONS[code]}){named}")

