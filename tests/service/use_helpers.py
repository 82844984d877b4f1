"""Shared by the payment and settlement tests: an API app with the test channels (api_helpers)
and relying parties, an e-SSC with payment enabled, the citizen's code, the mock's password."""
from __future__ import annotations

from essc.service.api import create_app
from essc.service.relying import RelyingParties, RelyingParty

from .api_helpers import CHANNELS, DEMO_CH, activated

CITY = "330100"
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


def pay_enabled(client, who, headers=DEMO_CH) -> str:
    act_id = activated(client, who, headers=headers)
    answer = client.post(f"/v1/activations/{act_id}/payment", json=PASSWORD, headers=headers)
    assert answer.status_code == 200, answer.get_json()
    return act_id


def code_of(client, act_id, headers=DEMO_CH) -> str:
    answer = client.post(f"/v1/activations/{act_id}/qrcode", headers=headers)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["qrcode"]
