"""The contract checks. Each is a pytest test parametrized over ``essc_city``.

A failure says which city, which hook, what the framework or the city answered (the
typed error object: JSON path, schema rule) and a hint how to fix the plugin.
"""
from __future__ import annotations

import json
import logging
import time

import pytest

from essc.core.adapter import OPERATIONS, implemented_operations
from essc.core.errors import (
    CardStatusAbnormal,
    CityNotOpened,
    EsscError,
    IdentityMismatch,
    RecordNotSynced,
    UpstreamUnavailable,
)
from essc.core.schemas import validator

# The mock's identity checks (docs/dialects.md): face tokens start with "live-",
# the SMS code is 123456 and the e-SSC password 147258.
FACE_TOKEN = "live-contract-suite"
CODES = {"sms": "123456", "password": "147258"}
ABNORMAL = ("reported_lost", "sealed", "cancelled", "locked")
FAULTS = {  # mock fault kind -> UpstreamUnavailable.reason the plugin must raise
    "http_500": "http_5xx",
    "http_503": "http_5xx",
    "http_429": "rate_limited",
    "malformed": "malformed_response",
    "hang": "timeout",
    "drop": "connection",
}


def where(city: str, hook: str) -> str:
    return f"city {city}, hook {hook}"


def describe(err: EsscError) -> str:
    return json.dumps(err.to_dict(), ensure_ascii=False)


def ok(registry, city: str, hook: str, request: dict, hint: str) -> dict:
    """Call through the registry (schemas checked both ways); fail with a clear message."""
    try:
        return registry.call(city, hook, request)
    except EsscError as err:
        pytest.fail(f"[{where(city, hook)}] expected success, got {err.code}: {describe(err)}\nhint: {hint}",
                    pytrace=False)


def expect(registry, city: str, hook: str, request: dict, error: type[EsscError], hint: str) -> EsscError:
    try:
        registry.call(city, hook, request)
    except error as err:
        return err
    except EsscError as err:
        pytest.fail(f"[{where(city, hook)}] expected {error.code}, got {err.code}: {describe(err)}\nhint: {hint}",
                    pytrace=False)
    pytest.fail(f"[{where(city, hook)}] expected {error.code}, but the call succeeded\nhint: {hint}", pytrace=False)


def need_opened(info, mock=None) -> None:
    """Skip for a city that has not opened the service; otherwise make the mock city answer
    at once (a city the mock plays as delayed would hide what the check is about)."""
    if not info.opened:
        pytest.skip(f"city {info.code} has not opened the e-SSC service: the platform never calls it")
    if mock is not None:
        mock.set_city(info.code, mode="supported")


def card_query(citizen: dict, city: str) -> dict:
    return {"aac002": citizen["id_number"], "aac003": citizen["name"], "aab301": city}


def identity_check(citizen: dict, city: str, factor: str = "sms", code: str | None = None) -> dict:
    return {"aac002": citizen["id_number"], "aab301": city, "face_token": FACE_TOKEN, "factor": factor,
            "code": code or CODES[factor]}


def activation(citizen: dict, city: str, verify_id: str) -> dict:
    return {"aac002": citizen["id_number"], "aab301": city, "verify_id": verify_id, "channel": "contract-suite"}


# -- manifest and capabilities ---------------------------------------------------------
def test_manifest_valid(essc_city, essc_registry):
    """The plugin serving the city loaded, and its manifest is valid."""
    info = essc_registry.city(essc_city)
    record = essc_registry.plugin(info.plugin)
    essc_registry.load_all()
    assert record.status == "loaded", f"[city {essc_city}] plugin {record.name} is {record.status}: {record.reason}"
    problems = validator("manifest").problems(record.manifest)
    assert not problems, f"[city {essc_city}] manifest: " + "; ".join(map(str, problems))


def test_capabilities_implemented(essc_city, essc_registry):
    """Every operation the manifest declares is implemented by the city's adapter."""
    info = essc_registry.city(essc_city)
    declared = set(essc_registry.plugin(info.plugin).manifest["capabilities"]["operations"])
    implemented = implemented_operations(essc_registry.adapter(essc_city))
    assert declared <= implemented, (f"[city {essc_city}] declared but not implemented: "
                                     f"{sorted(declared - implemented)}\nhint: implement them or drop them "
                                     "from capabilities.operations")
    assert declared <= set(OPERATIONS)


