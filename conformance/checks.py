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
    CredentialNotFound,
    EsscError,
    IdentityMismatch,
    RecordNotSynced,
    SettlementConflict,
    SettlementNotFound,
    UpstreamUnavailable,
)
from essc.core.registry import raised_at
from essc.core.schemas import validator

from . import hangs
from .tiers import ABNORMAL, EXEMPT_PREFIX, FAULTS, exemption, refused_exemptions

# The mock's identity checks (docs/dialects.md): face tokens start with "live-",
# the SMS code is 123456 and the e-SSC password 147258.
FACE_TOKEN = "live-contract-suite"
CODES = {"sms": "123456", "password": "147258"}


def where(city: str, hook: str) -> str:
    return f"city {city}, hook {hook}"


def describe(err: EsscError) -> str:
    return json.dumps(err.to_dict(), ensure_ascii=False)


SOURCES = {"translation": "the translation dropped it", "city-answer": "the city's answer lacked it"}


def headline(err: EsscError) -> str:
    """``CODE`` plus what a contributor looks for first: the plugin's file and line of an untyped
    exception, the JSON path of a response violation and whose side lost the value."""
    d = err.details
    text = err.code
    if d.get("file"):
        text += f" raised at {d['file']}:{d.get('line')}"
        if d.get("function"):
            text += f" in {d['function']}"
    if err.code == "CONTRACT_VIOLATION" and d.get("path") and d.get("rule") != "typed-errors":
        text += f" at {d['path']} (rule {d.get('rule')})"
        if d.get("source") in SOURCES:
            text += f": {SOURCES[d['source']]}"
    return text


def ok(registry, city: str, hook: str, request: dict, hint: str) -> dict:
    """Call through the registry (schemas checked both ways); fail with a clear message."""
    try:
        return registry.call(city, hook, request)
    except EsscError as err:
        pytest.fail(f"[{where(city, hook)}] expected success, got {headline(err)}: {describe(err)}\nhint: {hint}",
                    pytrace=False)


def expect(registry, city: str, hook: str, request: dict, error: type[EsscError], hint: str) -> EsscError:
    try:
        registry.call(city, hook, request)
    except EsscError as err:
        return expected(err, city, hook, error, hint)
    return expected(None, city, hook, error, hint)


def expected(raised: BaseException | None, city: str, hook: str, error: type[EsscError], hint: str) -> EsscError:
    """``raised`` (what the call raised, None if it succeeded) when it is ``error``; else fail the check."""
    if isinstance(raised, error):
        return raised
    if isinstance(raised, EsscError):
        pytest.fail(f"[{where(city, hook)}] expected {error.code}, got {headline(raised)}: {describe(raised)}\n"
                    f"hint: {hint}", pytrace=False)
    if raised is not None:
        raise raised
    pytest.fail(f"[{where(city, hook)}] expected {error.code}, but the call succeeded\nhint: {hint}", pytrace=False)


def fail(city: str, hook: str, path: str, rule: str, message: str, hint: str) -> None:
    """Fail the check naming the city, the hook, the JSON path, the rule and a hint (no traceback)."""
    pytest.fail(f"[{where(city, hook)}] {path}: {message} (rule: {rule})\nhint: {hint}", pytrace=False)


def check(condition: object, city: str, hook: str, path: str, rule: str, message: str, hint: str) -> None:
    if not condition:
        fail(city, hook, path, rule, message, hint)


MOCK_HINT = ("the suite adds every city of the registry to the mock (POST /__admin/cities); with --essc-mock-url, "
             "check that the mock at that URL is essc-adapters' mock (`essc mock`) and answers its admin API")


def mock_admin(city: str, what: str, call, /, *args, **kwargs):
    """Drive the mock's admin API; a refusal fails the check with a clear message, not a traceback."""
    try:
        return call(*args, **kwargs)
    except (RuntimeError, LookupError, OSError) as err:
        fail(city, "mock admin", "$", "mock-admin", f"the mock refused to {what}: {err}", MOCK_HINT)


def citizen_of(mock, city: str, scenario: str) -> dict:
    """The mock's first synthetic citizen of ``scenario`` in ``city``."""
    return mock_admin(city, f"give a {scenario} citizen", mock.citizen, city, scenario)


