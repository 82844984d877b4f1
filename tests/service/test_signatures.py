"""Signatures that cannot be replayed, and throttling of failed authentication.

The scheme (docs/signing.md): X-Signature = hex HMAC-SHA256(secret, METHOD \\n PATH_WITH_QUERY
\\n X-Timestamp \\n X-Nonce \\n hex SHA256(body)); a nonce is accepted once per channel while
its timestamp is in the window (SQLite/PostgreSQL table or Redis); failed authentications
are throttled per channel name and per client address. Time is an injected clock: no test
sleeps."""
import hashlib
import hmac
import itertools
import logging
import threading
import uuid
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine

from essc.service.api import create_app
from essc.service.channels import AuthFailure, Channel, Channels, request_target, sign, string_to_sign
from essc.service.config import ServiceConfig
from essc.service.nonces import MemoryNonceStore, RedisNonceStore, SqlNonceStore, build_nonce_store
from essc.service.throttle import FailureThrottle, MemoryCounters, RedisCounters, build_throttle

from .conftest import REDIS

NOW = 1_800_000_000
ACT_ID = "0123456789abcdef0123456789abcdef"
_nonces = (f"test-nonce-{n:08d}-{uuid.uuid4().hex[:8]}" for n in itertools.count())


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def signed(method, target, body=b"", *, channel="demo", secret="demo-secret", stamp=NOW, nonce=None):
    nonce = next(_nonces) if nonce is None else nonce
    return {"X-Channel": channel, "X-Timestamp": str(stamp), "X-Nonce": nonce,
            "X-Signature": sign(secret, method, target, stamp, nonce, body)}


