"""``essc demo``, the e-SSC in use: the API served on a free port, and a citizen who

* shows the dynamic code and has it verified at a pharmacy (masked; a second scan refused);
* logs in to a portal through OpenID Connect (Authlib's client: discovery, the authorization
  page's login code confirmed in the channel, token, ID token checked with the JWKS, userinfo);
* reports the card lost at the city (the mock's admin): the next code is refused, asked of the
  city through ``card_status``, and works again once the card is normal.

Each scene is a row of the demo's summary table (essc.service.demo).
"""
from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

from essc.core.masking import mask_name

from . import states
from .cli_flow import settle

VERIFY = {"face_token": "live-demo", "sms_code": "123456"}  # the mock's accepted checks
CHANNEL = {"X-Channel": "demo", "X-Api-Key": "demo-key"}  # the packaged DEMO-ONLY credentials
PHARMACY = {"X-Relying-Party": "pharmacy-demo", "X-Api-Key": "pharmacy-demo-key"}
PORTAL_ID, PORTAL_SECRET = "portal-demo", "portal-demo-client-secret"
PORTAL_REDIRECT = "http://127.0.0.1:8000/callback"  # registered; the demo reads the redirect, nothing listens
CITY = "330100"


@dataclass
class Row:
    title: str
    city: str
    status: str
    outcome: str
    took: float
    ok: bool


@contextmanager
def served(app) -> Iterator[str]:
    """``app`` on waitress at a free port of 127.0.0.1 (listening on entry); yields its URL."""
    from waitress import wasyncore
    from waitress.server import create_server

    socket_map: dict = {}
    server: Any = create_server(app, host="127.0.0.1", port=0, threads=8, map=socket_map)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            wasyncore.loop(timeout=0.2, map=socket_map, use_poll=True, count=1)

    thread = threading.Thread(target=loop, name="essc-demo-api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        stop.set()
        server.pull_trigger()
        thread.join(5)
        wasyncore.close_all(socket_map)


def _activate(console, rt, citizen: dict, wait_s: float) -> dict:
    act = rt.service.submit(city=CITY, id_number=citizen["id_number"], name=citizen["name"], consent=True,
                            channel="demo")
    act = settle(rt, act, wait_s)
    if act["status"] == states.AWAITING_VERIFICATION:
        act, _ = rt.service.verify(act["id"], channel="demo", **VERIFY)
        act = settle(rt, act, wait_s)
    console.print(f"citizen {mask_name(citizen['name'])} ({citizen['id_number'][:3]}…): e-SSC {act['status']}")
    return act


def _code_at_a_pharmacy(console, url: str, act: dict) -> tuple[bool, str, str]:
    shown = requests.post(f"{url}/v1/activations/{act['id']}/qrcode", headers=CHANNEL, timeout=10).json()
    code = shown["qrcode"]
    source = "asked of the city" if shown["card_status_source"] == "city" else "as recorded last"
    console.print(f"  the channel shows the code {code[:12]}… (valid {shown['ttl_s']:g} s; card "
                  f"{shown['card_status']}, {source})")
    scan = {"qrcode": code, "busi_type": "01"}
    seen = requests.post(f"{url}/v1/qrcode/verify", json=scan, headers=PHARMACY, timeout=10)
    person = seen.json()
    console.print(f"  the pharmacy scans it (busiType 01 query): {person.get('name_hint')} "
                  f"{person.get('id_hint')}, city {person.get('city')}, sign level {person.get('sign_level')}, "
                  f"person {str(person.get('essc_no'))[:9]}…")
    again = requests.post(f"{url}/v1/qrcode/verify", json=scan, headers=PHARMACY, timeout=10)
    refused = again.json().get("error", {}).get("code", "")
    console.print(f"  scanned a second time: {again.status_code} {refused}")
    ok = seen.status_code == 200 and "name" not in person and refused == "QRCODE_USED"
    return ok, "verified once (masked), then QRCODE_USED", f"{person.get('name_hint')} {person.get('id_hint')}"


def _portal_login(console, url: str, act: dict) -> tuple[bool, str]:
    from authlib.common.security import generate_token
    from authlib.integrations.requests_client import OAuth2Session
    from joserfc import jwt
    from joserfc.jwk import KeySet

    meta = requests.get(f"{url}/.well-known/openid-configuration", timeout=10).json()
    portal = OAuth2Session(client_id=PORTAL_ID, client_secret=PORTAL_SECRET, scope="openid essc profile",
                           redirect_uri=PORTAL_REDIRECT, code_challenge_method="S256")
    verifier, nonce = generate_token(48), generate_token(20)
    authorize, _ = portal.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier,
                                                   nonce=nonce)
    page = requests.get(authorize, timeout=10).text
    found = re.search(r'data-login-code="([^"]+)"', page)
    poll = re.search(r'id="poll" href="([^"]+)"', page)
    if not found or not poll:
        return False, "the authorization page showed no login code"
    code = found.group(1)
    console.print(f"  the portal's login page shows the code {code[:12]}…; the citizen confirms it in the channel "
                  "(face + SMS code)")
    confirmed = requests.post(f"{url}/v1/login-sessions/{code}/confirm", headers=CHANNEL, timeout=10,
                              json={"activation_id": act["id"], **VERIFY})
    if confirmed.status_code != 200:
        return False, f"confirmation refused: {confirmed.json().get('error', {}).get('code')}"
    back = requests.get(url + html.unescape(poll.group(1)), allow_redirects=False, timeout=10)
    location = back.headers.get("Location", "")
    if back.status_code != 302 or "code=" not in location:
        return False, f"no authorization code ({back.status_code})"
    token = portal.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    id_token = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": meta["issuer"]}, aud={"value": PORTAL_ID},
                          nonce={"essential": True, "value": nonce}).validate(id_token.claims)
    info = portal.get(meta["userinfo_endpoint"]).json()
    console.print(f"  ID token checked with the JWKS: sub {id_token.claims['sub'][:9]}… (pairwise), "
                  f"auth_time {time.strftime('%H:%M:%S', time.localtime(id_token.claims['auth_time']))}")
    console.print(f"  userinfo: city {info.get('essc_city')}, sign level {info.get('essc_sign_level')}, "
                  f"{info.get('id_hint')}, name {mask_name(info.get('name'))} (granted to this portal)")
    return info.get("sub") == id_token.claims["sub"], f"logged in as {id_token.claims['sub'][:9]}… (pairwise sub)"


