"""Channel credentials: the TOML file, API keys, HMAC signatures and the 401 answers."""
import itertools
import json
import time

import pytest

from essc.service.api import create_app
from essc.service.channels import DEFAULT_FILE, AuthFailure, Channel, Channels, sign

from .conftest import person

NOW = 1_800_000_000


@pytest.fixture
def channels():
    return Channels({"alipay": Channel("alipay", api_key="ali-key", hmac_secret="ali-secret"),
                     "bank.icbc": Channel("bank.icbc", hmac_secret="icbc-secret")})


_nonces = (f"nonce-{n:016d}" for n in itertools.count())


def signed(channel, secret, body=b"", stamp=NOW, method="POST", target="/v1/activations"):
    nonce = next(_nonces)
    return {"X-Channel": channel, "X-Timestamp": str(stamp), "X-Nonce": nonce,
            "X-Signature": sign(secret, method, target, stamp, nonce, body)}


def auth(channels, headers, body=b"", now=None, method="POST", target="/v1/activations"):
    return channels.authenticate(headers, body, now=now, method=method, target=target)


# -- the scheme (no HTTP) ------------------------------------------------------------------------
def test_default_file_holds_only_the_demo_channel():
    loaded = Channels.load()
    assert loaded.source == str(DEFAULT_FILE)
    assert list(loaded.channels) == ["demo"] and loaded.channels["demo"].demo
    assert "DEMO ONLY" in DEFAULT_FILE.read_text()


def test_load_a_channels_file(tmp_path):
    path = tmp_path / "channels.toml"
    path.write_text('[channels.wechat]\napi_key = "wx"\n[channels.gov-app]\nhmac_secret = "s"\n')
    loaded = Channels.load(path)
    assert set(loaded.channels) == {"wechat", "gov-app"}
    assert loaded.channels["gov-app"].api_key is None
    assert "wx" not in repr(loaded.channels["wechat"])  # secrets stay out of reprs and logs


@pytest.mark.parametrize("text", ['[channels.Alipay]\napi_key = "k"\n', '[channels.x]\napi_key = "k"\n',
                                  '[channels.wechat]\ndescription = "no credential"\n'])
def test_bad_channels_files_fail_at_start(tmp_path, text):
    path = tmp_path / "channels.toml"
    path.write_text(text)
    with pytest.raises(ValueError):
        Channels.load(path)


def test_api_key_and_signature(channels):
    assert auth(channels, {"X-Channel": "alipay", "X-Api-Key": "ali-key"}).name == "alipay"
    body = b'{"a": 1}'
    assert auth(channels, signed("alipay", "ali-secret", body), body, now=NOW + 299).name == "alipay"
    assert auth(channels, signed("bank.icbc", "icbc-secret"), now=NOW - 299).name == "bank.icbc"
    digest = __import__("hashlib").sha256(body).hexdigest()
    message = f"POST\n/v1/activations?x=%2F\n{NOW}\nnonce-0123456789ab\n{digest}".encode()
    expected = __import__("hmac").new(b"ali-secret", message, "sha256").hexdigest()
    assert sign("ali-secret", "POST", "/v1/activations?x=%2F", NOW, "nonce-0123456789ab", body) == expected


@pytest.mark.parametrize("headers, now", [
    ({}, NOW),
    ({"X-Api-Key": "ali-key"}, NOW),
    ({"X-Channel": "alipay"}, NOW),
    ({"X-Channel": "alipay", "X-Api-Key": "wrong"}, NOW),
    ({"X-Channel": "alipay", "X-Api-Key": ""}, NOW),
    ({"X-Channel": "nobody", "X-Api-Key": "ali-key"}, NOW),
    ({"X-Channel": "bank.icbc", "X-Api-Key": "icbc-secret"}, NOW),  # no api key configured
    (signed("alipay", "wrong-secret"), NOW),
    (signed("alipay", "ali-secret"), NOW + 301),
    (signed("alipay", "ali-secret"), NOW - 301),
    (signed("nobody", "ali-secret"), NOW),
    ({"X-Channel": "alipay", "X-Timestamp": str(NOW)}, NOW),
    ({**signed("alipay", "ali-secret"), "X-Timestamp": "17e8"}, NOW),
    ({k: v for k, v in signed("alipay", "ali-secret").items() if k != "X-Nonce"}, NOW),
    ({**signed("alipay", "ali-secret"), "X-Nonce": "short"}, NOW),
])
def test_refused(channels, headers, now):
    with pytest.raises(AuthFailure):
        auth(channels, headers, now=now)


