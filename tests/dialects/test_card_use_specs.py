"""The operations of contract 1.2 in every built-in spec dialect: the derived adapter against the
mock's city side - the hand-written module handing them to the spec, and the spec itself - gives
valid contract answers and the typed errors of each failure kind, and both sides answer alike."""
from __future__ import annotations

import pytest

from essc.core import errors
from essc.core.adapter import OPERATIONS
from essc.core.dialects import SpecAdapter, SpecError, dialect, parse_spec
from essc.core.masking import get_logger
from essc.core.schemas import validator
from essc.core.settings import PluginContext, Timeouts
from essc.mockserver import create_app
from essc.mockserver.client import MockAdmin
from essc.mockserver.serve import start_in_thread

CITIES = {"rest-json": "330100", "pinyin-form": "350100", "xml-envelope": "370200", "soap-1.1": "320400"}
ITEMS = [{"code": "XA01", "name": "阿莫西林胶囊", "category": "drug", "amount_cents": 150_000, "quantity": 2},
         {"code": "MT02", "name": "敷料", "category": "material", "amount_cents": 50_000, "quantity": 1.5}]


@pytest.fixture(scope="module", params=[False, True], ids=["hand-written-city", "spec-city"])
def mock(request):
    server = start_in_thread(create_app({"CLOCK_MODE": "frozen", "SPEC_CITY_SIDES": request.param}))
    yield MockAdmin(server.url), server.url
    server.stop()


def adapter(name: str, url: str) -> SpecAdapter:
    ctx = PluginContext(name="t", version="1", cities=(CITIES[name],), base_url=url, credentials={},
                        timeouts=Timeouts(1, 2, 3, 1), logger=get_logger("test.dialects"))
    return SpecAdapter(ctx, dialect(name).spec)


def call(ad: SpecAdapter, operation: str, request: dict) -> dict:
    """The adapter's answer, checked against the operation's response schema."""
    answer = getattr(ad, operation)(request)
    assert validator(OPERATIONS[operation].response_schema).problems(answer) == []
    return answer


def error_of(ad: SpecAdapter, operation: str, request: dict) -> errors.EsscError:
    with pytest.raises(errors.EsscError) as err:
        getattr(ad, operation)(request)
    return err.value


def activated(ad: SpecAdapter, who: dict, city: str) -> str:
    ticket = ad.verify_identity({"aac002": who["id_number"], "aab301": city, "face_token": "live-t", "factor": "sms",
                                 "code": "123456"})["verify_id"]
    return ad.activate({"aac002": who["id_number"], "aab301": city, "verify_id": ticket, "channel": "test"})["sign_no"]


def password_ticket(ad: SpecAdapter, who: dict, city: str, factor: str = "password") -> str:
    code = "147258" if factor == "password" else "123456"
    return ad.verify_identity({"aac002": who["id_number"], "aab301": city, "face_token": "live-t", "factor": factor,
                               "code": code})["verify_id"]


@pytest.mark.parametrize("name", sorted(CITIES))
def test_card_status_and_payment(mock, name):
    admin, url = mock
    admin.reset()
    city, ad = CITIES[name], adapter(name, url)
    who = admin.citizen(city, "normal")
    sign_no = activated(ad, who, city)
    state = call(ad, "card_status", {"aac002": who["id_number"], "aab301": city, "sign_no": sign_no})
    assert (state["aab301"], state["aaz502"], state["sign_level"]) == (city, "normal", 1)
    assert len(state["checked_at"]) == 14
    admin.set_card_status(city, who["id_number"], "reported_lost")
    assert call(ad, "card_status", {"aac002": who["id_number"], "aab301": city})["aaz502"] == "reported_lost"
    request = {"aac002": who["id_number"], "aab301": city, "sign_no": sign_no,
               "verify_id": password_ticket(ad, who, city), "channel": "test"}
    err = error_of(ad, "enable_payment", request)
    assert (err.code, err.details.get("status")) == ("CARD_STATUS_ABNORMAL", "reported_lost")
    admin.set_card_status(city, who["id_number"], "normal")
    binding = call(ad, "enable_payment", request)
    assert (binding["sign_no"], binding["sign_level"], binding["aae008"]) == (sign_no, 2, who.get("bank") or
                                                                              binding["aae008"])
    assert binding["account_hint"][4:8] == "****"
    sms = dict(request, verify_id=password_ticket(ad, who, city, "sms"))
    assert error_of(ad, "enable_payment", sms).code == "IDENTITY_MISMATCH"
    other = admin.citizens(city, "normal")[1]
    assert error_of(ad, "card_status", {"aac002": other["id_number"], "aab301": city, "sign_no": sign_no}).code == \
        "CREDENTIAL_NOT_FOUND"