def need_opened(info, mock=None) -> None:
    """Skip for a city that has not opened the service; otherwise make the mock city answer
    at once (a city the mock plays as delayed would hide what the check is about)."""
    if not info.opened:
        pytest.skip(f"city {info.code} has not opened the e-SSC service: the platform never calls it")
    if mock is not None:
        mock_admin(info.code, "set the city's mode", mock.set_city, info.code, mode="supported")


def skip_if_exempt(registry, city: str, check: str) -> None:
    """Skip ``check`` with the reason "exempt: <reason>" when the manifest of the city's plugin
    exempts it (``exemptions``: check name -> written reason; see :mod:`.tiers`)."""
    try:
        manifest = registry.plugin(registry.city(city).plugin).manifest
    except (EsscError, KeyError):
        return
    reason = exemption(manifest, check)
    if reason:
        pytest.skip(EXEMPT_PREFIX + reason)


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
    skip_if_exempt(essc_registry, essc_city, "test_manifest_valid")
    info = essc_registry.city(essc_city)
    record = essc_registry.plugin(info.plugin)
    essc_registry.load_all()
    check(record.status == "loaded", essc_city, "essc_register_adapters", "$", "plugin-loaded",
          f"plugin {record.name} is {record.status}: {record.reason}",
          "`essc plugins` shows why; fix the manifest, the import or the hook it names")
    problems = validator("manifest").problems(record.manifest)
    if problems:
        first = problems[0]
        fail(essc_city, "manifest.json", first.path, first.rule, "; ".join(map(str, problems)),
             "make manifest.json valid against schemas/manifest.schema.json")
    refused = refused_exemptions(record.manifest)
    if refused:
        check_name = next(iter(refused))
        fail(essc_city, "manifest.json", f"$.exemptions.{check_name}", "exemptible", "; ".join(refused.values()),
             "the happy path, the manifest and the personal-data checks must pass; drop those exemptions "
             "(the suite runs the checks anyway)")


def test_capabilities_implemented(essc_city, essc_registry):
    """Every operation the manifest declares is implemented by the city's adapter."""
    skip_if_exempt(essc_registry, essc_city, "test_capabilities_implemented")
    info = essc_registry.city(essc_city)
    declared = set(essc_registry.plugin(info.plugin).manifest["capabilities"]["operations"])
    try:
        adapter = essc_registry.adapter(essc_city)
    except EsscError as err:
        fail(essc_city, "essc_register_adapters", "$", "plugin-loaded", f"no adapter: {err.code}: {describe(err)}",
             "`essc plugins` shows why the plugin is not loaded")
    implemented = implemented_operations(adapter)
    check(declared <= implemented, essc_city, "essc_register_adapters", "$.capabilities.operations",
          "implemented", f"declared but not implemented: {sorted(declared - implemented)}",
          "implement them or drop them from capabilities.operations")
    check(declared <= set(OPERATIONS), essc_city, "manifest.json", "$.capabilities.operations", "enum",
          f"unknown operations {sorted(declared - set(OPERATIONS))}", f"operations are {', '.join(OPERATIONS)}")


