"""The HTTP API under test: the test channels and the headers that authenticate as them (API
key), a valid person no city knows, and the checks every API test makes of an answer (it
matches its OpenAPI component; an error has its status and code). The ``app`` and ``client``
fixtures (conftest.py) serve these channels; a module that needs relying parties overrides ``app``."""
from essc.service.api.validation import component_validator
from essc.service.channels import Channel, Channels

from .conftest import DEMO

CHANNELS = Channels({"demo": Channel("demo", api_key="demo-key"), "bank": Channel("bank", api_key="bank-key")})
DEMO_CH = {"X-Channel": "demo", "X-Api-Key": "demo-key"}
BANK = {"X-Channel": "bank", "X-Api-Key": "bank-key"}
NOBODY = {"id_number": "11010119900307803X", "name": "张三"}  # valid, unknown to every city


def conforms(component, data):
    """``data`` is valid against ``#/components/schemas/<component>`` of the OpenAPI document."""
    errors = list(component_validator(component).iter_errors(data))
    assert not errors, [f"{e.json_path}: {e.message}" for e in errors]


def error(response, status, code):
    """The answer is the error ``code`` with HTTP ``status`` (an ErrorResponse); its error object."""
    body = response.get_json()
    assert response.status_code == status, body
    assert body["error"]["code"] == code, body
    conforms("ErrorResponse", body)
    return body["error"]


def activated(client, who, city="330100", headers=DEMO_CH) -> str:
    """The id of ``who``'s e-SSC activated through the API by the channel of ``headers``."""
    created = client.post("/v1/activations", json={"city": city, **who, "consent": True}, headers=headers)
    assert created.status_code == 201, created.get_json()
    location = created.headers["Location"]
    done = client.post(location + "/verification", json=DEMO, headers=headers)
    assert done.status_code == 201, done.get_json()
    return done.get_json()["id"]