# -- the citizen's flow --------------------------------------------------------------------
def test_happy_path(essc_city, essc_registry, essc_mock):
    """read_card -> verify_identity (each declared factor) -> activate -> list_services -> health."""
    info = essc_registry.city(essc_city)
    need_opened(info, essc_mock)
    manifest = essc_registry.plugin(info.plugin).manifest
    citizen = essc_mock.citizen(essc_city, "normal")
    record = ok(essc_registry, essc_city, "read_card", card_query(citizen, essc_city),
                "map every field of the city's card record to card_record.schema.json")
    assert record["aac002"] == citizen["id_number"] and record["aab301"] == essc_city, \
        f"[{where(essc_city, 'read_card')}] the record is not the requested citizen's (aac002/aab301 differ)"
    assert record["aaz502"] == "normal", f"[{where(essc_city, 'read_card')}] aaz502 is {record['aaz502']!r}"
    verify_id = None
    for factor in manifest["capabilities"]["identity_checks"]:
        verification = ok(essc_registry, essc_city, "verify_identity", identity_check(citizen, essc_city, factor),
                          f"send the face token and the {factor} code as the city expects")
        assert verification["factor"] == factor
        verify_id = verification["verify_id"]
    credential = ok(essc_registry, essc_city, "activate", activation(citizen, essc_city, verify_id),
                    "map the city's sign answer to credential.schema.json (dates as YYYYMMDD)")
    assert credential["aab301"] == essc_city
    if "list_services" in manifest["capabilities"]["operations"]:
        services = ok(essc_registry, essc_city, "list_services", {"aab301": essc_city},
                      "map the city's service codes to the contract's serviceCode enum")
        assert {s["code"] for s in services["services"]} <= set(manifest["capabilities"]["services"]), \
            f"[{where(essc_city, 'list_services')}] offers services the manifest does not declare"
    health = ok(essc_registry, essc_city, "health", {"aab301": essc_city}, "answer health from the city's probe")
    assert health["status"] == "up"


def test_city_not_opened(essc_city, essc_registry, essc_mock):
    """A city without the e-SSC service -> CITY_NOT_OPENED, from the manifest or from the city."""
    info = essc_registry.city(essc_city)
    citizen = essc_mock.citizen(essc_city, "normal")
    essc_mock.set_city(essc_city, mode="not_opened")
    hint = "map the city's 'not opened' answer (暂未开通电子社保卡业务) to CityNotOpened"
    expect(essc_registry, essc_city, "read_card", card_query(citizen, essc_city), CityNotOpened, hint)
    if info.opened:  # the manifest says opened: the adapter itself must map the city's answer
        with pytest.raises(CityNotOpened):
            essc_registry.adapter(essc_city).read_card(card_query(citizen, essc_city))


def test_delayed_sync(essc_city, essc_registry, essc_mock):
    """Not synced yet -> RECORD_NOT_SYNCED with retry_after; after the delay -> the record."""
    need_opened(essc_registry.city(essc_city), essc_mock)
    citizen = essc_mock.citizen(essc_city, "normal")
    essc_mock.set_city(essc_city, mode="delayed", sync_delay_s=600)
    query = card_query(citizen, essc_city)
    err = expect(essc_registry, essc_city, "read_card", query, RecordNotSynced,
                 "map the city's 'not synced / 查无此人' answer to RecordNotSynced(retry_after=...)")
    assert err.retry_after is not None and 0 < err.retry_after <= 600, \
        f"[{where(essc_city, 'read_card')}] retry_after should carry the city's hint (got {err.retry_after})"
    essc_mock.advance(err.retry_after)
    record = ok(essc_registry, essc_city, "read_card", query, "after the delay the record must be read")
    assert record["aac002"] == citizen["id_number"]