def _lost_card(console, url: str, act: dict, admin, citizen: dict) -> tuple[bool, str]:
    def show() -> requests.Response:
        return requests.post(f"{url}/v1/activations/{act['id']}/qrcode", headers=CHANNEL, timeout=10)

    admin.set_card_status(CITY, citizen["id_number"], "reported_lost")
    console.print("  the citizen reports the card lost at the city (挂失)")
    blocked = show()
    error = blocked.json().get("error", {})
    console.print(f"  the channel asks for a code: {blocked.status_code} {error.get('code')} "
                  f"({error.get('details', {}).get('status')}) {error.get('message_zh', '')}")
    admin.set_card_status(CITY, citizen["id_number"], "normal")
    again = show()
    console.print(f"  the card is normal again (解挂): {again.status_code}, a fresh code")
    ok = (error.get("code") == "CARD_STATUS_ABNORMAL" and error.get("details", {}).get("status") == "reported_lost"
          and again.status_code == 201)
    return ok, "code refused while lost (reported_lost), works once normal"


def run_scenes(console, rt, admin, wait_s: float, first: int) -> list[Row]:
    """Run the scenes (numbered from ``first``); their summary rows."""
    from .api import create_app

    app = create_app(rt)  # the packaged channels file: demo channel and DEMO-ONLY relying parties
    rows = []
    citizens = admin.citizens(CITY, "normal")
    with served(app) as url:
        scenes = (
            ("the code, verified at a pharmacy", lambda act, who: _code_at_a_pharmacy(console, url, act)[:2]),
            ("portal login through OpenID Connect", lambda act, who: _portal_login(console, url, act)),
            ("a lost card blocks the code", lambda act, who: _lost_card(console, url, act, admin, who)),
        )
        for n, (title, play) in enumerate(scenes, first):
            console.rule(f"[bold]{n}. {title}[/] — 杭州 {CITY}")
            started = time.monotonic()
            who = citizens[1 + n - first]
            act = _activate(console, rt, who, wait_s)
            ok, outcome = (False, f"not activated: {act['status']}")
            if act["status"] == states.ACTIVATED:
                ok, outcome = play(act, who)
            console.print(f"[{'green' if ok else 'red'}]→ {outcome}[/]")
            rows.append(Row(title, f"杭州 {CITY}", act["status"], outcome, time.monotonic() - started, ok))
    return rows