# -- servers (skipped, with the reason, where absent) -------------------------------------------
@pytest.fixture
def pg_engine(pg_url):
    engine = create_engine(pg_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(params=["memory", "sqlite", "postgresql", "redis"])
def nonce_store(request, tmp_path):
    if request.param == "memory":
        return MemoryNonceStore()
    if request.param == "sqlite":
        return SqlNonceStore(create_engine(f"sqlite:///{tmp_path / 'nonces.sqlite3'}"))
    if request.param == "postgresql":
        return SqlNonceStore(request.getfixturevalue("pg_engine"))
    client = request.getfixturevalue("redis_client")
    return RedisNonceStore(client, prefix=client.test_prefix + "nonce:")


# -- the scheme ----------------------------------------------------------------------------------
def test_the_string_to_sign_and_the_signature():
    body = b'{"city": "330100"}'
    message = string_to_sign("post", "/v1/activations?x=1", NOW, "abcdefghijklmnop", body)
    assert message == (b"POST\n/v1/activations?x=1\n1800000000\nabcdefghijklmnop\n"
                       + hashlib.sha256(body).hexdigest().encode())
    expected = hmac.new(b"s3cret", message, hashlib.sha256).hexdigest()
    assert sign("s3cret", "POST", "/v1/activations?x=1", str(NOW), "abcdefghijklmnop", body) == expected
    assert sign("s3cret", "POST", b"/v1/activations?x=1", NOW, "abcdefghijklmnop", body.decode()) == expected
    # the empty body of a GET: SHA-256 of nothing
    assert string_to_sign("GET", "/v1/adapters", NOW, "n" * 16).endswith(
        b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


@pytest.mark.parametrize("environ, target", [
    ({"RAW_URI": "/v1/adapters", "PATH_INFO": "/v1/adapters"}, b"/v1/adapters"),
    ({"REQUEST_URI": "/v1/adapters?b=2&a=1"}, b"/v1/adapters?b=2&a=1"),  # order kept, not sorted
    ({"REQUEST_URI": "/v1/adapters?"}, b"/v1/adapters"),  # an empty query adds no "?"
    ({"REQUEST_URI": "/v1/adapters?q=%41#frag"}, b"/v1/adapters?q=%41"),  # raw, undecoded; no fragment
    ({"REQUEST_URI": "/v1/a%2Fb"}, b"/v1/a%2Fb"),
    ({"REQUEST_URI": "http://api.example/v1/adapters?x=1"}, b"/v1/adapters?x=1"),  # absolute-form
    ({"REQUEST_URI": "/v1/\xe6\x9d\xad"}, "/v1/杭".encode()),  # unencoded UTF-8: the bytes sent
    # no raw URI from the server: SCRIPT_NAME + PATH_INFO encoded again, QUERY_STRING as is
    ({"SCRIPT_NAME": "/api", "PATH_INFO": "/v1/a b", "QUERY_STRING": "q=%41"}, b"/api/v1/a%20b?q=%41"),
    ({"PATH_INFO": "/v1/adapters", "QUERY_STRING": ""}, b"/v1/adapters"),
])
def test_path_with_query_is_the_raw_request_target(environ, target):
    assert request_target(environ) == target


# -- nonce stores --------------------------------------------------------------------------------
def test_a_nonce_is_accepted_once_per_channel_until_it_expires(nonce_store):
    nonce = next(_nonces)
    assert nonce_store.claim("alipay", nonce, expires_at=NOW + 301, now=NOW)
    assert not nonce_store.claim("alipay", nonce, expires_at=NOW + 400, now=NOW + 1)
    assert nonce_store.claim("bank.icbc", nonce, expires_at=NOW + 301, now=NOW)  # per channel
    if not isinstance(nonce_store, RedisNonceStore):  # (Redis expires keys on its own clock)
        assert not nonce_store.claim("alipay", nonce, expires_at=NOW + 900, now=NOW + 300)
        assert nonce_store.claim("alipay", nonce, expires_at=NOW + 902, now=NOW + 301)  # expired: forgotten


def test_parallel_claims_of_one_nonce_let_exactly_one_through(nonce_store):
    nonce, results, start = next(_nonces), [], threading.Barrier(12)

    def claim():
        start.wait()
        results.append(nonce_store.claim("alipay", nonce, expires_at=NOW + 301, now=NOW))

    threads = [threading.Thread(target=claim) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 11 + [True]


def test_redis_keeps_the_nonce_until_the_timestamp_leaves_the_window(redis_client):
    store = RedisNonceStore(redis_client, prefix=redis_client.test_prefix + "nonce:")
    assert store.claim("alipay", "abcdefghijklmnop", expires_at=NOW + 601, now=NOW + 1)
    ttl = redis_client.pttl(redis_client.test_prefix + "nonce:alipay:abcdefghijklmnop")
    assert 599_000 < ttl <= 600_000  # SET NX PX: expiry = what is left of the window


def test_sql_store_purges_expired_rows_now_and_then(tmp_path):
    store = SqlNonceStore(create_engine(f"sqlite:///{tmp_path / 'n.sqlite3'}"), purge_every_s=60)
    for i in range(5):
        assert store.claim("alipay", f"nonce-{i:012d}", expires_at=NOW + 301, now=NOW)
    assert store.count() == 5
    store.claim("alipay", "nonce-later-000000", expires_at=NOW + 1000, now=NOW + 302)  # past the purge time
    assert store.count() == 1


def test_the_store_follows_the_configuration(tmp_path, runtime):
    assert isinstance(build_nonce_store(runtime, {}, env={}), SqlNonceStore)  # SQLite runtime
    fake = SimpleNamespace(config=ServiceConfig(data_dir=tmp_path, queue_url="redis://127.0.0.1:6379/0"),
                           store=None)
    chosen = build_nonce_store(fake, {}, env={})
    assert isinstance(chosen, RedisNonceStore) and chosen.prefix == "essc:nonce:"
    assert isinstance(build_nonce_store(runtime, {}, env={"ESSC_NONCE_URL": "redis://127.0.0.1:6379/1"}),
                      RedisNonceStore)
    with pytest.raises(ValueError):
        build_nonce_store(runtime, {"NONCE_URL": "sqlite:///x"}, env={})
    assert isinstance(create_app(runtime, {"TESTING": True}).extensions["essc"].nonces, SqlNonceStore)


# -- over HTTP -----------------------------------------------------------------------------------
@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_client(runtime, clock):
    """A test client of an app with two channels, the injected clock and a throttle of 3
    failures per 60 s; ``store`` picks the nonce store (default: the service database)."""

    def make(store=None, throttle=None, address="192.0.2.10"):
        channels = Channels({"demo": Channel("demo", api_key="demo-key", hmac_secret="demo-secret"),
                             "bank": Channel("bank", hmac_secret="bank-secret")}, clock=clock)
        config = {"TESTING": True, "CHANNELS": channels,
                  "AUTH_THROTTLE": throttle or FailureThrottle(limit=3, window_s=60, clock=clock)}
        if store is not None:
            config["NONCE_STORE"] = store
        app = create_app(runtime, config)
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        client.state = app.extensions["essc"]
        return client

    return make


def refused(response, rule=None):
    assert response.status_code == 401, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "UNAUTHORIZED"
    if rule:
        assert error["details"].get("rule") == rule, error
    return error


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_replayed_request_is_refused(make_client, kind, request):
    if kind == "redis":
        redis_client = request.getfixturevalue("redis_client")
        client = make_client(RedisNonceStore(redis_client, prefix=redis_client.test_prefix + "nonce:"))
    else:
        client = make_client()
        assert isinstance(client.state.nonces, SqlNonceStore)  # the runtime's SQLite database
    headers = signed("GET", "/v1/adapters")
    assert client.get("/v1/adapters", headers=headers).status_code == 200
    error = refused(client.get("/v1/adapters", headers=headers), rule="replay")
    assert "replay" in error["detail"]
    # the same nonce under a fresh timestamp is still the same nonce
    again = signed("GET", "/v1/adapters", stamp=NOW + 5, nonce=headers["X-Nonce"])
    refused(client.get("/v1/adapters", headers=again), rule="replay")
    # ...but it belongs to its channel only
    other = signed("GET", "/v1/adapters", channel="bank", secret="bank-secret", nonce=headers["X-Nonce"])
    assert client.get("/v1/adapters", headers=other).status_code == 200


def test_a_replay_is_refused_by_another_api_process_sharing_redis(make_client, redis_client):
    prefix = redis_client.test_prefix + "nonce:"
    first, second = make_client(RedisNonceStore(REDIS, prefix)), make_client(RedisNonceStore(REDIS, prefix))
    headers = signed("GET", "/v1/adapters")
    assert first.get("/v1/adapters", headers=headers).status_code == 200
    refused(second.get("/v1/adapters", headers=headers), rule="replay")


def test_the_nonce_is_kept_while_its_timestamp_is_in_the_window(make_client, clock):
    client = make_client()
    headers = signed("GET", "/v1/adapters", stamp=NOW + 300)  # 300 s ahead: still accepted
    assert client.get("/v1/adapters", headers=headers).status_code == 200
    clock.now = NOW + 599  # 599 s after first use, the timestamp is still in the window...
    refused(client.get("/v1/adapters", headers=headers), rule="replay")  # ...so is the nonce
    clock.now = NOW + 601
    refused(client.get("/v1/adapters", headers=headers), rule="timestamp-window")


def test_a_signature_for_one_request_does_not_fit_another(make_client):
    client = make_client(throttle=FailureThrottle(limit=100))
    for_adapters = signed("GET", "/v1/adapters")
    refused(client.get(f"/v1/activations/{ACT_ID}", headers=for_adapters))  # 401, not 404
    refused(client.get("/v1/adapters", headers=signed("POST", "/v1/adapters")))  # method
    # the query string is covered, as sent
    refused(client.get("/v1/adapters?page=2", headers=signed("GET", "/v1/adapters?page=1")))
    refused(client.get("/v1/adapters?page=1", headers=signed("GET", "/v1/adapters")))
    refused(client.get("/v1/adapters", headers=signed("GET", "/v1/adapters?page=1")))
    refused(client.get("/v1/adapters?q=A", headers=signed("GET", "/v1/adapters?q=%41")))  # raw, not decoded
    assert client.get("/v1/adapters?q=%41", headers=signed("GET", "/v1/adapters?q=%41")).status_code == 200
    assert client.get("/v1/adapters?page=1", headers=signed("GET", "/v1/adapters?page=1")).status_code == 200
    # the body is covered
    body, other = b'{"city": "330100"}', b'{"city": "110100"}'
    post = signed("POST", "/v1/activations", body)
    refused(client.post("/v1/activations", data=other, content_type="application/json", headers=post))
    refused(client.post(f"/v1/activations/{ACT_ID}/verification", data=body, content_type="application/json",
                        headers=signed("POST", "/v1/activations", body)))  # path
    # the right signature gets past authentication (then the flow judges the body: 400 here)
    ok = client.post("/v1/activations", data=body, content_type="application/json",
                     headers=signed("POST", "/v1/activations", body))
    assert ok.status_code == 400 and ok.get_json()["error"]["code"] == "INVALID_INPUT"
    # an activation id in the signed path is the one read
    assert client.get(f"/v1/activations/{ACT_ID}",
                      headers=signed("GET", f"/v1/activations/{ACT_ID}")).status_code == 404


@pytest.mark.parametrize("nonce, ok", [
    ("a" * 15, False), ("a" * 16, True), ("A-z_0" * 12 + "9999", True), ("a" * 65, False),
    ("abcdefghijklmno=", False), ("abcdefgh ijklmnop", False), ("abcdefghijklmnop/", False),
    ("abcdéfghijklmnop", False), ("", False),
])
def test_nonce_format(make_client, nonce, ok):
    client = make_client(throttle=FailureThrottle(limit=100))
    headers = signed("GET", "/v1/adapters", nonce=nonce)  # (a nonce the server never accepts is signed too)
    response = client.get("/v1/adapters", headers=headers)
    if ok:
        assert response.status_code == 200, response.get_json()
    else:
        refused(response, rule="nonce-format" if nonce else "signature-headers")


@pytest.mark.parametrize("stamp, rule", [
    (str(NOW - 300), None), (str(NOW + 300), None),
    (str(NOW - 301), "timestamp-window"), (str(NOW + 301), "timestamp-window"),
    ("+" + str(NOW), "timestamp-format"), ("1.8e9", "timestamp-format"), (f"{NOW}.5", "timestamp-format"),
    ("١٨٠٠٠٠٠٠٠٠", "timestamp-format"),  # Arabic-Indic digits: not ASCII
    ("1" * 13, "timestamp-format"),
])
def test_timestamp_window(make_client, stamp, rule):
    client = make_client(throttle=FailureThrottle(limit=100))
    nonce = next(_nonces)
    headers = {"X-Channel": "demo", "X-Timestamp": stamp, "X-Nonce": nonce,
               "X-Signature": sign("demo-secret", "GET", "/v1/adapters", stamp if stamp.isascii() else "0", nonce)}
    response = client.get("/v1/adapters", headers=headers)
    if rule is None:
        assert response.status_code == 200
    else:
        refused(response, rule=rule)


def test_api_keys_still_work_and_the_demo_channel_warns(runtime, caplog):
    with caplog.at_level(logging.WARNING, logger="essc.service.channels"):
        client = create_app(runtime, {"TESTING": True}).test_client()
    assert "DEMO-ONLY" in caplog.text
    assert client.get("/v1/adapters", headers={"X-Channel": "demo", "X-Api-Key": "demo-key"}).status_code == 200


# -- throttling ----------------------------------------------------------------------------------
BAD_KEY = {"X-Channel": "demo", "X-Api-Key": "wrong"}
GOOD_KEY = {"X-Channel": "demo", "X-Api-Key": "demo-key"}


def get(client, headers, address):
    return client.get("/v1/adapters", headers=headers, environ_base={"REMOTE_ADDR": address})


def too_many(response):
    assert response.status_code == 429, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "TOO_MANY_REQUESTS" and error["retryable"] and error["recovery"] == "retry"
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= 60 and error["details"]["retry_after"] == seconds
    return seconds


def test_failures_from_one_address_get_429_while_others_pass(make_client, clock, caplog):
    client = make_client()
    caplog.set_level(logging.INFO)
    for _ in range(3):
        refused(get(client, BAD_KEY, "198.51.100.7"))
    clock.now += 20
    # no credential is checked any more from that address: a right key, another channel, a signature
    assert too_many(get(client, GOOD_KEY, "198.51.100.7")) == 40
    too_many(get(client, signed("GET", "/v1/adapters", channel="bank", secret="bank-secret"), "198.51.100.7"))
    # the same channel from an address that is not failing still passes
    assert get(client, GOOD_KEY, "203.0.113.5").status_code == 200
    assert get(client, signed("GET", "/v1/adapters", stamp=int(clock.now)), "203.0.113.5").status_code == 200
    clock.now += 40  # the window has passed
    assert get(client, GOOD_KEY, "198.51.100.7").status_code == 200
    assert "198.51.100.7" not in caplog.text and "203.0.113.5" not in caplog.text  # no addresses in logs


def test_failures_of_one_channel_name_from_many_addresses_get_429(make_client, clock):
    client = make_client()
    bad = {"X-Channel": "bank", "X-Api-Key": "guess"}
    for i in range(3):
        refused(get(client, bad, f"198.51.100.{i}"))  # one failure per address: under the address limit
    good = signed("GET", "/v1/adapters", channel="bank", secret="bank-secret")
    too_many(get(client, good, "198.51.100.1"))  # the name is spent for every address that failed
    too_many(get(client, bad, "198.51.100.2"))
    # the address itself is not blocked for other channels...
    assert get(client, GOOD_KEY, "198.51.100.1").status_code == 200
    # ...and the real bank, from an address that is not failing, is not locked out
    assert get(client, good, "203.0.113.9").status_code == 200
    # a new attacking address gets one try at the name, then 429
    refused(get(client, bad, "198.51.100.50"))
    too_many(get(client, bad, "198.51.100.50"))
    clock.now += 60
    assert get(client, signed("GET", "/v1/adapters", channel="bank", secret="bank-secret", stamp=NOW + 60),
               "198.51.100.1").status_code == 200


def test_a_success_is_never_counted_nor_slowed(make_client):
    client = make_client()
    for _ in range(2):
        refused(get(client, BAD_KEY, "198.51.100.7"))
    for _ in range(25):
        assert get(client, GOOD_KEY, "198.51.100.7").status_code == 200
        assert get(client, signed("GET", "/v1/adapters"), "198.51.100.7").status_code == 200
    refused(get(client, BAD_KEY, "198.51.100.7"))  # the third failure: still checked, 401
    too_many(get(client, GOOD_KEY, "198.51.100.7"))


def test_replays_and_bad_timestamps_count_as_failures(make_client):
    client = make_client()
    headers = signed("GET", "/v1/adapters")
    assert get(client, headers, "198.51.100.7").status_code == 200
    for _ in range(2):
        refused(get(client, headers, "198.51.100.7"), rule="replay")
    refused(get(client, signed("GET", "/v1/adapters", stamp=NOW - 1000), "198.51.100.7"), rule="timestamp-window")
    too_many(get(client, signed("GET", "/v1/adapters"), "198.51.100.7"))


def test_throttle_counts_in_redis_are_shared_by_api_processes(make_client, redis_client):
    prefix = redis_client.test_prefix + "authfail:"
    first = make_client(throttle=FailureThrottle(3, 60, RedisCounters(REDIS, prefix), key_secret=b"shared"))
    second = make_client(throttle=FailureThrottle(3, 60, RedisCounters(REDIS, prefix), key_secret=b"shared"))
    for _ in range(3):
        refused(get(first, BAD_KEY, "198.51.100.7"))
    too_many(get(second, GOOD_KEY, "198.51.100.7"))
    assert get(second, GOOD_KEY, "203.0.113.5").status_code == 200
    keys = [k.decode() for k in redis_client.scan_iter(f"{prefix}*")]
    assert keys and not any("198.51.100.7" in k for k in keys)  # addresses are stored hashed
    assert all(0 < redis_client.pttl(k) <= 60_000 for k in keys)


def test_throttle_configuration(runtime):
    throttle = build_throttle(runtime, {}, env={})
    assert (throttle.limit, throttle.window_s) == (10, 60.0) and isinstance(throttle.counters, MemoryCounters)
    throttle = build_throttle(runtime, {"AUTH_FAILURE_LIMIT": 5},
                              env={"ESSC_AUTH_FAILURE_WINDOW_S": "30", "ESSC_AUTH_FAILURE_LIMIT": "7"})
    assert (throttle.limit, throttle.window_s) == (5, 30.0)
    assert build_throttle(runtime, {}, env={"ESSC_AUTH_FAILURE_LIMIT": "0"}) is None
    assert create_app(runtime, {"AUTH_THROTTLE": False}).extensions["essc"].throttle is None
    fake = SimpleNamespace(config=ServiceConfig(data_dir=runtime.config.data_dir, queue_url=REDIS), store=None)
    assert isinstance(build_throttle(fake, {}, env={}).counters, RedisCounters)


def test_several_api_processes_without_redis_each_allow_their_share_of_failures(runtime):
    """essc serve --processes 3 counts failures in each process: each allows ceil(10 / 3), so all
    together about the limit; counters in Redis are shared and keep the whole limit."""
    processes = SimpleNamespace(config=ServiceConfig(data_dir=runtime.config.data_dir, api_processes=3), store=None)
    assert build_throttle(processes, {}, env={}).limit == 4
    shared = SimpleNamespace(config=ServiceConfig(data_dir=runtime.config.data_dir, api_processes=3, queue_url=REDIS),
                             store=None)
    assert build_throttle(shared, {}, env={}).limit == 10


def test_authenticate_without_http_uses_the_channels_own_store():
    channels = Channels({"alipay": Channel("alipay", hmac_secret="s")}, clock=Clock())
    headers = signed("GET", "/v1/adapters", channel="alipay", secret="s")
    assert channels.authenticate(headers, b"", method="GET", target="/v1/adapters").name == "alipay"
    with pytest.raises(AuthFailure) as failure:
        channels.authenticate(headers, b"", method="GET", target="/v1/adapters")
    assert failure.value.details == {"rule": "replay"}
