"""The mock under abuse, part 2: deep nesting, odd signed timestamps, non-ASCII digits, NaN
and Infinity in the admin API, and a small fuzz of each dialect - protocol errors (or 400
from the admin API), never a 500."""
from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from essc.core.signing import hmac_sha256, sm3_hex, sm4_encrypt

REST = {"Authorization": "Bearer mock-rest-token"}
DEEP = 50_000
#: Deterministic and quiet: the same examples on every run, no example database left behind.
#: ESSC_MOCK_FUZZ_EXAMPLES=5000 ESSC_MOCK_FUZZ_RANDOM=1 for a longer, random hunt.
FUZZ = settings(max_examples=int(os.environ.get("ESSC_MOCK_FUZZ_EXAMPLES", "150")), deadline=None,
                derandomize=not os.environ.get("ESSC_MOCK_FUZZ_RANDOM"), database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def digits(value: str, zero: str) -> str:
    """``value``'s ASCII digits written with the digit zero ``zero`` (e.g. full-width)."""
    return "".join(chr(ord(zero) + int(c)) if c.isdigit() else c for c in value)


FULL_WIDTH, ARABIC_INDIC, DEVANAGARI = "\uff10", "\u0660", "\u0966"


# -- deep nesting ------------------------------------------------------------------------------
def deep_json(depth: int = DEEP) -> bytes:
    return b"[" * depth + b"]" * depth


def deep_object(depth: int = DEEP) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("body", [deep_json(), deep_object()], ids=["array", "object"])
@pytest.mark.parametrize("path", ["/rest/v1/cards/query", "/rest/v1/identity/verify", "/rest/v1/credentials"])
def test_rest_json_deep_nesting(client, answer_of, path, body):
    resp = client.post(path, data=body, content_type="application/json", headers=REST)
    assert answer_of("rest-json", resp)[:2] == (400, "BAD_REQUEST")


@pytest.mark.parametrize("body", [deep_json(), deep_object()], ids=["array", "object"])
def test_gm_json_deep_envelope(client, answer_of, body):
    resp = client.post("/gm/api/card.query", data=body, content_type="application/json")
    assert answer_of("gm-json", resp)[1] == "40003"


def test_gm_json_deep_payload_sealed_and_signed(gm, answer_of):
    """The nesting inside the SM4-encrypted payload, under a valid signature."""
    timestamp = str(int(time.time() * 1000))
    encrypted = sm4_encrypt(gm.KEY, deep_object(20_000))
    envelope = {"appId": "essc-mock", "timestamp": timestamp, "encryptData": encrypted,
                "signData": sm3_hex("essc-mock" + timestamp + encrypted + gm.SECRET)}
    assert answer_of("gm-json", gm.raw("card.query", envelope))[1] == "40002"


def test_pinyin_form_deep_json_body(client, answer_of):
    resp = client.post("/pinyin/card/query", data=deep_json(), content_type="application/json")
    assert answer_of("pinyin-form", resp)[1] == "9002"


@pytest.mark.parametrize("where", ["root", "body"])
def test_xml_envelope_deep_nesting(xml, answer_of, where):
    depth = 30_000  # 7 bytes a level: within the default body limit
    nest = b"<a>" * depth + b"</a>" * depth
    if where == "root":
        data = nest
    else:
        data = (b"<ROOT><HEADER><MsgType>HEALTH</MsgType></HEADER><BODY><AAB301>" + nest
                + b"</AAB301></BODY></ROOT>")
    assert answer_of("xml-envelope", xml.raw(data))[1] in ("99001", "99004")


@pytest.mark.parametrize("path, method", [("/__admin/faults", "POST"), ("/__admin/clock", "POST"),
                                          ("/__admin/cities", "POST"), ("/__admin/cities/330100", "PUT"),
                                          ("/__admin/reset", "POST")])
def test_admin_deep_nesting(client, path, method):
    resp = client.open(path, method=method, data=deep_json(), content_type="application/json")
    assert resp.status_code == 400 and resp.get_json() == {"error": "the request body must be a JSON object"}


# -- signed timestamps -------------------------------------------------------------------------
def _now_s() -> str:
    return str(int(time.time()))


ODD_SECONDS = {
    "full-width": lambda: digits(_now_s(), FULL_WIDTH),
    "arabic-indic": lambda: digits(_now_s(), ARABIC_INDIC),
    "devanagari": lambda: digits(_now_s(), DEVANAGARI),
    "superscript": lambda: "\u00b2" * 10,
    "huge": lambda: "9" * 5000,
    "negative": lambda: "-" + _now_s(),
    "exponent": lambda: "1.7e9",
    "hex": lambda: "0x65a0bc00",
    "thirteen digits": lambda: "9" * 13,
    "underscore": lambda: _now_s()[:4] + "_" + _now_s()[4:],
}


@pytest.mark.parametrize("odd", list(ODD_SECONDS))
def test_pinyin_form_odd_timestamp(pinyin, answer_of, odd):
    form = {"appid": "essc-mock", "timestamp": ODD_SECONDS[odd](), "nonce": uuid.uuid4().hex, "aab301": "350100"}
    form["sign"] = hmac_sha256(form, "mock-hmac-secret")  # correctly signed: the timestamp itself is refused
    status, code, message = answer_of("pinyin-form", pinyin.raw("/health", form))
    assert code == "9002" and "timestamp" in message


def test_pinyin_form_ascii_timestamp_still_accepted(pinyin):
    assert pinyin.call("/health", {"aab301": "350100"})["code"] == "0000"


def _now_ms() -> str:
    return str(int(time.time() * 1000))


ODD_MILLIS = {
    "full-width": lambda: digits(_now_ms(), FULL_WIDTH),
    "arabic-indic": lambda: digits(_now_ms(), ARABIC_INDIC),
    "superscript": lambda: "\u00b9" * 13,
    "huge": lambda: "9" * 5000,
    "negative int": lambda: -int(_now_ms()),
    "float": lambda: time.time() * 1000,
    "boolean": lambda: True,
    "null": lambda: None,
    "list": lambda: [_now_ms()],
    "signed string": lambda: "+" + _now_ms(),
    "spaces": lambda: " " + _now_ms() + " ",
}


@pytest.mark.parametrize("odd", list(ODD_MILLIS))
def test_gm_json_odd_timestamp(gm, answer_of, odd):
    timestamp = ODD_MILLIS[odd]()
    encrypted = sm4_encrypt(gm.KEY, json.dumps({"xzqh": "510100"}).encode())
    envelope = {"appId": "essc-mock", "timestamp": timestamp, "encryptData": encrypted,
                "signData": sm3_hex("essc-mock" + str(timestamp) + encrypted + gm.SECRET)}
    status, code, message = answer_of("gm-json", gm.raw("health", envelope))
    assert code == "40003" and "timestamp" in message


def test_gm_json_integer_timestamp_accepted(gm, answer_of):
    timestamp = int(_now_ms())
    encrypted = sm4_encrypt(gm.KEY, json.dumps({"xzqh": "510100"}).encode())
    envelope = {"appId": "essc-mock", "timestamp": timestamp, "encryptData": encrypted,
                "signData": sm3_hex("essc-mock" + str(timestamp) + encrypted + gm.SECRET)}
    assert answer_of("gm-json", gm.raw("health", envelope))[1] == "0"


ODD_SEND_TIMES = {
    "full-width": digits("20261125103000", FULL_WIDTH),
    "arabic-indic": digits("20261125103000", ARABIC_INDIC),
    "month 13": "20261325103000",
    "hour 24": "20261125243000",
    "30 February": "20260230103000",
    "13 digits": "2026112510300",
    "15 digits": "202611251030000",
    "iso": "2026-11-25T10:30",
}


@pytest.mark.parametrize("odd", list(ODD_SEND_TIMES))
def test_xml_envelope_odd_send_time(xml, answer_of, odd):
    data = xml.envelope("HEALTH", {"AAB301": "370200"}).replace(b"20261125103000",
                                                                 ODD_SEND_TIMES[odd].encode())
    status, code, message = answer_of("xml-envelope", xml.raw(data))
    assert code == "99004" and "SendTime" in message


@pytest.mark.parametrize("zero", [FULL_WIDTH, ARABIC_INDIC])
def test_non_ascii_digits_in_signed_id_and_city_fields(citizen, rest, pinyin, xml, gm, answer_of, zero):
    """Correctly signed requests whose ID number or city code is written in other digits."""
    person = citizen("350100")
    idn, city = digits(person["id_number"], zero), digits("350100", zero)
    for fields in ({"aac002": idn, "aac003": person["name"], "aab301": "350100"},
                   {"aac002": person["id_number"], "aac003": person["name"], "aab301": city}):
        assert pinyin.call("/card/query", fields)["code"] == "9002"
    person = citizen("370200")
    body = {"AAC002": digits(person["id_number"], zero), "AAC003": person["name"], "AAB301": "370200"}
    assert xml.call("CARD_QUERY", body)[0]["ResultCode"] == "99004"
    person = citizen("510100")
    assert gm.call("card.query", {"sfzh": person["id_number"], "xm": person["name"],
                                  "xzqh": digits("510100", zero)})[0] == 40003
    person = citizen("330100")
    resp = rest.call("POST", "/cards/query", {"cityCode": "330100", "idNumber": digits(person["id_number"], zero),
                                              "name": person["name"]})
    assert answer_of("rest-json", resp)[:2] == (400, "BAD_REQUEST")


# -- the admin API: NaN and Infinity -----------------------------------------------------------
NOT_FINITE = ["NaN", "Infinity", "-Infinity", "1e999"]
CITY = '{"code": "320100", "name": "南京", "province": "江苏", "dialect": "rest-json", "mode": "delayed", '
#: Every numeric input of the admin API: (method, path, JSON body with X for the number, field).
NUMERIC_INPUTS = [
    ("POST", "/__admin/clock", '{"advance": X}', "advance"),
    ("PUT", "/__admin/cities/330100", '{"sync_delay_s": X}', "sync_delay_s"),
    ("PUT", "/__admin/cities/330100", '{"sync_after_attempts": X}', "sync_after_attempts"),
    ("POST", "/__admin/cities", CITY + '"sync_delay_s": X}', "sync_delay_s"),
    ("POST", "/__admin/cities", CITY + '"sync_after_attempts": X}', "sync_after_attempts"),
    ("POST", "/__admin/faults", '{"kind": "latency", "latency_ms": X}', "latency_ms"),
    ("POST", "/__admin/faults", '{"kind": "hang", "hang_s": X}', "hang_s"),
    ("POST", "/__admin/faults", '{"kind": "http_429", "retry_after": X}', "retry_after"),
    ("POST", "/__admin/faults", '{"kind": "http_500", "rate": X}', "rate"),
    ("POST", "/__admin/faults", '{"kind": "http_500", "every": X}', "every"),
    ("POST", "/__admin/faults", '{"kind": "http_500", "attempts": [X]}', "attempts"),
    ("POST", "/__admin/reset", '{"seed": X}', "seed"),
]


@pytest.mark.parametrize("number", NOT_FINITE + ["1e300", "-1", "1e30"])
@pytest.mark.parametrize("method, path, template, field", NUMERIC_INPUTS,
                         ids=[f"{p}:{f}" for _, p, _, f in NUMERIC_INPUTS])
def test_admin_refuses_numbers_out_of_range_naming_the_field(client, method, path, template, field, number):
    """NaN and +-Infinity (Python's JSON parser takes them), numbers beyond every bound, and
    floats where an integer belongs: 400 naming the field, nothing changed."""
    before = (client.get("/__admin/clock").get_json(), client.get("/__admin/cities").get_json(),
              client.get("/__admin/faults").get_json())
    resp = client.open(path, method=method, data=template.replace("X", number), content_type="application/json")
    assert resp.status_code == 400, (field, number, resp.get_json())
    assert f"'{field}'" in resp.get_json()["error"]
    assert before == (client.get("/__admin/clock").get_json(), client.get("/__admin/cities").get_json(),
                      client.get("/__admin/faults").get_json())


@pytest.mark.parametrize("number", NOT_FINITE)
def test_clock_survives_a_refused_advance(client, number):
    before = client.get("/__admin/clock").get_json()
    assert client.post("/__admin/clock", data=f'{{"advance": {number}}}',
                       content_type="application/json").status_code == 400
    assert client.get("/__admin/clock").get_json() == before
    assert client.post("/__admin/clock", json={"advance": 60}).get_json()["now"] == before["now"] + 60


def test_clock_cannot_be_advanced_past_its_range(client):
    assert client.post("/__admin/clock", json={"advance": 3_000_000_000}).status_code == 200
    resp = client.post("/__admin/clock", json={"advance": 3_000_000_000})
    assert resp.status_code == 400 and "advance" in resp.get_json()["error"]
    assert client.get("/__admin/clock").status_code == 200


# -- a small fuzz of each dialect --------------------------------------------------------------
ODD_TEXT = st.sampled_from(["", " ", "\x00", "\ud800", "\udfff", "\u202e", "１２３", "٣٣٠١٠٠", "330100", "²",
                            "X" * 300, "<a>", "&amp;", "]]>", "%s", "NaN", "0", "-1", "\n", "张三", "𠀾"])
TEXT = st.one_of(st.text(max_size=30), ODD_TEXT)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT)
JSON = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                    max_leaves=12)