# -- the citizen's flow --------------------------------------------------------------------
def test_happy_path(essc_city, essc_registry, essc_mock):
    """read_card -> verify_identity (each declared factor) -> activate -> list_services -> health."""
    skip_if_exempt(essc_registry, essc_city, "test_happy_path")
    info = essc_registry.city(essc_city)
    need_opened(info, essc_mock)
    manifest = essc_registry.plugin(info.plugin).manifest
    citizen = citizen_of(essc_mock, essc_city, "normal")
    record = ok(essc_registry, essc_city, "read_card", card_query(citizen, essc_city),
                "map every field of the city's card record to card_record.schema.json")
    check(record["aac002"] == citizen["id_number"], essc_city, "read_card", "$.aac002", "same-citizen",
          "the record is not the requested citizen's", "copy the ID number from the city's record, not another one")
    check(record["aab301"] == essc_city, essc_city, "read_card", "$.aab301", "same-city",
          f"the record is of city {record['aab301']}", "return the record of the city that was called")
    check(record["aaz502"] == "normal", essc_city, "read_card", "$.aaz502", "card-status",
          f"a normal card reads as {record['aaz502']!r}", "map the city's status codes to the contract's cardStatus")
    verify_id = None
    for factor in manifest["capabilities"]["identity_checks"]:
        verification = ok(essc_registry, essc_city, "verify_identity", identity_check(citizen, essc_city, factor),
                          f"send the face token and the {factor} code as the city expects")
        check(verification["factor"] == factor, essc_city, "verify_identity", "$.factor", "same-factor",
              f"answered factor {verification['factor']!r} for a {factor!r} check",
              "answer with the second factor the request carried")
        verify_id = verification["verify_id"]
    credential = ok(essc_registry, essc_city, "activate", activation(citizen, essc_city, verify_id),
                    "map the city's sign answer to credential.schema.json (dates as YYYYMMDD)")
    check(credential["aab301"] == essc_city, essc_city, "activate", "$.aab301", "same-city",
          f"the credential is of city {credential['aab301']}", "return the credential of the city that was called")
    if "list_services" in manifest["capabilities"]["operations"]:
        services = ok(essc_registry, essc_city, "list_services", {"aab301": essc_city},
                      "map the city's service codes to the contract's serviceCode enum")
        offered = {s["code"] for s in services["services"]} - set(manifest["capabilities"]["services"])
        check(not offered, essc_city, "list_services", "$.services[*].code", "declared-services",
              f"offers services the manifest does not declare: {sorted(offered)}",
              "declare them in capabilities.services or do not return them")
    health = ok(essc_registry, essc_city, "health", {"aab301": essc_city}, "answer health from the city's probe")
    check(health["status"] == "up", essc_city, "health", "$.status", "city-up",
          f"the mock's city answers up, the adapter says {health['status']!r}",
          "map the city's 'up' answer of its health probe to status up")


def test_city_not_opened(essc_city, essc_registry, essc_mock):
    """A city without the e-SSC service -> CITY_NOT_OPENED, from the manifest or from the city."""
    skip_if_exempt(essc_registry, essc_city, "test_city_not_opened")
    info = essc_registry.city(essc_city)
    citizen = citizen_of(essc_mock, essc_city, "normal")
    mock_admin(essc_city, "set the city's mode", essc_mock.set_city, essc_city, mode="not_opened")
    hint = "map the city's 'not opened' answer (暂未开通电子社保卡业务) to CityNotOpened"
    expect(essc_registry, essc_city, "read_card", card_query(citizen, essc_city), CityNotOpened, hint)
    if info.opened:  # the manifest says opened: the adapter itself must map the city's answer
        try:
            essc_registry.adapter(essc_city).read_card(card_query(citizen, essc_city))
        except CityNotOpened:
            pass
        except EsscError as err:
            fail(essc_city, "read_card", "$", "typed-errors", f"the adapter raised {err.code}: {describe(err)}", hint)
        except Exception as err:  # what the registry would report as a contract violation
            at = raised_at(err, essc_registry.plugin(info.plugin).source.directory)
            fail(essc_city, "read_card", "$", "typed-errors", f"the adapter raised {type(err).__name__}"
                 + (f" at {at['file']}:{at['line']} in {at['function']}" if at else ""), hint)
        else:
            fail(essc_city, "read_card", "$", "typed-errors", "the adapter returned a record for a city that has "
                 "not opened the service", hint)


def test_delayed_sync(essc_city, essc_registry, essc_mock):
    """Not synced yet -> RECORD_NOT_SYNCED with retry_after; after the delay -> the record."""
    skip_if_exempt(essc_registry, essc_city, "test_delayed_sync")
    need_opened(essc_registry.city(essc_city), essc_mock)
    citizen = citizen_of(essc_mock, essc_city, "normal")
    mock_admin(essc_city, "set the city's mode", essc_mock.set_city, essc_city, mode="delayed", sync_delay_s=600)
    query = card_query(citizen, essc_city)
    hint = "map the city's 'not synced / 查无此人' answer to RecordNotSynced(retry_after=...)"
    err = expect(essc_registry, essc_city, "read_card", query, RecordNotSynced, hint)
    check(err.retry_after is not None and 0 < err.retry_after <= 600, essc_city, "read_card", "$.details.retry_after",
          "retry-hint", f"retry_after should carry the city's hint of at most 600 s (got {err.retry_after})", hint)
    mock_admin(essc_city, "advance its clock", essc_mock.advance, err.retry_after)
    record = ok(essc_registry, essc_city, "read_card", query, "after the delay the record must be read")
    check(record["aac002"] == citizen["id_number"], essc_city, "read_card", "$.aac002", "same-citizen",
          "the record is not the requested citizen's", "copy the ID number from the city's record")