def test_signature_covers_the_body(channels):
    with pytest.raises(AuthFailure):
        auth(channels, signed("alipay", "ali-secret", b'{"a": 1}'), b'{"a": 2}', now=NOW)


# -- over HTTP ---------------------------------------------------------------------------------
@pytest.fixture
def client(runtime):
    return create_app(runtime, {"TESTING": True}).test_client()


def now_signed(body: bytes, secret="demo-secret", skew=0, method="POST", target="/v1/activations"):
    return signed("demo", secret, body, int(time.time()) + skew, method, target)


BODY = json.dumps({"city": "330100", "id_number": "11010119900307803X", "name": "张三", "consent": True}).encode()
UNAUTHORIZED = [  # headers made when the test runs: a signed timestamp is relative to that moment
    ("missing", lambda: {}),
    ("no channel", lambda: {"X-Api-Key": "demo-key"}),
    ("no credential", lambda: {"X-Channel": "demo"}),
    ("wrong key", lambda: {"X-Channel": "demo", "X-Api-Key": "nope"}),
    ("unknown channel", lambda: {"X-Channel": "alipay", "X-Api-Key": "demo-key"}),
    ("bad signature", lambda: now_signed(BODY, secret="wrong")),
    ("signature of another body", lambda: now_signed(b"{}")),
    ("stale timestamp", lambda: now_signed(BODY, skew=-301)),
    ("future timestamp", lambda: now_signed(BODY, skew=+400)),
]


@pytest.mark.parametrize("case, make_headers", UNAUTHORIZED, ids=[u[0] for u in UNAUTHORIZED])
def test_unauthenticated_requests_get_401(client, runtime, case, make_headers):
    response = client.post("/v1/activations", data=BODY, content_type="application/json", headers=make_headers())
    assert response.status_code == 401
    error = response.get_json()["error"]
    assert error["code"] == "UNAUTHORIZED" and error["recovery"] == "permanent"
    assert runtime.store.counts() == {}  # nothing recorded


def test_a_valid_hmac_signed_request(client, mock):
    payload = json.dumps({"city": "330100", **person(mock, "330100"), "consent": True}, ensure_ascii=False).encode()
    response = client.post("/v1/activations", data=payload, content_type="application/json",
                           headers=now_signed(payload))
    assert response.status_code in (200, 201, 202), response.get_json()  # whatever the flow answers: not 401
    assert response.get_json()["channel"] == "demo"
    location = response.headers["Location"]
    get = client.get(location, headers=now_signed(b"", method="GET", target=location))  # the empty body
    assert get.status_code == 200


def test_channels_file_of_the_runtime_names_the_channel(runtime, mock, tmp_path):
    path = tmp_path / "channels.toml"
    path.write_text('[channels.alipay]\napi_key = "ali-key"\n')
    runtime.config.channels_file = path
    client = create_app(runtime).test_client()
    assert client.get("/v1/adapters", headers={"X-Channel": "demo", "X-Api-Key": "demo-key"}).status_code == 401
    payload = {"city": "330100", **person(mock, "330100"), "consent": True}
    response = client.post("/v1/activations", json=payload, headers={"X-Channel": "alipay", "X-Api-Key": "ali-key"})
    assert response.status_code in (200, 201, 202) and response.get_json()["channel"] == "alipay"
