"""The activation flow against the in-process mock: outcomes, idempotency, retries, audit."""
import time

import pytest

from essc.core.errors import IdentityMismatch, InvalidInput, RetryableError, UpstreamUnavailable
from essc.service import states
from essc.service.errors import ActivationConflict, ActivationNotFound, IdentityLocked

from .conftest import DEMO, person


def submit(rt, city, who, **kw):
    args = dict(channel="test", consent=True)
    args.update(kw)
    return rt.service.submit(city=city, **who, **args)


def verify(rt, act, channel="test", **kw):
    return rt.service.verify(act["id"], channel=channel, **{**DEMO, **kw})


def settle(rt, act_id, timeout=15):
    """Wait (for the event, with a deadline) until the queue no longer holds the activation."""
    deadline = time.monotonic() + timeout
    act = rt.store.get(act_id)
    while act["status"] in states.RUNNABLE and time.monotonic() < deadline:
        time.sleep(0.05)
        act = rt.store.get(act_id)
    return act


def activate(rt, city, who, channel="test"):
    act = submit(rt, city, who, channel=channel)
    assert act["status"] == states.AWAITING_VERIFICATION, act
    return verify(rt, act, channel=channel)


def test_activation_follows_the_citizen_card_read_then_identity(runtime, mock):
    act = submit(runtime, "350100", person(mock, "350100"))
    assert act["status"] == states.AWAITING_VERIFICATION and act["card_status"] == "normal"
    assert act["credential"] is None
    assert [e["operation"] for e in mock.journal(city="350100")] == ["read_card"]
    act, credential = verify(runtime, act)
    assert act["status"] == states.ACTIVATED
    assert credential["aab301"] == "350100" and credential["sign_no"] and credential == act["credential"]
    events = [e["event"] for e in runtime.store.audit(act["id"])]
    assert events == ["consent_given", "city_chosen", "card_read", "identity_verified", "activated"]


def test_resubmission_after_activation_never_returns_the_credential(runtime, mock):
    who = person(mock, "330100")
    act, credential = activate(runtime, "330100", who)
    again = submit(runtime, "330100", {**who, "name": "王五"})
    assert again["id"] == act["id"] and again["status"] == states.ACTIVATED
    assert "credential" not in runtime.service.view(again)
    with pytest.raises(ActivationConflict):
        verify(runtime, again, face_token="live-forged", sms_code="000000")


def test_each_channel_verifies_and_the_city_issues_one_credential(runtime, mock):
    who = person(mock, "330100")
    first, cred_a = activate(runtime, "330100", who, channel="alipay")
    other = submit(runtime, "330100", who, channel="wechat")
    assert other["id"] != first["id"] and other["status"] == states.AWAITING_VERIFICATION
    with pytest.raises(ActivationNotFound):  # a channel cannot verify another channel's activation
        runtime.service.verify(first["id"], channel="wechat", **DEMO)
    second, cred_b = verify(runtime, other, channel="wechat")
    assert cred_b["sign_no"] == cred_a["sign_no"]  # the same credential: issued once per citizen + city
    assert runtime.store.counts() == {states.ACTIVATED: 2}


def test_a_citizen_with_cards_in_two_cities_chooses_each(runtime, mock):
    who = person(mock, "330100")
    a = submit(runtime, "330100", who)
    assert "330500" in {c["code"] for c in mock.cities()}
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


def test_failed_checks_lock_the_citizen_out_across_channels_and_resubmissions(runtime, mock):
    runtime.config.max_identity_attempts, runtime.config.identity_lockout_s = 3, 1800
    who = person(mock, "330100")
    act = submit(runtime, "330100", who)
    for left in (2, 1):
        with pytest.raises(IdentityMismatch) as info:
            verify(runtime, act, sms_code="000000")
        assert info.value.details["attempts_left"] == left
        act = submit(runtime, "330100", who)  # a new submission does not reset the count
        assert act["status"] == states.AWAITING_VERIFICATION
    with pytest.raises(IdentityLocked) as info:
        verify(runtime, act, sms_code="000000")
    assert 1790 <= info.value.retry_after <= 1800
    assert runtime.store.get(act["id"])["status"] == states.IDENTITY_FAILED
    checks = len(mock.journal(city="330100", operation="verify_identity"))
    assert checks == 3
    other = submit(runtime, "330100", who, channel="wechat")  # another channel, the right code: still locked
    with pytest.raises(IdentityLocked):
        verify(runtime, other, channel="wechat")
    again = submit(runtime, "330100", who)  # resubmitted: the card is read again, the lock stays
    assert again["status"] == states.AWAITING_VERIFICATION
    with pytest.raises(IdentityLocked):
        verify(runtime, again)
    assert len(mock.journal(city="330100", operation="verify_identity")) == checks  # the city was not asked
    events = [e["detail"] or "" for e in runtime.store.audit(act["id"])]
    assert not any(who["id_number"] in e or who["name"] in e for e in events)