@pytest.mark.parametrize("status", ABNORMAL)
def test_card_status(essc_city, essc_registry, essc_mock, status):
    """An abnormal card: read_card shows the status; activate -> CARD_STATUS_ABNORMAL(status)."""
    skip_if_exempt(essc_registry, essc_city, "test_card_status")
    need_opened(essc_registry.city(essc_city), essc_mock)
    citizen = citizen_of(essc_mock, essc_city, status)
    record = ok(essc_registry, essc_city, "read_card", card_query(citizen, essc_city),
                "return the record of an abnormal card too, with aaz502 normalised")
    check(record["aaz502"] == status, essc_city, "read_card", "$.aaz502", "card-status",
          f"should be {status!r}, got {record['aaz502']!r}", "map the city's status codes to the contract's cardStatus")
    verification = ok(essc_registry, essc_city, "verify_identity", identity_check(citizen, essc_city),
                      "identity checks do not depend on the card status")
    err = expect(essc_registry, essc_city, "activate", activation(citizen, essc_city, verification["verify_id"]),
                 CardStatusAbnormal, "map the city's 卡状态异常 answer to CardStatusAbnormal(status=...)")
    check(err.status == status, essc_city, "activate", "$.details.status", "card-status",
          f"should be {status!r}, got {err.status!r}", "raise CardStatusAbnormal(status=<the contract status>)")


def test_identity_mismatch(essc_city, essc_registry, essc_mock):
    """A face that does not match, or a wrong code -> IDENTITY_MISMATCH."""
    skip_if_exempt(essc_registry, essc_city, "test_identity_mismatch")
    need_opened(essc_registry.city(essc_city), essc_mock)
    hint = "map the city's 人脸与身份不匹配 answer to IdentityMismatch"
    stranger = citizen_of(essc_mock, essc_city, "face_mismatch")
    expect(essc_registry, essc_city, "verify_identity", identity_check(stranger, essc_city), IdentityMismatch, hint)
    citizen = citizen_of(essc_mock, essc_city, "normal")
    expect(essc_registry, essc_city, "verify_identity", identity_check(citizen, essc_city, code="000000"),
           IdentityMismatch, hint)


# -- the e-SSC in use (contract 1.2; each check runs where the plugin declares the operation) ----
NEW_PASSWORD = "258369"  #: what test_reset_password sets (never in a log, an error or a cassette)
BILL = [{"code": "XA01", "name": "阿莫西林胶囊", "category": "drug", "amount_cents": 150_000, "quantity": 2},
        {"code": "MT02", "name": "敷料", "category": "material", "amount_cents": 50_000, "quantity": 1},
        {"code": "OT03", "name": "陪护", "category": "other", "amount_cents": 10_000, "quantity": 1}]


def declared(registry, city: str) -> dict:
    """The capabilities of the manifest of the city's plugin."""
    return registry.plugin(registry.city(city).plugin).manifest["capabilities"]


def need_operation(registry, city: str, operation: str, factor: str | None = None) -> dict:
    """Skip when the city's plugin does not declare ``operation``; fail when it declares it without the
    second ``factor`` the operation's ticket comes from."""
    capabilities = declared(registry, city)
    if operation not in capabilities["operations"]:
        pytest.skip(f"not declared: the plugin does not offer {operation}")
    if factor is not None and factor not in capabilities["identity_checks"]:
        fail(city, "manifest.json", "$.capabilities.identity_checks", "needs-factor",
             f"declares {operation}, which takes the ticket of a {factor} check, but not the {factor} check",
             f"declare {factor} in identity_checks, or do not declare {operation}")
    return capabilities


def verified(registry, city: str, citizen: dict, factor: str, code: str | None = None) -> str:
    return ok(registry, city, "verify_identity", identity_check(citizen, city, factor, code),
              f"send the face token and the {factor} code as the city expects")["verify_id"]


def activated(registry, city: str, citizen: dict) -> str:
    """The sign number of the citizen's credential (verified with the first declared factor)."""
    factor = declared(registry, city)["identity_checks"][0]
    credential = ok(registry, city, "activate", activation(citizen, city, verified(registry, city, citizen, factor)),
                    "map the city's sign answer to credential.schema.json")
    return str(credential["sign_no"])  # the registry hands the credential on in the names of 1.2


