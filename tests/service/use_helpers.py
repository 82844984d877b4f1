"""Shared by the payment and settlement tests: an API app with a channel and relying parties, an
activated e-SSC, the citizen's code, the mock's identity checks."""
from __future__ import annotations

from essc.service.api import create_app
from essc.service.api.validation import component_validator
from essc.service.channels import Channel, Channels
from essc.service.relying import RelyingParties, RelyingParty

from .conftest import DEMO

CITY = "330100"
CHANNELS = Channels({"demo": Channel("demo", api_key="demo-key"), "bank": Channel("bank", api_key="bank-key")})
DEMO_CH = {"X-Channel": "demo", "X-Api-Key": "demo-key"}
BANK = {"X-Channel": "bank", "X-Api-Key": "bank-key"}
PARTIES = RelyingParties({
    "hospital": RelyingParty("hospital", api_key="hospital-key", kind="hospital",
                             busi_types=frozenset({"01", "02", "04"})),
    "clinic": RelyingParty("clinic", api_key="clinic-key", kind="hospital", busi_types=frozenset({"02"})),
    "pharmacy": RelyingParty("pharmacy", api_key="pharmacy-key", kind="pharmacy", busi_types=frozenset({"01"})),
})
HOSPITAL = {"X-Relying-Party": "hospital", "X-Api-Key": "hospital-key"}
CLINIC = {"X-Relying-Party": "clinic", "X-Api-Key": "clinic-key"}
PHARMACY = {"X-Relying-Party": "pharmacy", "X-Api-Key": "pharmacy-key"}
PASSWORD = {"face_token": "live-test", "password": "147258"}  # the mock's e-SSC password


def make_app(runtime):
    return create_app(runtime, {"TESTING": True, "CHANNELS": CHANNELS, "RELYING_PARTIES": PARTIES})


def conforms(component, data):
    errors = list(component_validator(component).iter_errors(data))
    assert not errors, [f"{e.json_path}: {e.message}" for e in errors]


def error(response, status, code):
    body = response.get_json()
    assert response.status_code == status, body
    assert body["error"]["code"] == code, body
    conforms("ErrorResponse", body)
    return body["error"]


def activated(client, who, city=CITY, headers=DEMO_CH) -> str:
    created = client.post("/v1/activations", json={"city": city, **who, "consent": True}, headers=headers)
    assert created.status_code == 201, created.get_json()
    done = client.post(created.headers["Location"] + "/verification", json=DEMO, headers=headers)
    assert done.status_code == 201, done.get_json()
    return done.get_json()["id"]


def pay_enabled(client, who, headers=DEMO_CH) -> str:
    act_id = activated(client, who, headers=headers)
    answer = client.post(f"/v1/activations/{act_id}/payment", json=PASSWORD, headers=headers)
    assert answer.status_code == 200, answer.get_json()
    return act_id


def code_of(client, act_id, headers=DEMO_CH) -> str:
    answer = client.post(f"/v1/activations/{act_id}/qrcode", headers=headers)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["qrcode"]
