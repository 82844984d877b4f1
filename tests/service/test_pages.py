"""The citizen's pages without a browser: launch URLs and returns (essc.service.pages.launch),
the page session's cookie, CSRF, and refusals shown as pages."""
from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from essc.service.api import create_app
from essc.service.channels import Channel, Channels
from essc.service.pages.launch import (
    LaunchRefused,
    ReturnRefused,
    build_launch_url,
    open_launch,
    return_url_allowed,
    signed_return_url,
    verify_return,
)

SECRET = "s3cret-of-the-channel"
CHANNELS = {"chan": Channel("chan", hmac_secret=SECRET, return_urls=("https://app.example/essc/",))}
WHO = {"id_number": "11010119900307803X", "name": "张三"}
RETURN = "https://app.example/essc/back?order=7"


def params(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def launch(**kwargs) -> str:
    return build_launch_url("https://essc.example", kwargs.pop("channel", "chan"), kwargs.pop("secret", SECRET),
                            **{**WHO, "return_url": RETURN, **kwargs})


def test_a_launch_url_round_trips_and_hides_the_citizen():
    url = launch()
    assert url.startswith("https://essc.example/h5/launch?")
    assert WHO["id_number"] not in url and "张三" not in url and "%E5%BC%A0" not in url
    accepted = open_launch(params(url), CHANNELS)
    assert (accepted.channel, accepted.id_number, accepted.name, accepted.return_url) == (
        "chan", WHO["id_number"], "张三", RETURN)


@pytest.mark.parametrize("field", ["channel", "citizen", "return_url", "expires", "nonce"])
def test_changing_any_signed_field_breaks_the_signature(field):
    query = params(launch())
    other = params(launch(return_url="https://app.example/essc/other", ttl_s=120))
    query[field] = other[field] if field != "channel" else "chan2"
    with pytest.raises(LaunchRefused) as refused:
        open_launch(query, {**CHANNELS, "chan2": CHANNELS["chan"]})
    assert refused.value.reason == "bad_signature"


@pytest.mark.parametrize(("change", "reason"), [
    ({"now": time.time() - 1000, "ttl_s": 60}, "expired"),
    ({"secret": "another-secret"}, "bad_signature"),
    ({"channel": "nobody"}, "bad_signature"),
    ({"return_url": "https://app.example/essc-other/"}, "return_url"),
])
def test_refusals_name_their_reason(change, reason):
    with pytest.raises(LaunchRefused) as refused:
        open_launch(params(launch(**change)), CHANNELS)
    assert refused.value.reason == reason


def test_missing_or_malformed_fields_are_refused_as_malformed():
    query = params(launch())
    for broken in ({k: v for k, v in query.items() if k != "nonce"}, {**query, "expires": "soon"},
                   {**query, "nonce": "short"}, {**query, "v": "9"},
                   {**query, "expires": str(int(time.time()) + 86400)}):
        with pytest.raises(LaunchRefused) as refused:
            open_launch(broken, CHANNELS)
        assert refused.value.reason in ("malformed", "bad_signature")
    with pytest.raises(ValueError):
        launch(ttl_s=3600)


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://app.example/essc/", True),
    ("https://app.example/essc/done?x=1", True),
    ("https://APP.example/essc/done", True),
    ("https://app.example/essc", False),
    ("https://app.example/essc-other/", False),
    ("https://app.example.evil/essc/", False),
    ("https://app.example:8443/essc/", False),
    ("http://app.example/essc/", False),
    ("https://user@app.example/essc/", False),
    ("https://app.example/essc/#frag", False),
    ("javascript:alert(1)//app.example/essc/", False),
    ("https://app.example/essc/\\evil", False),
])
def test_return_urls_match_a_configured_prefix_on_a_boundary(url, allowed):
    assert return_url_allowed(url, ["https://app.example/essc/"]) is allowed