def test_card_status_query(essc_city, essc_registry, essc_mock):
    """card_status answers the card's status now, abnormal too (it never raises for it), the
    credential's sign level when asked with the sign number, and CREDENTIAL_NOT_FOUND for a sign
    number that is not the citizen's."""
    skip_if_exempt(essc_registry, essc_city, "test_card_status_query")
    need_operation(essc_registry, essc_city, "card_status")
    need_opened(essc_registry.city(essc_city), essc_mock)
    citizen = citizen_of(essc_mock, essc_city, "normal")
    query = {"aac002": citizen["id_number"], "aab301": essc_city}
    hint = "map the city's status codes to the contract's cardStatus; answer an abnormal status, do not raise"
    state = ok(essc_registry, essc_city, "card_status", query, hint)
    check(state["aaz502"] == "normal", essc_city, "card_status", "$.aaz502", "card-status",
          f"a normal card reads as {state['aaz502']!r}", hint)
    for status in ABNORMAL:
        mock_admin(essc_city, "change the card status", essc_mock.set_card_status, essc_city, citizen["id_number"],
                   status)
        state = ok(essc_registry, essc_city, "card_status", query, hint)
        check(state["aaz502"] == status, essc_city, "card_status", "$.aaz502", "card-status",
              f"a {status} card reads as {state['aaz502']!r}", hint)
    mock_admin(essc_city, "change the card status", essc_mock.set_card_status, essc_city, citizen["id_number"],
               "normal")
    sign_no = activated(essc_registry, essc_city, citizen)
    state = ok(essc_registry, essc_city, "card_status", dict(query, sign_no=sign_no),
               "send the sign number and map the credential's level to sign_level")
    check(state.get("sign_level", 1) == 1, essc_city, "card_status", "$.sign_level", "sign-level",
          f"a fresh credential reads as level {state.get('sign_level')!r}", "map the city's level to 1 or 2")
    other = mock_admin(essc_city, "give a second citizen", essc_mock.citizens, essc_city, "normal")[1]
    expect(essc_registry, essc_city, "card_status", {"aac002": other["id_number"], "aab301": essc_city,
                                                     "sign_no": sign_no}, CredentialNotFound,
           "map the city's 'no such credential' answer to CredentialNotFound")


def test_enable_payment(essc_city, essc_registry, essc_mock):
    """enable_payment after a password check raises the credential to level 2 with the bank
    account masked; the same call again answers the same; an SMS ticket is IDENTITY_MISMATCH; an
    abnormal card CARD_STATUS_ABNORMAL."""
    skip_if_exempt(essc_registry, essc_city, "test_enable_payment")
    capabilities = need_operation(essc_registry, essc_city, "enable_payment", "password")
    need_opened(essc_registry.city(essc_city), essc_mock)
    citizen = citizen_of(essc_mock, essc_city, "normal")
    sign_no = activated(essc_registry, essc_city, citizen)
    request = {"aac002": citizen["id_number"], "aab301": essc_city, "sign_no": sign_no, "channel": "contract-suite",
               "verify_id": verified(essc_registry, essc_city, citizen, "password")}
    hint = "send the sign number and the password ticket; map the city's answer to payment_binding.schema.json"
    binding = ok(essc_registry, essc_city, "enable_payment", request, hint)
    check(binding["sign_no"] == sign_no and binding["sign_level"] == 2, essc_city, "enable_payment", "$.sign_no",
          "same-credential", "the binding is not the credential's at level 2", hint)
    again = ok(essc_registry, essc_city, "enable_payment", request, hint)
    check(again == binding, essc_city, "enable_payment", "$", "idempotent", "the same request answered differently",
          "answer what the city answers for a credential already at level 2")
    if "sms" in capabilities["identity_checks"]:
        expect(essc_registry, essc_city, "enable_payment",
               dict(request, verify_id=verified(essc_registry, essc_city, citizen, "sms")), IdentityMismatch,
               "map the city's 'ticket not of a password check' answer to IdentityMismatch")
    mock_admin(essc_city, "change the card status", essc_mock.set_card_status, essc_city, citizen["id_number"],
               "sealed")
    err = expect(essc_registry, essc_city, "enable_payment",
                 dict(request, verify_id=verified(essc_registry, essc_city, citizen, "password")), CardStatusAbnormal,
                 "map the city's 卡状态异常 answer to CardStatusAbnormal(status=...)")
    check(err.status == "sealed", essc_city, "enable_payment", "$.details.status", "card-status",
          f"should be 'sealed', got {err.status!r}", "raise CardStatusAbnormal(status=<the contract status>)")