def fields(names: list[str], values=None, keys=TEXT) -> st.SearchStrategy:
    """Dicts of some of ``names`` (plus maybe a stray key) with hostile values."""
    values = values if values is not None else st.one_of(JSON, TEXT)
    return st.dictionaries(st.one_of(st.sampled_from(names), keys), values, max_size=len(names) + 1)


REST_FIELDS = ["cityCode", "idNumber", "name", "faceToken", "factor", "code", "ticket", "channel", "level"]


@FUZZ
@given(path=st.sampled_from(["/cards/query", "/identity/verify", "/credentials"]),
       body=st.one_of(fields(REST_FIELDS), JSON), token=st.sampled_from(["mock-rest-token", None, "wrong"]))
def test_fuzz_rest_json(rest, answer_of, path, body, token):
    data = json.dumps(body)  # \ud800 and friends travel as JSON escapes
    answer_of("rest-json", rest.call("POST", path, data, token=token, content_type="application/json"))


@FUZZ
@given(city=TEXT, path=st.sampled_from(["/health?cityCode={}", "/cities/{}/services"]))
def test_fuzz_rest_json_urls(client, answer_of, city, path):
    from urllib.parse import quote

    resp = client.get("/rest/v1" + path.format(quote(city.encode("utf-8", "surrogatepass"), safe="")),
                      headers=REST)
    if resp.status_code in (308, 404) and not resp.is_json:
        return  # routing, before any dialect: a "/" in the city (not a route, or slashes merged)
    answer_of("rest-json", resp)


