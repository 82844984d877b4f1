"""No personal data beyond what a party was granted (issue 11): a whole scenario of the e-SSC in
use - activation, codes verified and refused, a scan login, an OpenID Connect login, unlinking -
and then every captured log record, every row of every table of the service's database, the
ID token and every answer given to a party without grants are searched for the citizen's ID
number and name."""
import base64
import hashlib
import json
import logging
import re
from urllib.parse import parse_qs, urlsplit

from authlib.common.security import generate_token
from sqlalchemy import select

from essc.service.api import create_app
from essc.service.models import Base
from essc.service.relying import OidcClient, RelyingParties, RelyingParty

from .api_helpers import CHANNELS, DEMO_CH, activated
from .conftest import DEMO, person

REDIRECT = "http://127.0.0.1:9/callback"
PARTIES = RelyingParties({
    "pharmacy": RelyingParty("pharmacy", api_key="pharmacy-key", kind="pharmacy", busi_types=frozenset({"01"})),
    "portal": RelyingParty("portal", api_key="portal-key", kind="portal",
                           oidc=OidcClient("portal-secret", (REDIRECT,), ("essc", "openid"))),
})
PHARMACY = {"X-Relying-Party": "pharmacy", "X-Api-Key": "pharmacy-key"}
PORTAL = {"X-Relying-Party": "portal", "X-Api-Key": "portal-key"}


def test_a_whole_scenario_leaves_no_id_number_or_name_behind(runtime, mock, caplog):
    caplog.set_level(logging.DEBUG)
    app = create_app(runtime, {"TESTING": True, "CHANNELS": CHANNELS, "RELYING_PARTIES": PARTIES})
    client = app.test_client()
    who = person(mock, "330100")
    seen_by_parties: list[str] = []  # every answer to a party granted nothing

    act_id = activated(client, who)
    code = client.post(f"/v1/activations/{act_id}/qrcode", headers=DEMO_CH).get_json()["qrcode"]
    for busi_type in ("01", "01", "02"):  # verified, used, not allowed
        answer = client.post("/v1/qrcode/verify", json={"qrcode": code, "busi_type": busi_type}, headers=PHARMACY)
        seen_by_parties.append(answer.get_data(as_text=True))
    client.post(f"/v1/activations/{act_id}/qrcode", headers=DEMO_CH)

    # scan login, with one failed identity check first
    session = client.post("/v1/login-sessions", headers=PORTAL).get_json()
    confirm = f"/v1/login-sessions/{session['login_code']}/confirm"
    client.post(confirm, json={"activation_id": act_id, "face_token": "live-x", "sms_code": "000000"},
                headers=DEMO_CH)
    assert client.post(confirm, json={"activation_id": act_id, **DEMO}, headers=DEMO_CH).status_code == 200
    seen_by_parties.append(client.get(f"/v1/login-sessions/{session['session_id']}", headers=PORTAL)
                           .get_data(as_text=True))

    # OpenID Connect, through the Flask test client
    verifier, nonce = generate_token(48), generate_token(16)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {"response_type": "code", "client_id": "portal", "redirect_uri": REDIRECT, "scope": "openid essc",
             "state": "st", "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256"}
    page = client.get("/oidc/authorize", query_string=query).get_data(as_text=True)
    login_code = re.search(r'data-login-code="([^"]+)"', page)[1]
    poll = re.search(r'id="poll" href="([^"]+)"', page)[1].replace("&amp;", "&")
    assert client.post(f"/v1/login-sessions/{login_code}/confirm", json={"activation_id": act_id, **DEMO},
                       headers=DEMO_CH).status_code == 200
    location = client.get(poll).headers["Location"]
    token = client.post("/oidc/token", data={"grant_type": "authorization_code", "redirect_uri": REDIRECT,
                                             "code": parse_qs(urlsplit(location).query)["code"][0],
                                             "code_verifier": verifier, "client_id": "portal",
                                             "client_secret": "portal-secret"}).get_json()
    id_token_claims = json.loads(base64.urlsafe_b64decode(token["id_token"].split(".")[1] + "=="))
    seen_by_parties += [json.dumps(token), json.dumps(id_token_claims, ensure_ascii=False),
                        client.get("/oidc/userinfo", headers={"Authorization": "Bearer " + token["access_token"]})
                        .get_data(as_text=True)]

    assert client.delete(f"/v1/activations/{act_id}", headers=DEMO_CH).status_code == 200
    seen_by_parties.append(client.post("/v1/qrcode/verify", json={"qrcode": code, "busi_type": "01"},
                                       headers=PHARMACY).get_data(as_text=True))

    # what the service wrote: logs (ours, not the mock city's), and every row of every table
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
                     if r.name.startswith("essc") and not r.name.startswith("essc.mockserver"))
    with runtime.store.engine.connect() as conn:
        rows = {table.name: [dict(row) for row in conn.execute(select(table)).mappings()]
                for table in Base.metadata.sorted_tables}
    database = json.dumps(rows, ensure_ascii=False, default=str)
    assert rows["usage_events"] and rows["audit_events"] and rows["oidc_tokens"]  # the scenario ran
    assert "refused" in logs or "login session" in logs

    for secret in (who["id_number"], who["name"], who["id_number"][:-4]):
        assert secret not in logs, "personal data in the service's logs"
        assert secret not in database, "personal data in clear in the database"
        for answer in seen_by_parties:
            assert secret not in answer, "personal data given to a party without the grant"
    for secret in (code, login_code, token["access_token"]):  # codes and tokens: hashes only
        assert secret not in database and secret not in logs