def test_reset_password(essc_city, essc_registry, essc_mock):
    """reset_password after a face + SMS check: the new password works, the old one not; a sealed
    card is CARD_STATUS_ABNORMAL."""
    skip_if_exempt(essc_registry, essc_city, "test_reset_password")
    capabilities = need_operation(essc_registry, essc_city, "reset_password", "sms")
    need_opened(essc_registry.city(essc_city), essc_mock)
    citizen = citizen_of(essc_mock, essc_city, "normal")
    request = {"aac002": citizen["id_number"], "aab301": essc_city, "new_password": NEW_PASSWORD,
               "verify_id": verified(essc_registry, essc_city, citizen, "sms")}
    ok(essc_registry, essc_city, "reset_password", request, "send the SMS ticket and the new password")
    if "password" in capabilities["identity_checks"]:
        verified(essc_registry, essc_city, citizen, "password", NEW_PASSWORD)
        expect(essc_registry, essc_city, "verify_identity", identity_check(citizen, essc_city, "password"),
               IdentityMismatch, "after a reset the old password must not pass")
    sealed = citizen_of(essc_mock, essc_city, "sealed")
    err = expect(essc_registry, essc_city, "reset_password",
                 dict(request, aac002=sealed["id_number"], verify_id=verified(essc_registry, essc_city, sealed, "sms")),
                 CardStatusAbnormal, "map the city's 卡状态异常 answer to CardStatusAbnormal(status=...)")
    check(err.status == "sealed", essc_city, "reset_password", "$.details.status", "card-status",
          f"should be 'sealed', got {err.status!r}", "raise CardStatusAbnormal(status=<the contract status>)")


def test_query_contributions(essc_city, essc_registry, essc_mock):
    """query_contributions answers the months of the period only, oldest first, the same twice."""
    skip_if_exempt(essc_registry, essc_city, "test_query_contributions")
    need_operation(essc_registry, essc_city, "query_contributions")
    need_opened(essc_registry.city(essc_city), essc_mock)
    citizen = citizen_of(essc_mock, essc_city, "normal")
    request = {"aac002": citizen["id_number"], "aab301": essc_city, "from_month": "201801", "to_month": "202212"}
    hint = "map each wire entry to month, insurance, base_cents, paid_cents (integers, fen) and status"
    history = ok(essc_registry, essc_city, "query_contributions", request, hint)
    months = [e["month"] for e in history["months"]]
    check(all("201801" <= m <= "202212" for m in months), essc_city, "query_contributions", "$.months[*].month",
          "period", "an entry outside the period asked for", "send from_month and to_month as the city expects")
    check(months == sorted(months), essc_city, "query_contributions", "$.months", "oldest-first",
          "the entries are not oldest first", "sort the entries by month")
    check(ok(essc_registry, essc_city, "query_contributions", request, hint) == history, essc_city,
          "query_contributions", "$", "same-answer", "the same query answered differently", hint)