PINYIN_FIELDS = ["aac002", "aac003", "aab301", "face_token", "verify_type", "verify_code", "verify_id", "channel",
                 "sign_level", "appid", "timestamp", "nonce"]
FORM_TEXT = st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
                      ODD_TEXT.filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)))


@FUZZ
@given(path=st.sampled_from(["/card/query", "/identity/verify", "/card/sign", "/service/list", "/health"]),
       form=fields(PINYIN_FIELDS, FORM_TEXT, FORM_TEXT), sign=st.sampled_from(["right", "wrong", "none", "odd"]),
       base=st.booleans())
def test_fuzz_pinyin_form(pinyin, answer_of, path, form, sign, base):
    if base:  # mostly well-formed: the fuzzed fields reach the business checks
        form = {"appid": "essc-mock", "timestamp": str(int(time.time())), "nonce": uuid.uuid4().hex, **form}
    if sign == "right":
        form["sign"] = hmac_sha256(form, "mock-hmac-secret")
    elif sign == "wrong":
        form["sign"] = "0" * 64
    elif sign == "odd":
        form["sign"] = "签名" + "\u00e9" * 62
    answer_of("pinyin-form", pinyin.raw(path, form))


XML_FIELDS = ["AAC002", "AAC003", "AAB301", "FACETOKEN", "VERIFYTYPE", "VERIFYCODE", "VERIFYID", "CHANNEL",
              "SIGNLEVEL"]
