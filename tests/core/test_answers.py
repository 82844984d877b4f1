"""The answer-reading helpers adapters share."""
import pytest

from essc.core.answers import CityCall, named_fields, retry_seconds
from essc.core.errors import ContractViolation, UpstreamUnavailable

call = CityCall("330100", "read_card")


def test_checked_reads_raise_malformed_naming_the_key_not_the_value():
    assert call.text({"a": 12}, "a") == "12"
    with pytest.raises(UpstreamUnavailable) as err:
        call.text({"cardNo": " "}, "cardNo")
    assert err.value.reason == "malformed_response" and "'cardNo'" in str(err.value)
    assert err.value.details["city"] == "330100" and err.value.details["operation"] == "read_card"
    with pytest.raises(UpstreamUnavailable, match="unknown 'status'"):
        call.lookup({"ACTIVE": "normal"}, "K13822465", "status")
    assert "K13822465" not in str(pytest.raises(UpstreamUnavailable, call.lookup, {}, "K13822465", "s").value)


def test_dates():
    assert call.date8("20260230"[:6] + "28", "d") == "20260228"
    assert call.iso_date("2036-11-25T10:00:00", "d") == "20361125"
    for bad in ("20261340", "2026-11-25", None):
        with pytest.raises(UpstreamUnavailable):
            call.date8(bad, "d")
    with pytest.raises(UpstreamUnavailable):
        call.iso_date("tomorrow", "d")


def test_rejected_is_a_contract_violation_of_the_hook():
    err = call.rejected("bad signature")
    assert isinstance(err, ContractViolation) and err.details["hook"] == "read_card"


def test_retry_seconds_and_named_fields():
    assert retry_seconds("600") == 600 and retry_seconds(1.5) == 1.5
    assert retry_seconds("soon") is None and retry_seconds(-1) is None and retry_seconds(True) is None
    assert named_fields("aac002 is invalid; see aac0021", ["aac002", "aab301"]) == ["aac002"]
    assert named_fields(None, ["aac002"]) == []


def test_services_skip_unknown_and_repeated_codes():
    table = {"01": "identity_login", "02": "social_security"}
    items = [{"fwbm": "01", "fwmc": "身份认证"}, {"fwbm": "99", "fwmc": "?"}, {"fwbm": "01", "fwmc": "again"},
             {"fwbm": "02", "fwmc": "社保"}]
    assert call.services(items, "fwbm", "fwmc", table) == [
        {"code": "identity_login", "name": "身份认证"}, {"code": "social_security", "name": "社保"}]
    with pytest.raises(UpstreamUnavailable):
        call.services(["01"], "fwbm", "fwmc", table)
    with pytest.raises(UpstreamUnavailable):
        call.services({"fwbm": "01"}, "fwbm", "fwmc", table)


def test_health_words_and_schema_fit():
    assert call.health("up", "UP", "DOWN", 1.5) == {"status": "up", "latency_ms": 1.5}
    assert call.health("DOWN", "up", "down", 1.0)["status"] == "down"
    assert call.health("maintenance", "UP", "DOWN", 1.0)["status"] == "degraded"
    assert call.fits("health", {"status": "up", "latency_ms": 1}) == {"status": "up", "latency_ms": 1}
    with pytest.raises(UpstreamUnavailable, match=r"\$.status"):
        call.fits("health", {"status": "sleepy", "latency_ms": 1})