def test_settle_medical(essc_city, essc_registry, essc_mock):
    """settle_medical is idempotent by settlement_id: pre_settle twice, confirm twice and reverse
    twice each answer the same and charge once; confirm of a reversed settlement is
    SETTLEMENT_CONFLICT, of an unknown id SETTLEMENT_NOT_FOUND; fund + self-pay = total."""
    skip_if_exempt(essc_registry, essc_city, "test_settle_medical")
    need_operation(essc_registry, essc_city, "settle_medical")
    need_opened(essc_registry.city(essc_city), essc_mock)
    citizen = citizen_of(essc_mock, essc_city, "normal")
    sign_no = activated(essc_registry, essc_city, citizen)
    sid = f"suite-{essc_city}-0001"
    bill = {"action": "pre_settle", "settlement_id": sid, "aac002": citizen["id_number"], "aab301": essc_city,
            "sign_no": sign_no, "busi_type": "02", "hospital": {"code": "H0001", "name": "第一人民医院"},
            "items": BILL}
    hint = "send the action, the settlement id and the items as the city expects; map its answer to settlement_result"
    held = ok(essc_registry, essc_city, "settle_medical", bill, hint)
    total = sum(i["amount_cents"] for i in BILL)
    check((held["state"], held["total_cents"]) == ("pre_settled", total), essc_city, "settle_medical", "$.state",
          "pre-settled", f"a pre-settlement of {total} fen answered {held['state']} {held['total_cents']}", hint)
    check(held["fund_cents"] + held["self_pay_cents"] == total, essc_city, "settle_medical", "$.self_pay_cents",
          "split", "fund_cents + self_pay_cents is not total_cents", "map the city's fund share and self-pay")
    same = "the same request answered differently: the settlement id is the idempotency key"
    check(ok(essc_registry, essc_city, "settle_medical", bill, hint) == held, essc_city, "settle_medical", "$",
          "idempotent", same, hint)
    confirm = {k: v for k, v in bill.items() if k != "items"} | {"action": "confirm"}
    settled = ok(essc_registry, essc_city, "settle_medical", confirm, hint)
    check(settled == dict(held, state="settled"), essc_city, "settle_medical", "$.state", "settled",
          "confirm did not settle the pre-settled amounts", hint)
    check(ok(essc_registry, essc_city, "settle_medical", confirm, hint) == settled, essc_city, "settle_medical", "$",
          "idempotent", same, hint)
    reverse = dict(confirm, action="reverse")
    reversed_ = ok(essc_registry, essc_city, "settle_medical", reverse, hint)
    check(reversed_["state"] == "reversed", essc_city, "settle_medical", "$.state", "reversed",
          f"reverse of a settled bill answered {reversed_['state']}", hint)
    check(ok(essc_registry, essc_city, "settle_medical", reverse, hint) == reversed_, essc_city, "settle_medical",
          "$", "idempotent", same, hint)
    err = expect(essc_registry, essc_city, "settle_medical", confirm, SettlementConflict,
                 "map the city's 'state does not allow it' answer to SettlementConflict(state=...)")
    check(err.details.get("state") in (None, "reversed"), essc_city, "settle_medical", "$.details.state",
          "settlement-state", f"the conflict names state {err.details.get('state')!r}", "map the city's state")
    expect(essc_registry, essc_city, "settle_medical", dict(confirm, settlement_id=f"suite-{essc_city}-0002"),
           SettlementNotFound, "map the city's 'no such settlement' answer to SettlementNotFound")
    charged = [r for r in mock_admin(essc_city, "list settlements", essc_mock.settlements, essc_city)
               if r["settlement_id"] == sid]
    check(len(charged) == 1 and charged[0]["state"] == "reversed", essc_city, "settle_medical", "$", "charged-once",
          f"the city holds {len(charged)} settlement(s) for the id", "send the platform's settlement_id unchanged")


# -- faults -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", FAULTS)
def test_upstream_fault(essc_city, essc_registry, essc_mock, kind, request):
    """5xx, 429, malformed body, hang and dropped connection -> UPSTREAM_UNAVAILABLE with
    the right reason, within the plugin's time budget."""
    skip_if_exempt(essc_registry, essc_city, "test_upstream_fault")
    info = essc_registry.city(essc_city)
    need_opened(info, essc_mock)
    total_s = essc_registry.plugin(info.plugin).manifest["timeouts"]["total_s"]
    hint = "use context.http_client() and parse answers with parse_json / parse_xml"
    if kind == hangs.KIND:  # it waits on the budget: the hang checks of a run wait together (.hangs)
        probe = request.getfixturevalue("essc_hang_probes").probe(essc_city)
        if probe.setup_problem:
            fail(essc_city, "mock admin", "$", "mock-admin", f"the mock refused to set the hang up: "
                 f"{probe.setup_problem}", MOCK_HINT)
        err, elapsed = expected(probe.error, essc_city, "read_card", UpstreamUnavailable, hint), probe.elapsed_s
    else:
        citizen = citizen_of(essc_mock, essc_city, "normal")
        mock_admin(essc_city, f"inject a {kind} fault", essc_mock.fault, city=essc_city, operation="read_card",
                   kind=kind, retry_after=7, hang_s=total_s + 3)
        started = time.monotonic()
        err = expect(essc_registry, essc_city, "read_card", card_query(citizen, essc_city), UpstreamUnavailable, hint)
        elapsed = time.monotonic() - started
    check(err.reason == FAULTS[kind], essc_city, "read_card", "$.details.reason", "upstream-reason",
          f"reason {err.reason!r} for fault {kind}, expected {FAULTS[kind]!r}", hint)
    if kind == "http_429":
        check(err.retry_after == 7, essc_city, "read_card", "$.details.retry_after", "retry-after",
              f"Retry-After: 7 not carried over (got {err.retry_after})", "let context.http_client() raise on HTTP 429")
    check(elapsed <= total_s + 1, essc_city, "read_card", "$", "time-budget",
          f"took {elapsed:.1f}s, budget {total_s}s (manifest timeouts.total_s)",
          "make every HTTP call through context.http_client(): it keeps the budget")