@pytest.mark.parametrize("status", ABNORMAL)
def test_card_status(essc_city, essc_registry, essc_mock, status):
    """An abnormal card: read_card shows the status; activate -> CARD_STATUS_ABNORMAL(status)."""
    need_opened(essc_registry.city(essc_city), essc_mock)
    citizen = essc_mock.citizen(essc_city, status)
    record = ok(essc_registry, essc_city, "read_card", card_query(citizen, essc_city),
                "return the record of an abnormal card too, with aaz502 normalised")
    assert record["aaz502"] == status, \
        f"[{where(essc_city, 'read_card')}] aaz502 should be {status!r}, got {record['aaz502']!r}"
    verification = ok(essc_registry, essc_city, "verify_identity", identity_check(citizen, essc_city),
                      "identity checks do not depend on the card status")
    err = expect(essc_registry, essc_city, "activate", activation(citizen, essc_city, verification["verify_id"]),
                 CardStatusAbnormal, "map the city's 卡状态异常 answer to CardStatusAbnormal(status=...)")
    assert err.status == status, f"[{where(essc_city, 'activate')}] status should be {status!r}, got {err.status!r}"


def test_identity_mismatch(essc_city, essc_registry, essc_mock):
    """A face that does not match, or a wrong code -> IDENTITY_MISMATCH."""
    need_opened(essc_registry.city(essc_city), essc_mock)
    hint = "map the city's 人脸与身份不匹配 answer to IdentityMismatch"
    stranger = essc_mock.citizen(essc_city, "face_mismatch")
    expect(essc_registry, essc_city, "verify_identity", identity_check(stranger, essc_city), IdentityMismatch, hint)
    citizen = essc_mock.citizen(essc_city, "normal")
    expect(essc_registry, essc_city, "verify_identity", identity_check(citizen, essc_city, code="000000"),
           IdentityMismatch, hint)


# -- faults -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", FAULTS)
def test_upstream_fault(essc_city, essc_registry, essc_mock, kind):
    """5xx, 429, malformed body, hang and dropped connection -> UPSTREAM_UNAVAILABLE with
    the right reason, within the plugin's time budget."""
    info = essc_registry.city(essc_city)
    need_opened(info, essc_mock)
    total_s = essc_registry.plugin(info.plugin).manifest["timeouts"]["total_s"]
    citizen = essc_mock.citizen(essc_city, "normal")
    essc_mock.fault(city=essc_city, operation="read_card", kind=kind, retry_after=7, hang_s=total_s + 3)
    started = time.monotonic()
    err = expect(essc_registry, essc_city, "read_card", card_query(citizen, essc_city), UpstreamUnavailable,
                 "use context.http_client() and parse answers with parse_json / parse_xml")
    elapsed = time.monotonic() - started
    assert err.reason == FAULTS[kind], f"[{where(essc_city, 'read_card')}] reason {err.reason!r} for fault {kind}"
    if kind == "http_429":
        assert err.retry_after == 7, f"[{where(essc_city, 'read_card')}] Retry-After not carried over"
    assert elapsed <= total_s + 1, f"[{where(essc_city, 'read_card')}] took {elapsed:.1f}s, budget {total_s}s"


# -- personal data ------------------------------------------------------------------------
def test_no_personal_data_in_logs(essc_city, essc_registry, essc_mock, caplog):
    """Nothing the plugin logs or raises contains the citizen's ID number, name, card number,
    phone or face token."""
    need_opened(essc_registry.city(essc_city), essc_mock)
    citizen = essc_mock.citizen(essc_city, "reported_lost")
    texts = []
    with caplog.at_level(logging.DEBUG, logger="essc"):
        for call in (
            lambda: essc_registry.call(essc_city, "read_card", card_query(citizen, essc_city)),
            lambda: essc_registry.call(essc_city, "verify_identity", identity_check(citizen, essc_city, code="000000")),
            lambda: essc_registry.call(essc_city, "activate", activation(citizen, essc_city, "bogus-ticket")),
        ):
            try:
                call()
            except EsscError as err:
                texts += [str(err), describe(err)]
        essc_mock.fault(city=essc_city, operation="read_card", kind="http_500")
        try:
            essc_registry.call(essc_city, "read_card", card_query(citizen, essc_city))
        except EsscError as err:
            texts += [str(err), describe(err)]
    texts.append(caplog.text)
    blob = "\n".join(texts)
    for field in ("id_number", "name", "card_no", "mobile"):
        value = citizen.get(field)
        assert not value or value not in blob, \
            f"[city {essc_city}] the citizen's {field} appears unmasked in logs or errors\nhint: use masking helpers"
    assert FACE_TOKEN not in blob, f"[city {essc_city}] the face token appears in logs or errors"
