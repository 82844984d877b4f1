"""Typed errors, ID numbers, masking and settings."""
import datetime as dt
import logging

import pytest

from essc.core import errors
from essc.core.idnumber import check_char, make_id_number, validate_id_number
from essc.core.masking import get_logger, mask_card, mask_id, mask_name, mask_phone, scrub
from essc.core.schemas import validator
from essc.core.settings import Settings

ALL = [
    errors.CityNotOpened(city="460300"),
    errors.RecordNotSynced(retry_after=600, city="110000"),
    errors.CardStatusAbnormal(status="sealed"),
    errors.IdentityMismatch(),
    errors.UpstreamUnavailable("late", reason="timeout"),
    errors.ContractViolation("bad", city="330100", hook="read_card", path="$.aaz502", rule="enum"),
    errors.InvalidInput("checksum", field="aac002"),
    errors.PluginUnavailable("quarantined"),
    errors.CredentialNotFound(city="330100", operation="enable_payment"),
    errors.SettlementNotFound(city="330100", operation="settle_medical"),
    errors.SettlementConflict(state="reversed", city="330100", operation="settle_medical"),
]


@pytest.mark.parametrize("err", ALL, ids=lambda e: e.code)
def test_error_objects_follow_the_schema_and_round_trip(err):
    data = err.to_dict()
    assert validator("error").problems(data) == []
    again = errors.error_from_dict(data)
    assert type(again) is type(err) and again.to_dict() == data


def test_recovery_classes():
    assert errors.RecordNotSynced(retry_after=5).retryable and errors.RecordNotSynced(retry_after=5).retry_after == 5
    assert isinstance(errors.UpstreamUnavailable(reason="http_5xx"), errors.RetryableError)
    assert isinstance(errors.IdentityMismatch(), errors.ReverifyError)
    for cls in (errors.CityNotOpened, errors.CardStatusAbnormal, errors.ContractViolation, errors.InvalidInput):
        assert issubclass(cls, errors.PermanentError)
    assert "暂未开通电子社保卡业务" in errors.CityNotOpened().message
    assert "人脸与身份不匹配" in errors.IdentityMismatch().message_zh
    assert "卡状态异常" in errors.CardStatusAbnormal(status="locked").message


def test_typed_errors_reject_unknown_values():
    with pytest.raises(ValueError):
        errors.CardStatusAbnormal(status="stolen")
    with pytest.raises(ValueError):
        errors.UpstreamUnavailable(reason="gremlins")


def test_id_numbers():
    assert validate_id_number("11010119900307803x") == "11010119900307803X"
    assert check_char("11010119900307803") == "X"
    made = make_id_number("371200", dt.date(1985, 2, 28), 17)
    assert validate_id_number(made) == made and made.startswith("371200")
    cases = {"110101199003078031": "checksum", "1101011990030780": "format", "11010119901307803X": "birth-date",
             12: "type", "١١٠١٠١١٩٩٠٠٣٠٧٨٠٣X": "format"}
    for value, rule in cases.items():
        with pytest.raises(errors.InvalidInput) as err:
            validate_id_number(value)
        assert err.value.details["rule"] == rule
        assert str(value) not in str(err.value)


def test_masking_helpers():
    assert mask_id("11010119900307803X") == "110***********803X"
    assert mask_name("欧阳娜娜") == "欧***" and mask_card("K13822465") == "K1*****65"
    assert mask_phone("13812345678") == "138****5678"
    text = scrub('id=11010119900307803X tel 13812345678 card K13822465 {"face_token": "live-abc"}')
    for secret in ("11010119900307803X", "13812345678", "K13822465", "live-abc"):
        assert secret not in text


def test_logger_filter_scrubs_arguments(caplog):
    log = get_logger("essc.test")
    with caplog.at_level(logging.INFO, logger="essc"):
        log.info("reading %s", "11010119900307803X")
    assert "11010119900307803X" not in caplog.text and "110***********803X" in caplog.text


def test_settings_from_file_and_env(tmp_path):
    cfg = tmp_path / "essc.toml"
    cfg.write_text('[plugins]\nallow = ["zhejiang"]\nblock = ["x"]\n[endpoints]\ndefault = "http://m:1"\n'
                   'zhejiang = "https://zj/"\n[credentials.zhejiang]\ntoken = "t"\n', encoding="utf-8")
    s = Settings.from_env(cfg, env={"ESSC_DISABLED_PLUGINS": "y, z", "ESSC_TRACE_PLUGINS": "1"})
    assert s.allow == {"zhejiang"} and s.block == {"x", "y", "z"} and s.trace
    assert s.endpoint("zhejiang") == "https://zj" and s.endpoint("fujian") == "http://m:1"
    assert s.credentials["zhejiang"]["token"] == "t"
    assert Settings.from_env(env={"ESSC_LOAD_PLUGINS": ""}).allow == frozenset()