XML_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


@FUZZ
@given(msg_type=st.one_of(st.sampled_from(["CARD_QUERY", "IDENTITY_VERIFY", "CARD_SIGN", "SERVICE_LIST", "HEALTH"]),
                          XML_TEXT),
       body=st.dictionaries(st.sampled_from(XML_FIELDS), XML_TEXT, max_size=len(XML_FIELDS)),
       key=st.sampled_from(["mock-xml-key", "wrong"]), raw=st.one_of(st.none(), st.binary(max_size=200)))
def test_fuzz_xml_envelope(xml, answer_of, msg_type, body, key, raw):
    data = raw if raw is not None else xml.envelope(msg_type, body, key=key)
    answer_of("xml-envelope", xml.raw(data))


GM_FIELDS = ["sfzh", "xm", "xzqh", "rlToken", "yzlx", "yzm", "yzid", "qd", "qydj"]


@FUZZ
@given(method=st.one_of(st.sampled_from(["card.query", "identity.verify", "card.sign", "service.list", "health"]),
                        st.text(st.characters(whitelist_categories=("Ll", "Nd")), min_size=1, max_size=12)),
       payload=st.one_of(fields(GM_FIELDS), JSON), sealed=st.booleans(),
       envelope=fields(["appId", "timestamp", "encryptData", "signData"]))
def test_fuzz_gm_json(gm, answer_of, method, payload, sealed, envelope):
    if sealed:  # a whole, correctly signed envelope around the fuzzed payload
        envelope = gm.envelope(payload)
    answer_of("gm-json", gm.client.post(f"/gm/api/{method}", data=json.dumps(envelope),
                                        content_type="application/json"))


@FUZZ
@given(path=st.sampled_from(["/__admin/clock", "/__admin/faults", "/__admin/cities", "/__admin/cities/330100",
                             "/__admin/reset"]),
       body=st.one_of(JSON, fields(["advance", "mode", "kind", "city", "operation", "attempts", "every", "rate",
                                    "latency_ms", "retry_after", "hang_s", "seed", "code", "name", "province",
                                    "dialect", "sync_delay_s", "sync_after_attempts"])))
def test_fuzz_admin(client, path, body):
    method = "PUT" if path.endswith("330100") else "POST"
    resp = client.open(path, method=method, data=json.dumps(body), content_type="application/json")
    assert resp.status_code in (200, 201, 400, 404, 409), resp.data[:300]
    assert resp.is_json
    client.post("/__admin/reset", json={})  # the next example starts clean
