"""The activation flow against the in-process mock: outcomes, idempotency, retries, audit."""
import time

import pytest

from essc.core.errors import InvalidInput
from essc.service import states

from .conftest import DEMO, person


def submit(rt, city, who, **kw):
    args = dict(DEMO, channel="test", consent=True)
    args.update(kw)
    return rt.service.submit(city=city, **who, **args)


def wait_final(rt, act_id, timeout=15):
    deadline = time.monotonic() + timeout
    act = rt.store.get(act_id)
    while act["status"] not in states.FINAL and time.monotonic() < deadline:
        time.sleep(0.05)
        act = rt.store.get(act_id)
    return act


def test_activation_in_a_supported_city(runtime, mock):
    act = submit(runtime, "350100", person(mock, "350100"))
    assert act["status"] == states.ACTIVATED
    assert act["credential"]["aab301"] == "350100" and act["credential"]["signNo"]
    events = [e["event"] for e in runtime.store.audit(act["id"])]
    assert events == ["consent_given", "city_chosen", "card_read", "identity_verified", "activated"]


def test_same_citizen_same_city_never_gets_two_credentials(runtime, mock):
    who = person(mock, "330100")
    first = submit(runtime, "330100", who)
    again = submit(runtime, "330100", who, channel="wechat")
    assert again["id"] == first["id"] and again["credential"] == first["credential"]
    assert runtime.store.counts() == {states.ACTIVATED: 1}


def test_a_citizen_with_cards_in_two_cities_chooses_each(runtime, mock):
    who = person(mock, "330100")
    a = submit(runtime, "330100", who)
    mock_cities = {c["code"] for c in mock.cities()}
    assert "330500" in mock_cities
    b = submit(runtime, "330500", who)
    assert a["id"] != b["id"] and a["city"] == "330100" and b["city"] == "330500"


@pytest.mark.parametrize("city, scenario, status, extra", [
    ("460300", "normal", states.CITY_NOT_OPENED, None),
    ("330100", "reported_lost", states.CARD_STATUS_ABNORMAL, "reported_lost"),
    ("510100", "sealed", states.CARD_STATUS_ABNORMAL, "sealed"),
    ("370200", "cancelled", states.CARD_STATUS_ABNORMAL, "cancelled"),
    ("350100", "locked", states.CARD_STATUS_ABNORMAL, "locked"),
])
def test_final_failures(runtime, mock, city, scenario, status, extra):
    act = submit(runtime, city, person(mock, city, scenario))
    assert act["status"] == status
    assert act["error"]["code"] in ("CITY_NOT_OPENED", "CARD_STATUS_ABNORMAL")
    if extra:
        assert act["card_status"] == extra and act["error"]["details"]["status"] == extra


def test_identity_mismatch_allows_bounded_retries(runtime, mock):
    who = person(mock, "330100", "face_mismatch")
    act = submit(runtime, "330100", who)
    assert act["status"] == states.AWAITING_VERIFICATION and act["identity_failures"] == 1
    act = submit(runtime, "330100", who)
    assert act["status"] == states.AWAITING_VERIFICATION and act["identity_failures"] == 2
    act = submit(runtime, "330100", who)
    assert act["status"] == states.IDENTITY_FAILED


def test_identity_retry_with_the_right_code_succeeds(runtime, mock):
    who = person(mock, "330100")
    act = submit(runtime, "330100", who, sms_code="000000")
    assert act["status"] == states.AWAITING_VERIFICATION
    act = submit(runtime, "330100", who)
    assert act["status"] == states.ACTIVATED
    events = [e["event"] for e in runtime.store.audit(act["id"])]
    assert events.count("card_read") == 1 and "resubmitted" in events


def test_delayed_sync_is_retried_by_the_queue(runtime, mock):
    mock.set_city("110000", mode="delayed", sync_delay_s=30)
    runtime.start_workers()
    act = submit(runtime, "110000", person(mock, "110000"))
    assert act["status"] == states.PENDING_SYNC and act["error"]["code"] == "RECORD_NOT_SYNCED"
    assert act["next_attempt_at"] > time.time()  # retry_after 30 s, capped at 2 s by the test config
    mock.advance(30)
    act = wait_final(runtime, act["id"])
    assert act["status"] == states.ACTIVATED


def test_upstream_faults_are_retried_until_success(runtime, mock):
    mock.fault(city="440300", operation="read_card", kind="http_503", attempts=[1, 2, 3, 4])
    runtime.start_workers()
    act = submit(runtime, "440300", person(mock, "440300"))
    assert act["status"] == states.PENDING_UPSTREAM
    act = wait_final(runtime, act["id"])
    assert act["status"] == states.ACTIVATED and act["runs"] >= 2


def test_pending_activation_expires_after_max_age(runtime, mock):
    runtime.config.max_age_s = 0.5
    mock.set_city("110000", mode="delayed", sync_delay_s=3600)
    runtime.start_workers()
    act = submit(runtime, "110000", person(mock, "110000"))
    act = wait_final(runtime, act["id"])
    assert act["status"] == states.EXPIRED and act["error"]["code"] == "RECORD_NOT_SYNCED"


def test_retry_delay_policy(runtime):
    svc = runtime.service
    runtime.config.retry_base_s, runtime.config.retry_cap_s = 1.0, 60.0
    assert 10.0 <= svc.retry_delay(1, 10.0) <= 10.2  # the city's hint wins
    assert svc.retry_delay(1, 3600.0) <= 60.2  # ... up to the cap
    delays = [svc.retry_delay(n, None) for n in range(1, 12)]
    ranges = [(0.5 * min(60, 2 ** (n - 1)), min(60, 2 ** (n - 1))) for n in range(1, 12)]
    assert all(lo <= d <= hi for (lo, hi), d in zip(ranges, delays, strict=True))


def test_bad_input_is_refused_before_anything_is_stored(runtime, mock):
    who = person(mock, "330100")
    cases = [
        dict(city="330100", id_number="110101199003078031", name="张三"),
        dict(city="999999", **who),
        dict(city="371200", **who),
        dict(city="330100", id_number=who["id_number"], name="Zhang San"),
    ]
    for case in cases:
        with pytest.raises(InvalidInput):
            runtime.service.submit(consent=True, channel="t", **DEMO, **case)
    with pytest.raises(InvalidInput, match="consent"):
        runtime.service.submit(city="330100", consent=False, channel="t", **DEMO, **who)
    assert runtime.store.counts() == {}


def test_no_personal_data_in_the_database(runtime, mock, tmp_path):
    who = person(mock, "330100")
    submit(runtime, "330100", who)
    runtime.store.engine.dispose()
    raw = b"".join(p.read_bytes() for p in (runtime.config.data_dir).glob("essc.sqlite3*"))
    assert who["id_number"].encode() not in raw and who["name"].encode() not in raw