def test_a_signed_return_verifies_keeps_the_channels_query_and_refuses_tampering():
    url = signed_return_url(RETURN, SECRET, channel="chan", action="001", activation="a" * 32, status="activated",
                            city="330100")
    assert parse_qs(urlsplit(url).query)["order"] == ["7"]
    back = verify_return(url, SECRET, channel="chan")
    assert (back["action"], back["status"], back["city"]) == ("001", "activated", "330100")
    with pytest.raises(ReturnRefused):
        verify_return(url.replace("essc_action=001", "essc_action=002"), SECRET)
    with pytest.raises(ReturnRefused):
        verify_return(url, "another-secret")
    with pytest.raises(ReturnRefused):
        verify_return(url, SECRET, channel="other")
    with pytest.raises(ReturnRefused):
        verify_return(url, SECRET, now=time.time() + 3600)
    with pytest.raises(ReturnRefused):
        verify_return(RETURN, SECRET)


# -- the pages on Flask's test client --------------------------------------------------------
@pytest.fixture
def app(runtime):
    channels = Channels({"chan": Channel("chan", api_key="k", hmac_secret=SECRET,
                                         return_urls=("https://app.example/essc/",))})
    return create_app(runtime, {"CHANNELS": channels, "TESTING": True})


def person(mock) -> dict:
    found = mock.citizen("330100")
    return {"id_number": found["id_number"], "name": found["name"]}


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_the_session_cookie_is_httponly_lax_signed_and_scoped(app, mock):
    client = app.test_client()
    who = person(mock)
    response = client.get(launch(**who).replace("https://essc.example", ""))
    assert response.status_code == 303 and response.location.endswith("/h5/terms")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("essc_h5=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/h5" in cookie and "Secure" not in cookie
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    data = app.session_interface.get_signing_serializer(app).loads(value)  # signed, readable by anyone
    assert data["ch"] == "chan" and data["hint"].endswith(who["id_number"][-4:])
    assert who["id_number"] not in repr(data) and who["name"] not in repr(data)  # sealed
    secure = app.test_client().get(launch(**who).replace("https://essc.example", ""), base_url="https://essc.example")
    assert "Secure" in secure.headers["Set-Cookie"]
    api = client.get("/v1/cities?q=hz")
    assert "Set-Cookie" not in api.headers and api.is_json


def test_posts_without_the_csrf_token_are_refused_with_a_page(app, mock):
    client = app.test_client()
    client.get(launch(**person(mock)).replace("https://essc.example", ""))
    page = client.get("/h5/terms")
    assert page.status_code == 200 and "text/html" in page.content_type
    refused = client.post("/h5/terms", data={"agree": "yes"})
    assert refused.status_code == 400 and "页面已过期" in refused.get_data(as_text=True)
    accepted = client.post("/h5/terms", data={"agree": "yes", "csrf_token": csrf_token(page.get_data(as_text=True))})
    assert accepted.status_code == 303 and accepted.location.endswith("/h5/cities")


def test_a_broken_launch_is_a_page_never_a_trace(app):
    client = app.test_client()
    for url in ("/h5/launch", "/h5/launch?channel=chan&citizen=x&return_url=y&expires=1&nonce=" + "n" * 20
                + "&signature=zz", "/h5/launch?expires=%FF%00"):
        response = client.get(url)
        assert response.status_code in (400, 403) and "text/html" in response.content_type
        assert "Traceback" not in response.get_data(as_text=True)
    assert client.get("/h5/nowhere").status_code == 404


def test_the_page_state_is_json_for_its_session_and_a_page_without_one(app, mock):
    client = app.test_client()
    assert client.get("/h5/activation/state").status_code == 401
    client.get(launch(**person(mock)).replace("https://essc.example", ""))
    missing = client.get("/h5/activation/state")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "NOT_FOUND"


def activated(app, mock) -> tuple:
    """A test client whose page session holds an activated e-SSC (made through the pages' service)."""
    client = app.test_client()
    who = person(mock)
    client.get(launch(**who).replace("https://essc.example", ""))
    service = app.extensions["essc"].runtime.service
    act = service.submit(city="330100", consent=True, channel="chan", **who)
    service.verify(act["id"], channel="chan", face_token="live-test", sms_code="123456")
    with client.session_transaction("/h5/activation") as sess:
        sess.update(agreed=True, city="330100", act=act["id"])
    return client, act


def test_the_activated_page_gives_dynamic_codes_a_relying_party_verifies(app, mock):
    client, act = activated(app, mock)
    page = client.get("/h5/activation").get_data(as_text=True)
    token = csrf_token(page)
    assert client.post("/h5/qrcode.json").status_code == 400  # no CSRF token
    answer = client.post("/h5/qrcode.json", headers={"X-CSRFToken": token})
    assert answer.status_code == 201
    body = answer.get_json()
    assert body["svg"].startswith('<svg role="img"') and body["ttl_s"] > 0
    state = app.extensions["essc"]
    verified = state.qrcodes.verify(body["qrcode"], "01", state.relying_parties.get("pharmacy-demo"))
    assert verified.view["city"] == "330100"
    without_js = client.post("/h5/qrcode", data={"csrf_token": token})
    assert without_js.status_code == 200 and "电子社保卡动态码" in without_js.get_data(as_text=True)


# -- launch tickets (POST /v1/launch-tickets) --------------------------------------------------
def ticket(client, who, **body):
    return client.post("/v1/launch-tickets", headers={"X-Channel": "chan", "X-Api-Key": "k"},
                       json={**who, "return_url": RETURN, **body})


def test_a_launch_ticket_opens_the_pages_once(app, mock):
    who = person(mock)
    made = ticket(app.test_client(), who)
    assert made.status_code == 201 and made.headers["Cache-Control"] == "no-store"
    body = made.get_json()
    assert who["id_number"] not in body["ticket"] and body["launch_url"].startswith("http://localhost/h5/launch?ticket=")
    citizen_browser = app.test_client()
    opened = citizen_browser.get(body["launch_url"])
    assert opened.status_code == 303 and opened.location.endswith("/h5/terms")
    terms = citizen_browser.get("/h5/terms").get_data(as_text=True)
    assert who["id_number"][-4:] in terms and who["id_number"] not in terms and who["name"] not in terms
    replayed = app.test_client().get(body["launch_url"])
    assert replayed.status_code == 403 and "链接已使用过" in replayed.get_data(as_text=True)


def test_launch_tickets_are_refused_for_bad_input_and_expire(app, mock):
    client, who = app.test_client(), person(mock)
    assert ticket(client, who, return_url="https://evil.example/essc/").get_json()["error"]["details"]["rule"] \
        == "return-urls"
    wrong_check = who["id_number"][:-1] + ("1" if who["id_number"][-1] != "1" else "2")
    assert ticket(client, {**who, "id_number": wrong_check}).status_code == 400
    assert ticket(client, who, ttl_s=601).status_code == 400
    assert client.post("/v1/launch-tickets", json={**who, "return_url": RETURN}).status_code == 401
    from essc.service.pages.launch import open_ticket, seal_ticket

    sealer = app.extensions["essc"].runtime.service.sealer
    old, _ = seal_ticket(sealer, "chan", return_url=RETURN, ttl_s=60, now=time.time() - 600, **who)
    with pytest.raises(LaunchRefused) as refused:
        open_ticket(sealer, old, app.extensions["essc"].channels.channels)
    assert refused.value.reason == "expired"
    expired = app.test_client().get("/h5/launch", query_string={"ticket": old})
    assert expired.status_code == 403 and "链接已过期" in expired.get_data(as_text=True)
    forged = app.test_client().get("/h5/launch", query_string={"ticket": "gAAAAAB" + "x" * 100})
    assert forged.status_code == 403 and "链接无法验证" in forged.get_data(as_text=True)
