"""The OpenID Connect provider end to end (issue 11, section 3): Authlib's OAuth2 client against
the API served by waitress on a free port, the scan confirmation done by a test channel."""
import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from joserfc import jwt
from joserfc.jwk import KeySet

from essc.mockserver.serve import start_in_thread
from essc.service.api import create_app
from essc.service.relying import OidcClient, RelyingParties, RelyingParty

from .api_helpers import CHANNELS, DEMO_CH, activated
from .conftest import DEMO, person

REDIRECT = "http://127.0.0.1:9/callback"  # never reached: the test reads the redirect's Location
PARTIES = RelyingParties({
    "portal": RelyingParty("portal", api_key="portal-key", kind="portal", scope=frozenset({"name"}),
                           oidc=OidcClient("portal-secret", (REDIRECT,), ("essc", "openid", "profile"))),
    "portal-b": RelyingParty("portal-b", api_key="portal-b-key", kind="portal",
                             oidc=OidcClient("portal-b-secret", (REDIRECT,), ("essc", "openid"))),
})


@pytest.fixture
def served(runtime):
    app = create_app(runtime, {"TESTING": True, "CHANNELS": CHANNELS, "RELYING_PARTIES": PARTIES})
    app.config["MAX_BODY_BYTES"] = app.config["MAX_CONTENT_LENGTH"]  # what the mock's runner sizes waitress by
    server = start_in_thread(app)  # on a free port, listening when it returns
    try:
        yield app, server.url
    finally:
        server.stop()


@pytest.fixture
def meta(served):
    discovery = requests.get(served[1] + "/.well-known/openid-configuration", timeout=10)
    assert discovery.status_code == 200
    return discovery.json()


def portal(client_id="portal", secret="portal-secret", scope="openid essc profile"):
    return OAuth2Session(client_id=client_id, client_secret=secret, scope=scope, redirect_uri=REDIRECT,
                         code_challenge_method="S256")


def login(app, meta, act_id, session):
    """Authorize (the page shows a login code), confirm it in the channel, follow the page's poll:
    the redirect to the portal. Returns (Location, verifier, nonce, state)."""
    verifier, nonce = generate_token(48), generate_token(20)
    url, state = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    page = requests.get(url, timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    code = re.search(r'data-login-code="([^"]+)"', page.text).group(1)
    poll = html.unescape(re.search(r'id="poll" href="([^"]+)"', page.text).group(1))
    waiting = requests.get(meta["issuer"] + poll, allow_redirects=False, timeout=10)
    assert waiting.status_code == 200 and "data-status=\"pending\"" in waiting.text  # not confirmed yet
    confirmed = app.test_client().post(f"/v1/login-sessions/{code}/confirm",
                                       json={"activation_id": act_id, **DEMO}, headers=DEMO_CH)
    assert confirmed.status_code == 200, confirmed.get_json()
    done = requests.get(meta["issuer"] + poll, allow_redirects=False, timeout=10)
    assert done.status_code == 302, done.text
    return done.headers["Location"], verifier, nonce, state


def test_a_portal_logs_a_citizen_in_through_openid_connect(served, meta, mock):
    app, url = served
    who = person(mock, "330100")
    act_id = activated(app.test_client(), who)
    assert meta["issuer"] == url and meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["subject_types_supported"] == ["pairwise"]

    session = portal()
    location, verifier, nonce, state = login(app, meta, act_id, session)
    assert location.startswith(REDIRECT + "?") and parse_qs(urlsplit(location).query)["state"] == [state]
    token = session.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    assert token["token_type"].lower() == "bearer" and set(token["scope"].split()) == {"openid", "essc", "profile"}

    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    id_token = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": meta["issuer"]}, aud={"essential": True, "value": "portal"},
                          nonce={"essential": True, "value": nonce}, sub={"essential": True},
                          exp={"essential": True}, iat={"essential": True}).validate(id_token.claims)
    assert id_token.header["alg"] == "RS256" and id_token.header["kid"] == keys.keys[0].kid
    for secret in (who["id_number"], who["name"]):  # the token names nobody
        assert secret not in str(id_token.claims)

    info = session.get(meta["userinfo_endpoint"]).json()
    assert info["sub"] == id_token.claims["sub"] and info["essc_city"] == "330100" and info["essc_sign_level"] == 1
    assert info["name"] == who["name"] and info["id_hint"].startswith(who["id_number"][:3])  # profile: granted
    assert "id_number" not in info

    # pairwise: another portal knows the same citizen by another sub, without the name
    other = portal("portal-b", "portal-b-secret", "openid essc profile")
    location, verifier, _, _ = login(app, meta, act_id, other)
    token_b = other.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    assert token_b["scope"] == "openid essc"  # profile is not registered for it
    sub_b = jwt.decode(token_b["id_token"], keys, algorithms=["RS256"]).claims["sub"]
    assert sub_b != id_token.claims["sub"] and "name" not in other.get(meta["userinfo_endpoint"]).json()


def test_a_reused_code_is_refused_and_revokes_its_token(served, meta, mock):
    app, _ = served
    act_id = activated(app.test_client(), person(mock, "330100"))
    session = portal()
    location, verifier, _, _ = login(app, meta, act_id, session)
    session.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    assert session.get(meta["userinfo_endpoint"]).status_code == 200
    with pytest.raises(OAuthError) as refused:
        portal().fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    assert refused.value.error == "invalid_grant"
    assert session.get(meta["userinfo_endpoint"]).status_code == 401  # the replay revoked the first token


def test_a_wrong_pkce_verifier_is_refused(served, meta, mock):
    app, _ = served
    act_id = activated(app.test_client(), person(mock, "330100"))
    session = portal()
    location, _, _, _ = login(app, meta, act_id, session)
    with pytest.raises(OAuthError) as refused:
        session.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=generate_token(48))
    assert refused.value.error == "invalid_grant"


def test_bad_authorization_requests_are_refused(served, meta):
    base = {"response_type": "code", "client_id": "portal", "redirect_uri": REDIRECT, "scope": "openid",
            "state": "s", "nonce": "n", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256"}

    def authorize(**changes):
        params = {k: v for k, v in {**base, **changes}.items() if v is not None}
        return requests.get(meta["authorization_endpoint"], params=params, allow_redirects=False, timeout=10)

    assert authorize().status_code == 200
    for redirect in ("http://127.0.0.1:9/callback/../evil", "https://evil.example/cb", REDIRECT + "?x=1"):
        bad = authorize(redirect_uri=redirect)  # never redirected to an unregistered URI
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_request" and "Location" not in bad.headers
    assert authorize(client_id="nobody").status_code in (400, 401)
    for changes in ({"code_challenge": None, "code_challenge_method": None}, {"code_challenge_method": "plain"},
                    {"nonce": None}):
        refused = authorize(**changes)  # the redirect_uri is valid: the error goes to the portal
        assert refused.status_code == 302, changes
        assert parse_qs(urlsplit(refused.headers["Location"]).query)["error"] == ["invalid_request"]


def test_an_unlinked_e_ssc_ends_the_portals_access(served, meta, mock):
    app, _ = served
    act_id = activated(app.test_client(), person(mock, "330100"))
    session = portal()
    location, verifier, _, _ = login(app, meta, act_id, session)
    session.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    assert app.test_client().delete(f"/v1/activations/{act_id}", headers=DEMO_CH).status_code == 200
    assert session.get(meta["userinfo_endpoint"]).status_code == 401

