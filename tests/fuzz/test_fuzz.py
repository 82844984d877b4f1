"""Schemathesis against the served OpenAPI document, both auth schemes (``tox -e fuzz``).

The document is the one the app serves (``GET /v1/openapi.json``, bundled: no relative
$ref; the first test checks it is that very document), requests go to the app in-process
through its WSGI interface. Every operation gets about
``ESSC_FUZZ_EXAMPLES`` (default 50) generated requests, valid and invalid ones, per scheme:

* ``api-key``: ``X-Channel: demo`` + ``X-Api-Key: demo-key`` (a relying party's operation:
  ``X-Relying-Party`` naming a demo party + its key);
* ``signature``: ``X-Timestamp``, a fresh ``X-Nonce`` and ``X-Signature`` made by
  :func:`essc.service.channels.sign` over the method, the path with its query, the
  timestamp, the nonce and the exact body bytes sent (only operations that take credentials).

Who calls an operation is read from its ``security`` in the document: ``Channel`` (the demo
channel), ``RelyingParty`` (a demo relying party of the packaged channels file), or none (public).

A response fails the run when it is a 5xx, has a status the document does not list, a
content type it does not list, or a body that does not match the documented schema. A
channel request refused for its credentials (401/429) fails too: the fuzz must get past
authentication to test anything. ``ESSC_FUZZ_SEED`` explores another part of the input
space (default: derandomized, the same examples on every run).
"""
import json
import os
import secrets
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.transport.prepare import get_exclude_headers

from essc.service.api.validation import served_openapi_document
from essc.service.channels import sign

from .conftest import SENT, STATUSES

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("ESSC_FUZZ_EXAMPLES", "50"))
SEED = os.environ.get("ESSC_FUZZ_SEED")
CHANNEL = "demo"
#: the demo relying party calling an operation: portals open login sessions, a hospital verifies codes
PARTY_OF = {"/v1/qrcode/verify": "hospital-demo", "/v1/settlements": "hospital-demo",
            "/v1/settlements/{id}": "hospital-demo", "/v1/settlements/{id}/confirm": "hospital-demo",
            "/v1/settlements/{id}/reverse": "hospital-demo"}
DEFAULT_PARTY = "portal-demo"


def caller_kind(operation) -> str:
    """``channel``, ``party`` or ``public``: the credentials the operation's ``security`` asks for."""
    names = {name for requirement in operation.definition.raw.get("security") or () for name in requirement}
    return "channel" if "Channel" in names else "party" if "RelyingParty" in names else "public"

FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=SEED is None,
                suppress_health_check=list(HealthCheck))


# Loaded at import (one test item per operation); each item's requests go to its own app
# (fresh runtime) through ``app=``. schemathesis' lazy fixture loader does not work with pytest 9.
schema = schemathesis.openapi.from_dict(served_openapi_document())


def test_the_fuzzed_document_is_the_served_one(app):
    response = app.test_client().get("/v1/openapi.json")
    assert response.status_code == 200 and response.get_json() == schema.raw_schema


# -- steering: random ids and city codes rarely exist; part of the examples use real ones -----
#: per test item: an activation awaiting its check, and citizens the mock knows
REAL: dict = {}
#: the mock's own answers (its identity checks pass with these)
PASSING_CHECKS = ({"face_token": "live-fuzz", "sms_code": "123456"}, {"face_token": "live-fuzz", "password": "147258"})


@pytest.fixture(autouse=True)
def real_activation(app, mock):
    people = [{"city": city, "id_number": c["id_number"], "name": c["name"]}
              for city, scenario in (("330100", "normal"), ("350100", "normal"), ("510100", "normal"),
                                     ("370200", "normal"), ("330100", "reported_lost"), ("110000", "normal"))
              for c in mock.citizens(city, scenario)[:2]]
    client, auth = app.test_client(), {"X-Channel": CHANNEL, "X-Api-Key": "demo-key"}
    created = client.post("/v1/activations", json={**people[0], "consent": True}, headers=auth)
    assert created.status_code == 201, created.get_json()
    # an activated e-SSC: its codes steer the verification towards real ones
    other = client.post("/v1/activations", json={**people[2], "consent": True}, headers=auth).get_json()
    done = client.post(f"/v1/activations/{other['id']}/verification", json=PASSING_CHECKS[0], headers=auth)
    assert done.status_code == 201, done.get_json()

    def fresh_code(_):
        answer = client.post(f"/v1/activations/{other['id']}/qrcode", headers=auth)
        return answer.get_json()["qrcode"] if answer.status_code == 201 else "essc1." + "A" * 43

    # payment enabled, and a pre-settled bill at a hospital: its id steers the settlement routes
    paid = client.post(f"/v1/activations/{other['id']}/payment", json=PASSING_CHECKS[1], headers=auth)
    assert paid.status_code == 200, paid.get_json()
    bill = client.post("/v1/settlements", json={**valid_bill("fuzz-setup"), "qrcode": fresh_code(None)},
                       headers={"X-Relying-Party": "hospital-demo", "X-Api-Key": "hospital-demo-key"})
    assert bill.status_code == 201, bill.get_json()
    REAL.update(id=created.get_json()["id"], activated=other["id"], people=people, fresh_code=fresh_code,
                settlement=bill.get_json()["id"])
    yield
    REAL.clear()