def test_lockout_ends_and_the_citizen_verifies_again(runtime, mock):
    runtime.config.max_identity_attempts = 1
    who = person(mock, "330100")
    act = submit(runtime, "330100", who)
    runtime.config.identity_lockout_s = -1  # a lockout that has already ended
    with pytest.raises(IdentityLocked):
        verify(runtime, act, sms_code="000000")
    act = submit(runtime, "330100", who)
    act, credential = verify(runtime, act)
    assert act["status"] == states.ACTIVATED and credential


def test_identity_retry_with_the_right_code_succeeds(runtime, mock):
    who = person(mock, "330100")
    act = submit(runtime, "330100", who)
    with pytest.raises(IdentityMismatch):
        verify(runtime, act, sms_code="000000")
    act, credential = verify(runtime, act)
    assert act["status"] == states.ACTIVATED and credential
    events = [e["event"] for e in runtime.store.audit(act["id"])]
    assert events.count("card_read") == 1 and "identity_mismatch" in events


def test_verification_secrets_must_have_the_contract_form(runtime, mock):
    act = submit(runtime, "330100", person(mock, "330100"))
    for bad in (dict(sms_code="1234"), dict(sms_code="12345678"), dict(face_token="x"), dict(password="abc"),
                dict(sms_code="123456", password="123456"), dict(sms_code="12345\n"), dict(sms_code="١٢٣٤٥٦")):
        args = {**DEMO, **bad}
        if "password" in bad and "sms_code" not in bad:
            args.pop("sms_code")
        with pytest.raises(InvalidInput):
            runtime.service.verify(act["id"], channel="test", **args)
    assert mock.journal(city="330100", operation="verify_identity") == []


def test_resubmission_while_pending_reads_the_card_with_the_new_data(runtime, mock):
    who = person(mock, "330100")
    act = submit(runtime, "330100", {**who, "name": "王五"})  # a wrong name: no such record (yet)
    assert act["status"] == states.PENDING_SYNC
    fixed = submit(runtime, "330100", who)  # corrected while pending: read again at once, with the new name
    assert fixed["id"] == act["id"] and fixed["status"] == states.AWAITING_VERIFICATION
    assert len(mock.journal(city="330100", operation="read_card")) == 2
    events = [e["event"] for e in runtime.store.audit(act["id"])]
    assert events[-2:] == ["resubmitted", "card_read"]


def test_resubmission_after_a_final_failure_reads_the_card_again(runtime, mock):
    who = person(mock, "330100")
    runtime.config.max_age_s = 0  # the first failure is final (expired)
    act = submit(runtime, "330100", {**who, "name": "王五"})
    assert act["status"] == states.EXPIRED
    runtime.config.max_age_s = 3600
    again = submit(runtime, "330100", who)
    assert again["id"] == act["id"] and again["status"] == states.AWAITING_VERIFICATION


def test_delayed_sync_is_retried_by_the_queue(runtime, mock):
    mock.set_city("110000", mode="delayed", sync_delay_s=30)
    runtime.start_workers()
    act = submit(runtime, "110000", person(mock, "110000"))
    assert act["status"] == states.PENDING_SYNC and act["error"]["code"] == "RECORD_NOT_SYNCED"
    assert act["next_attempt_at"] > time.time()  # retry_after 30 s, capped at 2 s by the test config
    mock.advance(30)
    act = settle(runtime, act["id"])
    assert act["status"] == states.AWAITING_VERIFICATION
    act, credential = verify(runtime, act)
    assert act["status"] == states.ACTIVATED


def test_upstream_faults_are_retried_until_the_card_is_read(runtime, mock):
    mock.fault(city="440300", operation="read_card", kind="http_503", attempts=[1, 2, 3, 4])
    runtime.start_workers()
    act = submit(runtime, "440300", person(mock, "440300"))
    assert act["status"] == states.PENDING_UPSTREAM
    act = settle(runtime, act["id"])
    assert act["status"] == states.AWAITING_VERIFICATION and act["runs"] >= 2


def test_city_unavailable_during_the_check_records_nothing(runtime, mock):
    act = submit(runtime, "440300", person(mock, "440300"))
    mock.fault(city="440300", operation="verify_identity", kind="http_503", attempts=list(range(1, 10)))
    with pytest.raises(RetryableError):
        verify(runtime, act)
    assert runtime.store.get(act["id"])["status"] == states.AWAITING_VERIFICATION
    mock.clear_faults()
    act, credential = verify(runtime, act)  # the channel asks the citizen again
    assert credential


