"""Card status changes (issue 11, section 5): the city's ``card_status`` decides whether a code is
issued or verified; its answer is remembered, and the stored status is used (and said so) when
the city cannot answer. End to end, the mock's admin changes the citizen's card at the city; the
other tests play the city's answer with a stand-in for the registry's ``card_status`` (every other
operation goes to the mock through the real registry)."""
import pytest
from sqlalchemy import select, text

from essc.core.adapter import CityAdapter
from essc.core.errors import UpstreamUnavailable
from essc.service.api import create_app
from essc.service.models import UsageEvent

from .api_helpers import BANK, CHANNELS, DEMO_CH, activated, error
from .conftest import person
from .test_qrcode import PARTIES, PHARMACY, code_of, scan, show


class Answers(CityAdapter):
    """The city's card_status: the status set by the test, or an outage."""

    def __init__(self) -> None:
        self.status = "normal"
        self.down = False
        self.requests: list[dict] = []

    def card_status(self, request):
        self.requests.append(request)
        if self.down:
            raise UpstreamUnavailable("the city does not answer", reason="timeout")
        return {"aab301": request["aab301"], "aaz502": self.status}


class Registry:
    """The real registry, with card_status answered by ``city``."""

    def __init__(self, real, city: Answers) -> None:
        self.real, self.city = real, city

    def __getattr__(self, name):
        return getattr(self.real, name)

    def adapter(self, code):
        return self.city

    def call(self, code, operation, request):
        if operation == "card_status":
            return self.city.card_status(request)
        return self.real.call(code, operation, request)


@pytest.mark.parametrize("city_code", ["330100", "350100", "510100"])  # rest-json, pinyin-form, gm-json
def test_a_card_reported_lost_at_the_city_blocks_the_code_until_it_is_normal_again(runtime, mock, city_code):
    client = create_app(runtime, {"TESTING": True, "CHANNELS": CHANNELS, "RELYING_PARTIES": PARTIES}).test_client()
    who = person(mock, city_code)
    act_id = activated(client, who, city=city_code)
    code = code_of(client, act_id)
    mock.set_card_status(city_code, who["id_number"], "reported_lost")  # 挂失 at the city
    refused = error(show(client, act_id), 409, "CARD_STATUS_ABNORMAL")
    assert refused["details"] == {"status": "reported_lost", "city": city_code, "card_status_source": "city"}
    assert error(scan(client, code), 409, "CARD_STATUS_ABNORMAL")["details"]["status"] == "reported_lost"
    mock.set_card_status(city_code, who["id_number"], "normal")  # 解挂
    issued = show(client, act_id).get_json()
    assert issued["card_status"] == "normal" and issued["card_status_source"] == "city"
    assert scan(client, issued["qrcode"]).status_code == 200


@pytest.fixture
def city():
    return Answers()


@pytest.fixture
def client(runtime, city):
    app = create_app(runtime, {"TESTING": True, "CHANNELS": CHANNELS, "RELYING_PARTIES": PARTIES})
    runtime.registry = Registry(runtime.registry, city)
    return app.test_client()


@pytest.mark.parametrize("status", ["reported_lost", "sealed", "cancelled", "locked"])
def test_an_abnormal_card_blocks_the_next_code_and_verification_until_normal(client, runtime, city, mock, status):
    who = person(mock, "330100")
    act_id = activated(client, who)
    pending = code_of(client, act_id)
    issued = show(client, act_id).get_json()
    assert issued["card_status"] == "normal" and issued["card_status_source"] == "city"
    assert city.requests[-1]["aac002"] == who["id_number"] and city.requests[-1]["sign_no"]

    city.status = status  # the city reports it (lost, sealed, cancelled, locked)
    refused = error(show(client, act_id), 409, "CARD_STATUS_ABNORMAL")
    assert refused["details"]["status"] == status and refused["details"]["card_status_source"] == "city"
    assert error(scan(client, issued["qrcode"]), 409, "CARD_STATUS_ABNORMAL")["details"]["status"] == status
    assert client.get(f"/v1/activations/{act_id}", headers=DEMO_CH).get_json()["card_status"] == status

    city.status = "normal"  # reactivated: codes work again
    assert scan(client, code_of(client, act_id)).status_code == 200
    error(scan(client, pending), 410, "QRCODE_EXPIRED")  # replaced meanwhile, never usable again
    trail = [e["event"] for e in client.get(f"/v1/activations/{act_id}", headers=DEMO_CH).get_json()["audit"]]
    assert trail.count("card_status_changed") == 2


def test_the_citys_answer_is_remembered_for_the_citizens_other_channels(client, runtime, city, mock):
    who = person(mock, "330100")
    mine, theirs = activated(client, who), activated(client, who, headers=BANK)
    city.status = "locked"
    error(show(client, mine), 409, "CARD_STATUS_ABNORMAL")
    with runtime.store.engine.connect() as conn:
        stored = conn.execute(text("SELECT card_status FROM activations WHERE id = :i"), {"i": theirs}).scalar()
    assert stored == "locked"


def test_while_the_city_cannot_answer_the_stored_status_decides_and_says_so(client, runtime, city, mock):
    act_id = activated(client, person(mock, "330100"))
    city.status = "reported_lost"
    error(show(client, act_id), 409, "CARD_STATUS_ABNORMAL")  # remembered
    city.down = True
    refused = error(show(client, act_id), 409, "CARD_STATUS_ABNORMAL")
    assert refused["details"]["card_status_source"] == "stored"
    city.status, city.down = "normal", False
    code = code_of(client, act_id)
    city.down = True
    assert scan(client, code).status_code == 200  # the stored status is normal again
    issued = show(client, act_id).get_json()
    assert issued["card_status_source"] == "stored" and "UPSTREAM_UNAVAILABLE" in issued["card_status_note"]
    with runtime.store.engine.connect() as conn:
        outcomes = [r.outcome for r in conn.execute(select(UsageEvent.__table__))]
    assert outcomes.count("CARD_STATUS_ABNORMAL") == 2


def test_a_pharmacy_never_learns_more_than_the_status(client, city, mock):
    who = person(mock, "330100")
    act_id = activated(client, who)
    code = code_of(client, act_id)
    city.status = "cancelled"
    body = scan(client, code, headers=PHARMACY).get_data(as_text=True)
    assert "cancelled" in body and who["id_number"] not in body and who["name"] not in body