def valid_bill(key: str) -> dict:
    """A settlement request the mock pre-settles (without its code)."""
    return {"busi_type": "02", "hospital": {"code": "H0001", "name": "fuzz"}, "idempotency_key": key,
            "items": [{"code": "A1", "name": "x", "category": "drug", "amount_cents": 1000, "quantity": 1}]}


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    if REAL and isinstance(path_parameters, dict) and "id" in path_parameters \
            and context.operation.path.startswith("/v1/settlements/"):
        return st.sampled_from([path_parameters, {**path_parameters, "id": REAL["settlement"]}])
    if REAL and isinstance(path_parameters, dict) and "id" in path_parameters:
        return st.sampled_from([path_parameters, {**path_parameters, "id": REAL["id"]},
                                {**path_parameters, "id": REAL["activated"]}])
    return st.just(path_parameters)


@schema.hook
def flatmap_body(context, body):
    if not REAL or not isinstance(body, dict):
        return st.just(body)
    if context.operation.path == "/v1/activations" and {"city", "id_number", "name"} <= set(body):
        return st.one_of(st.just(body), st.sampled_from(REAL["people"]).map(lambda who: {**body, **who}))
    if context.operation.path.endswith("/verification") and "face_token" in body:
        return st.one_of(st.just(body), st.sampled_from(PASSING_CHECKS))
    if context.operation.path.endswith("/payment") and "face_token" in body:
        return st.one_of(st.just(body), st.just(PASSING_CHECKS[1]))
    if context.operation.path.endswith("/password") and "face_token" in body:
        return st.one_of(st.just(body), st.just({**PASSING_CHECKS[0], "new_password": "258147"}))
    if context.operation.path == "/v1/settlements":
        return st.one_of(st.just(body), st.just(body).map(lambda b: {**b, "qrcode": REAL["fresh_code"](b)}),
                         st.just(body).map(lambda b: {**valid_bill(secrets.token_hex(8)),
                                                      "qrcode": REAL["fresh_code"](b)}))
    if context.operation.path == "/v1/qrcode/verify" and "qrcode" in body:
        return st.one_of(st.just(body), st.just(body).map(lambda b: {**b, "qrcode": REAL["fresh_code"](b)}))
    return st.just(body)


def _body_bytes(case) -> bytes | None:
    """The body exactly as it will be sent (None: no body), so that a signature can cover it."""
    if case.body is NOT_SET:
        return None
    if isinstance(case.body, bytes):
        return case.body
    return json.dumps(case.body).encode("utf-8")


def _query_value(value):
    """A query value as schemathesis sends it (JSON words for null and booleans)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return [_query_value(v) for v in value]
    return value


def _target(case) -> str:
    """PATH_WITH_QUERY as this client sends it: the query encoded by werkzeug's test client,
    which carries the fuzzed requests (generated keys such as ``?`` are not escaped by it)."""
    from werkzeug.test import EnvironBuilder

    path = case.operation.schema.get_full_path(case.formatted_path)
    query = ""
    if case.query:
        values = {k: _query_value(v) for k, v in case.query.items()}
        query = EnvironBuilder(path="/", query_string=values).get_environ()["QUERY_STRING"]
    return path + ("?" + query if query else "")


AUTH_HEADERS = {"x-channel", "x-relying-party", "x-api-key", "x-timestamp", "x-nonce", "x-signature"}


def _call(case, scheme: str, app):
    # schemathesis fills the security schemes' headers with generated values: the scheme under
    # test sets its own, and no stray credential header may turn a request into another scheme
    for name in [h for h in (case.headers or {}) if h.lower() in AUTH_HEADERS]:
        del case.headers[name]
    headers: dict[str, str] = {}
    body = _body_bytes(case) or b""  # always given: werkzeug would make up a body for a bare multipart type
    state = app.extensions["essc"]
    if caller_kind(case.operation) == "party":
        name = PARTY_OF.get(case.path, DEFAULT_PARTY)
        header, entry = "X-Relying-Party", state.relying_parties.channels[name]
    else:
        header, entry = "X-Channel", state.channels.channels[CHANNEL]
    if scheme == "api-key":
        headers = {header: entry.name, "X-Api-Key": entry.api_key}
    elif scheme == "signature":
        if not body:  # werkzeug's test client invents a multipart body (random boundary) for an empty one
            for name in [h for h in (case.headers or {}) if h.lower() == "content-type"]:
                del case.headers[name]
        stamp, nonce = str(int(time.time())), secrets.token_urlsafe(24)
        # signed again at the wire (conftest.SignAsSent) when the query holds what only the
        # transport knows how it encodes; a plain query is signed here, as a client does
        headers = {header: entry.name, "X-Timestamp": stamp, "X-Nonce": nonce,
                   "X-Signature": sign(entry.hmac_secret, case.method, _target(case), stamp, nonce, body)}
        if case.query:
            headers["X-Fuzz-Sign"] = "1"
    SENT[(f"{case.method.upper()} {case.path}", scheme)] += 1
    response = case.call_and_validate(headers=headers, checks=CHECKS, app=app, data=body)
    STATUSES[(f"{case.method.upper()} {case.path}", response.status_code)] += 1
    dropped = {h.lower() for h in get_exclude_headers(case)} & AUTH_HEADERS  # a negative case: "no credentials"
    if scheme != "public" and not dropped:
        assert response.status_code not in (401, 429), \
            f"{scheme}: refused for its credentials ({response.status_code}): {response.text[:300]}"
    return response


@schema.include(lambda ctx: caller_kind(ctx.operation) != "public").parametrize()
@FUZZ
def test_api_key(case, app):
    _call(case, "api-key", app)


@schema.include(lambda ctx: caller_kind(ctx.operation) != "public").parametrize()
@FUZZ
def test_signature(case, app):
    _call(case, "signature", app)


@schema.include(lambda ctx: caller_kind(ctx.operation) == "public").parametrize()
@FUZZ
def test_public(case, app):
    _call(case, "public", app)