def test_credential_issued_later_when_the_city_fails_after_the_check(runtime, mock):
    act = submit(runtime, "440300", person(mock, "440300"))
    mock.fault(city="440300", operation="activate", kind="http_503", attempts=[1, 2, 3, 4])
    act, credential = verify(runtime, act)
    assert credential is None and act["status"] == states.PENDING_UPSTREAM
    runtime.start_workers()
    act = settle(runtime, act["id"])
    assert act["status"] == states.ACTIVATED and act["credential"]["sign_no"]


def test_pending_activation_expires_after_max_age(runtime, mock):
    runtime.config.max_age_s = 0.5
    mock.set_city("110000", mode="delayed", sync_delay_s=3600)
    runtime.start_workers()
    act = submit(runtime, "110000", person(mock, "110000"))
    act = settle(runtime, act["id"])
    assert act["status"] == states.EXPIRED and act["error"]["code"] == "RECORD_NOT_SYNCED"


def test_retry_delay_policy(runtime):
    svc = runtime.service
    runtime.config.retry_base_s, runtime.config.retry_cap_s = 1.0, 60.0
    assert 10.0 <= svc.retry_delay(1, 10.0) <= 10.2  # the city's hint wins
    assert svc.retry_delay(1, 3600.0) <= 60.2  # ... up to the cap
    delays = [svc.retry_delay(n, None) for n in range(1, 12)]
    ranges = [(0.5 * min(60, 2 ** (n - 1)), min(60, 2 ** (n - 1))) for n in range(1, 12)]
    assert all(lo <= d <= hi for (lo, hi), d in zip(ranges, delays, strict=True))


def test_a_refusal_of_the_framework_backs_off_from_its_hint(runtime):
    """A full bulkhead or an open breaker (the city was not called) gives a hint that is a floor:
    an activation refused again and again waits longer each time, instead of coming back every
    second while the city hangs; the city's own hint is still taken as it is."""
    svc = runtime.service
    runtime.config.retry_base_s, runtime.config.retry_cap_s = 1.0, 60.0
    for runs in range(1, 10):
        backoff = min(60.0, 2.0 ** (runs - 1))
        refused = svc.retry_delay(runs, 1.0, refused=True)
        assert max(1.0, 0.5 * backoff) <= refused <= max(1.05, backoff)
        assert 1.0 <= svc.retry_delay(runs, 1.0) <= 1.05  # a city's Retry-After: no backoff on top
    assert 10.0 <= svc.retry_delay(1, 10.0, refused=True) <= 10.5  # an open breaker's cool-down is kept
    assert svc.retry_delay(12, 1.0, refused=True) <= 60.0  # ... and the cap


def test_activations_refused_by_a_full_bulkhead_come_back_less_and_less_often(runtime, mock, monkeypatch):
    refusal = UpstreamUnavailable("city 330100: 32 calls already in flight (bulkhead full)", reason="bulkhead_full",
                                  city="330100", retry_after=1.0)

    def full(*_args, **_kwargs):
        raise refusal

    monkeypatch.setattr(runtime.registry, "call", full)
    runtime.config.retry_base_s, runtime.config.retry_cap_s = 1.0, 60.0
    act = submit(runtime, "330100", person(mock, "330100"))
    delays = []
    for _ in range(6):
        assert act["status"] == states.PENDING_UPSTREAM and act["error"]["details"]["reason"] == "bulkhead_full", act
        due = act["next_attempt_at"]
        claimed = runtime.store.claim(act["id"], "test", 30.0, now=due)  # the queue takes it when due
        assert claimed is not None
        act = runtime.service._run_claimed(claimed, "test")
        delays.append(act["next_attempt_at"] - time.time())
    assert delays[-1] >= 8.0 > 2.1 >= delays[0] >= 0.9, delays  # runs 2: 1-2 s; runs 7: 32-60 s


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
            runtime.service.submit(consent=True, channel="t", **case)
    with pytest.raises(InvalidInput, match="consent"):
        runtime.service.submit(city="330100", consent=False, channel="t", **who)
    assert runtime.store.counts() == {}


def test_no_personal_data_in_the_database(runtime, mock, tmp_path):
    who = person(mock, "330100")
    activate(runtime, "330100", who)
    runtime.store.engine.dispose()
    raw = b"".join(p.read_bytes() for p in (runtime.config.data_dir).glob("essc.sqlite3*"))
    assert who["id_number"].encode() not in raw and who["name"].encode() not in raw
    assert DEMO["face_token"].encode() not in raw  # the check's secrets are used once, never stored


def test_names_of_minorities_and_cjk_extensions(runtime, mock):
    for name in ("阿依古丽·买买提", "𠀾明"):
        act = submit(runtime, "330100", {"id_number": person(mock, "330100")["id_number"], "name": name})
        assert act["status"] in states.ALL
    for name in ("·", "张·", "·张", "张三\n", "Zhang"):
        with pytest.raises(InvalidInput, match="name"):
            submit(runtime, "330100", {"id_number": person(mock, "330100")["id_number"], "name": name})