# -- personal data ------------------------------------------------------------------------
def test_no_personal_data_in_logs(essc_city, essc_registry, essc_mock, caplog):
    """Nothing the plugin logs or raises contains the citizen's ID number, name, card number,
    phone or face token."""
    skip_if_exempt(essc_registry, essc_city, "test_no_personal_data_in_logs")
    need_opened(essc_registry.city(essc_city), essc_mock)
    citizen = citizen_of(essc_mock, essc_city, "reported_lost")
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
        mock_admin(essc_city, "inject an http_500 fault", essc_mock.fault, city=essc_city, operation="read_card",
                   kind="http_500")
        try:
            essc_registry.call(essc_city, "read_card", card_query(citizen, essc_city))
        except EsscError as err:
            texts += [str(err), describe(err)]
        if "reset_password" in declared(essc_registry, essc_city)["operations"]:
            try:  # refused (the card is reported lost): the new password must not show in the error either
                essc_registry.call(essc_city, "reset_password", {
                    "aac002": citizen["id_number"], "aab301": essc_city, "verify_id": "bogus-ticket",
                    "new_password": NEW_PASSWORD})
            except EsscError as err:
                texts += [str(err), describe(err)]
    texts.append(caplog.text)
    blob = "\n".join(texts)
    for field in ("id_number", "name", "card_no", "mobile"):
        value = citizen.get(field)
        check(not value or value not in blob, essc_city, "read_card / verify_identity / activate", "$",
              "no-personal-data", f"the citizen's {field} appears unmasked in logs or errors",
              "log wire keys, never values; use essc.core.masking helpers")
    check(FACE_TOKEN not in blob, essc_city, "verify_identity", "$", "no-personal-data",
          "the face token appears in logs or errors", "never log or repeat the request's face_token")
    check(NEW_PASSWORD not in blob, essc_city, "reset_password", "$", "no-personal-data",
          "the new password appears in logs or errors", "never log or repeat the request's new_password")


# -- recorded conformance (the top tier) -------------------------------------------------------
def test_recorded_conformance(essc_city, essc_registry, essc_mock):
    """Cassettes recorded against the city's own test system (``essc record``, in the plugin's
    ``cassettes/`` folder) replay as recorded: against the adapter, and - for a spec dialect -
    against the mock's dialect; they cover the happy path and each business error."""
    from .cassettes import COVERAGE, cassettes_of, covered, replay_adapter, replay_mock

    skip_if_exempt(essc_registry, essc_city, "test_recorded_conformance")
    folder, cassettes = cassettes_of(essc_registry, essc_city)
    if not cassettes:
        pytest.skip(f"no cassettes of city {essc_city} recorded against its test system ({folder}): "
                    "record them with essc record for the platinum tier")
    spec = getattr(essc_registry.adapter(essc_city), "spec", None)
    problems = replay_adapter(essc_registry, essc_city, cassettes, spec)
    if spec is not None:
        labels = {c["label"] for c in cassettes if c["label"] != "-"}
        people = {label: essc_mock.citizen(essc_city, label) for label in labels}
        problems += replay_mock(spec, essc_mock.url, cassettes, people)
    missing = sorted(COVERAGE - covered(cassettes))
    assert not problems, fail(essc_city, "recorded", "$", "conformance",
                              "; ".join(str(p) for p in problems[:5]),
                              "the spec or the adapter disagrees with what the city answered: fix the mapping")
    assert not missing, fail(essc_city, "recorded", "$", "coverage",
                             "the cassettes lack " + ", ".join(f"{o} {k}" for o, k in missing),
                             "record with a citizen for each outcome (essc record --citizen ...)")
