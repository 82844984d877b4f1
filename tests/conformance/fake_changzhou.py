"""常州's e-SSC test system, as its interface document describes it - written by hand,
independently of dialects/soap-1.1.yaml (it does not import the spec engine): plays "the
real city" for recorded conformance.

Interface document (summary): SOAP 1.1, POST /ws/EsscService, element EsscRequest in
namespace http://essc.czhrss.example/ws with ReqHead (TransCode, ChannelNo, TransSeq,
Sign) and ReqBody; Sign = upper(md5(TransCode|ChannelNo|TransSeq|k=v&k=v over the ReqBody
fields sorted, empty skipped|key)). Answer EsscResponse with RspHead (TransCode, TransSeq,
RetCode, RetMsg, RspTime) and RspBody. Refusals (9001 bad sign, 9002 bad field, 9003
unknown TransCode, 9004 unparseable) are SOAP Faults (soapenv:Client) on HTTP 500 with
detail/RetCode. Trans codes: E101 card query, E102 identity check, E103 sign, E104 services,
E105 health. Result codes: 0000 ok, 1001 not opened, 1002 no record (RspBody/RetryAfter),
1003 card status (RspBody/CardStatus), 1004 identity mismatch, 1005 bad VerifyId, 1009
city not served. Card status 01 normal, 02 lost, 03 sealed, 04 cancelled, 05 locked.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
import xml.etree.ElementTree as ET
from wsgiref.simple_server import WSGIRequestHandler, make_server

ENV = "http://schemas.xmlsoap.org/soap/envelope/"
NS = "http://essc.czhrss.example/ws"
KEY = "cz-test-key-2026"  # the key the city gave the platform for its TEST system
CHANNEL = "essc-platform"

#: the test system's citizens: ID number -> (name, card number, status, phone)
CITIZENS = {
    "320402199003071235": ("钱多多", "C32040001", "01", "13912345678"),
    "320402198505126422": ("孙悟净", "C32040002", "02", "13812341234"),
}


class FakeChangzhou:
    def __init__(self, field_for_card_number: str = "CardNo") -> None:
        self.tickets: dict[str, str] = {}
        self.signed: dict[str, str] = {}
        self.card_field = field_for_card_number
        self.requests = 0

    # -- wsgi ----------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        self.requests += 1
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size) if size else b""
        if environ["REQUEST_METHOD"] != "POST" or environ["PATH_INFO"] != "/ws/EsscService":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        status, xml = self.handle(body)
        start_response(status, [("Content-Type", "text/xml; charset=utf-8")])
        return [xml]

    def handle(self, body: bytes) -> tuple[str, bytes]:
        try:
            root = ET.fromstring(body)
            request = root.find(f"{{{ENV}}}Body/{{{NS}}}EsscRequest")
            head, req = request.find("ReqHead"), request.find("ReqBody")
            fields = {child.tag: (child.text or "") for child in req}
            trans, channel, seq = (head.findtext(k) or "" for k in ("TransCode", "ChannelNo", "TransSeq"))
            sign = head.findtext("Sign") or ""
        except (ET.ParseError, AttributeError):
            return self.fault("9004", "报文无法解析")
        canonical = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if fields[k])
        expected = hashlib.md5(f"{trans}|{channel}|{seq}|{canonical}|{KEY}".encode()).hexdigest().upper()
        if channel != CHANNEL or sign != expected:
            return self.fault("9001", "签名错误")
        handler = {"E101": self.card, "E102": self.identity, "E103": self.sign, "E104": self.services,
                   "E105": self.health}.get(trans)
        if handler is None:
            return self.fault("9003", "未知交易码")
        if fields.get("AAB301") != "320400":
            return self.answer(trans, seq, "1009", "本系统不受理该城市业务", {})
        try:
            code, message, out = handler(fields)
        except KeyError as missing:
            return self.fault("9002", f"缺少字段 {missing}")
        return self.answer(trans, seq, code, message, out)

    # -- business ---------------------------------------------------------------------------------
    def card(self, f):
        person = CITIZENS.get(f["AAC002"])
        if person is None or person[0] != f["AAC003"]:
            return "1002", "查无此人", {"RetryAfter": "86400"}
        name, card_no, status, phone = person
        return "0000", "成功", {"AAC002": f["AAC002"], "AAC003": name, "AAB301": "320400", self.card_field: card_no,
                               "CardId": hashlib.md5(card_no.encode()).hexdigest().upper(), "CardStatus": status,
                               "CardVersion": "3", "BankCode": "江南农商银行", "Mobile": phone}

    def identity(self, f):
        if f["AAC002"] not in CITIZENS or not f["FaceToken"].startswith("live-") or f["VerifyCode"] != (
                "246810" if f["VerifyType"] == "1" else "135790"):
            return "1004", "人脸或验证码不符", {}
        ticket = "V" + secrets.token_hex(8).upper()
        self.tickets[ticket] = f["AAC002"]
        return "0000", "成功", {"VerifyId": ticket}

    def sign(self, f):
        if self.tickets.get(f["VerifyId"]) != f["AAC002"]:
            return "1005", "核验凭证无效", {}
        status = CITIZENS[f["AAC002"]][2]
        if status != "01":
            return "1003", "卡状态异常", {"CardStatus": status}
        number = self.signed.setdefault(f["AAC002"], "CZ" + secrets.token_hex(6).upper())
        return "0000", "成功", {"AAB301": "320400", "SignNo": number, "SignSeq": "1", "SignLevel": f["SignLevel"],
                               "ValidDate": "2036-11-27", "SignDate": "2026-11-27"}

    def services(self, f):
        return "0000", "成功", {"Services": {"Service": [{"Code": "S01", "Name": "身份认证"},
                                                         {"Code": "S02", "Name": "社保查询"}]}}

    def health(self, f):
        return "0000", "成功", {"Status": "UP"}

    # -- envelopes --------------------------------------------------------------------------------
    def answer(self, trans, seq, code, message, body) -> tuple[str, bytes]:
        def put(parent, data):
            for key, value in data.items():
                for item in value if isinstance(value, list) else [value]:
                    child = ET.SubElement(parent, key)
                    if isinstance(item, dict):
                        put(child, item)
                    else:
                        child.text = item

        env = ET.Element(f"{{{ENV}}}Envelope")
        response = ET.SubElement(ET.SubElement(env, f"{{{ENV}}}Body"), f"{{{NS}}}EsscResponse")
        put(response, {"RspHead": {"TransCode": trans, "TransSeq": seq, "RetCode": code, "RetMsg": message,
                                   "RspTime": "20261127120000"}, "RspBody": body})
        return "200 OK", ET.tostring(env, encoding="utf-8")

    def fault(self, code, message) -> tuple[str, bytes]:
        env = ET.Element(f"{{{ENV}}}Envelope")
        fault = ET.SubElement(ET.SubElement(env, f"{{{ENV}}}Body"), f"{{{ENV}}}Fault")
        ET.SubElement(fault, "faultcode").text = "soapenv:Client"
        ET.SubElement(fault, "faultstring").text = message
        ET.SubElement(ET.SubElement(fault, "detail"), "RetCode").text = code
        return "500 Internal Server Error", ET.tostring(env, encoding="utf-8")


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


def serve(app: FakeChangzhou):
    """Start the fake city on a free port in a thread; returns (url, stop)."""
    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop():
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{server.server_port}", stop