@pytest.mark.parametrize("name", sorted(CITIES))
def test_password_reset(mock, name):
    admin, url = mock
    admin.reset()
    city, ad = CITIES[name], adapter(name, url)
    locked = admin.citizen(city, "locked")
    request = {"aac002": locked["id_number"], "aab301": city, "new_password": "258369",
               "verify_id": password_ticket(ad, locked, city, "sms")}
    answer = call(ad, "reset_password", request)
    assert answer["aab301"] == city and len(answer["reset_date"]) == 8
    assert call(ad, "card_status", {"aac002": locked["id_number"], "aab301": city})["aaz502"] == "normal"
    sealed = admin.citizen(city, "sealed")
    err = error_of(ad, "reset_password", dict(request, aac002=sealed["id_number"],
                                              verify_id=password_ticket(ad, sealed, city, "sms")))
    assert (err.code, err.details["status"]) == ("CARD_STATUS_ABNORMAL", "sealed")
    journal = admin.journal(city=city, operation="reset_password")
    assert journal and "258369" not in str(journal)


@pytest.mark.parametrize("name", sorted(CITIES))
def test_contributions(mock, name):
    admin, url = mock
    admin.reset()
    city, ad = CITIES[name], adapter(name, url)
    who = admin.citizen(city, "normal")
    request = {"aac002": who["id_number"], "aab301": city, "from_month": "201801", "to_month": "202012"}
    history = call(ad, "query_contributions", request)
    assert history["aab301"] == city
    assert all("201801" <= e["month"] <= "202012" for e in history["months"])
    assert {type(e["base_cents"]) for e in history["months"]} <= {int}
    assert call(ad, "query_contributions", request) == history


@pytest.mark.parametrize("name", sorted(CITIES))
def test_medical_settlement(mock, name):
    admin, url = mock
    admin.reset()
    city, ad = CITIES[name], adapter(name, url)
    who = admin.citizen(city, "normal")
    sign_no = activated(ad, who, city)
    sid = "T-" + name.replace(".", "") + "-0001"  # a settlement id is letters, digits, _ and -
    bill = {"action": "pre_settle", "settlement_id": sid, "aac002": who["id_number"], "aab301": city,
            "sign_no": sign_no, "busi_type": "02", "hospital": {"code": "H0001", "name": "第一人民医院"},
            "items": ITEMS}
    held = call(ad, "settle_medical", bill)
    assert (held["state"], held["total_cents"]) == ("pre_settled", 200_000)
    assert held["fund_cents"] + held["self_pay_cents"] == 200_000
    assert call(ad, "settle_medical", bill) == held
    confirm = {k: v for k, v in bill.items() if k != "items"} | {"action": "confirm"}
    assert call(ad, "settle_medical", confirm) == dict(held, state="settled")
    reverse = dict(confirm, action="reverse")
    assert call(ad, "settle_medical", reverse)["state"] == "reversed"
    err = error_of(ad, "settle_medical", confirm)
    assert (err.code, err.details.get("state")) == ("SETTLEMENT_CONFLICT", "reversed")
    unknown = dict(confirm, settlement_id=sid.replace("0001", "0002"))
    assert error_of(ad, "settle_medical", unknown).code == "SETTLEMENT_NOT_FOUND"
    rows = admin.settlements(city)
    assert [(r["settlement_id"], r["state"]) for r in rows] == [(sid, "reversed")]


def test_a_spec_carrying_settle_medical_names_its_outcomes():
    data = dict(dialect("rest-json").spec.data)
    data["outcomes"] = {k: v for k, v in data["outcomes"].items() if v["kind"] != "settlement_conflict"}
    with pytest.raises(SpecError, match="settle_medical can end in settlement_conflict"):
        parse_spec(data, "test")


def test_a_list_map_names_only_fields_of_an_entry():
    data = dict(dialect("rest-json").spec.data)
    ops = dict(data["operations"])
    settle = dict(ops["settle_medical"])
    settle["request"] = dict(settle["request"], items={"field": "items", "each": {"price": "unit_price"}})
    ops["settle_medical"] = settle
    data["operations"] = ops
    with pytest.raises(SpecError, match="'unit_price' is not a field"):
        parse_spec(data, "test")
