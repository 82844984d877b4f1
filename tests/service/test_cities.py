"""The whole country's city list (service/cities.py, GET /v1/cities) and the activation of a city
no plugin serves: city_not_opened with the seed's wording, without calling any city system."""
import pytest

from essc.core import divisions
from essc.service import states
from essc.service.cities import CityDirectory

from .api_helpers import DEMO_CH, NOBODY, conforms
from .conftest import person
from .test_api import body, post

NANJING = "320100"  # a real city no plugin serves


def by_code(listing):
    return {c["code"]: {**c, "group": p["code"]} for p in listing["provinces"] for c in p["cities"]}


def test_the_list_holds_the_whole_country_grouped_by_province(client):
    listing = client.get("/v1/cities").get_json()
    conforms("CityList", listing)
    groups = [p["code"] for p in listing["provinces"]]
    assert groups == sorted(groups) and len(groups) == 34
    cities = by_code(listing)
    assert set(cities) >= {c.code for c in divisions.cities()}
    for p in listing["provinces"]:
        assert [c["code"] for c in p["cities"]] == sorted(c["code"] for c in p["cities"])
    zhejiang = next(p for p in listing["provinces"] if p["code"] == "330000")
    assert (zhejiang["name"], zhejiang["short"]) == ("浙江省", "浙江")
    assert [c["short"] for c in zhejiang["cities"]][:3] == ["杭州", "宁波", "温州"]


@pytest.mark.parametrize("code, status, plugin", [
    ("330100", "opened", "zhejiang"),
    ("510100", "opened", "sichuan"),
    ("110000", "opened", "mohrss"),
    ("460300", "not_opened", "mohrss"),  # served, the manifest says not opened
    ("810000", "not_opened", "mohrss"),
    (NANJING, "no_plugin", None),
    ("370100", "no_plugin", None),
])
def test_each_city_has_its_status(client, code, status, plugin):
    city = by_code(client.get("/v1/cities").get_json())[code]
    assert city["status"] == status and city.get("plugin") == plugin
    assert city["group"] == code[:2] + "0000"


def test_abolished_and_partial_codes_are_not_listed(client):
    cities = by_code(client.get("/v1/cities").get_json())
    assert "371200" not in cities and "110100" not in cities and "370100" in cities


def test_search_over_the_whole_country(client):
    found = client.get("/v1/cities", query_string={"q": "hz"}).get_json()
    conforms("CitySearchResult", found)
    assert found["query"] == "hz"
    first = found["cities"][0]
    assert (first["code"], first["name"], first["status"]) == ("330100", "杭州市", "opened")
    assert first["plugin"] == "zhejiang"
    assert first["province"] == {"code": "330000", "name": "浙江省", "short": "浙江"}
    nanjing = client.get("/v1/cities", query_string={"q": "nanjing"}).get_json()["cities"]
    assert [(c["code"], c["status"]) for c in nanjing] == [(NANJING, "no_plugin")] and "plugin" not in nanjing[0]
    assert client.get("/v1/cities", query_string={"q": "laiwu"}).get_json() == {"query": "laiwu", "cities": []}
    assert client.get("/v1/cities", query_string={"q": "  "}).get_json().keys() == {"provinces"}


class FakeRegistry:
    """A province's own system (330000) and a code that names no province, served by plugin "own";
    a quarantined plugin claiming 330200 and 700002."""

    def __init__(self):
        self.own = Record("own", "1.0.0", "loaded", None, {"330000": "浙江省本级", "700001": "合成市"})
        self.broken = Record("broken", "0.1.0", "quarantined", "import failed", {"330200": "宁波", "700002": "坏市"})

    def cities(self):
        return [Info(code, name) for code, name in self.own.names.items()]

    def served(self, code):
        return {c.code: c for c in self.cities()}.get(code)

    @property
    def plugins(self):
        return [self.own, self.broken]

    def resilience_snapshot(self):
        return {"330000": {"breaker": "open", "in_flight": 0, "rejected": 3}}


class Record:
    def __init__(self, name, version, status, reason, names):
        self.name, self.version, self.status, self.reason, self.names = name, version, status, reason, names
        self.cities = tuple(names)
        self.manifest = {"cities": [{"code": c, "name": n} for c, n in names.items()]}


class Info:
    def __init__(self, code, name):
        self.code, self.name, self.opened, self.plugin = code, name, True, "own"


def test_a_code_a_plugin_serves_outside_the_list_is_listed():
    listing = CityDirectory(FakeRegistry()).grouped()
    cities = by_code(listing)
    assert cities["330000"]["group"] == "330000" and cities["330000"]["status"] == "opened"
    assert cities["330000"]["short"] == "浙江省本级" and cities["330000"]["pinyin"] == "zhejiangshengbenji"
    assert listing["provinces"][-1]["name"] == "其他" and [c["code"] for c in listing["provinces"][-1]["cities"]] == [
        "700001"]
    assert "700002" not in cities and cities["330200"]["status"] == "no_plugin"  # its plugin is quarantined


def test_operator_rows_say_which_plugin_claims_a_city_and_its_state():
    rows = {r["code"]: r for r in CityDirectory(FakeRegistry()).operator_rows()}
    assert len(rows) == len(divisions.cities()) + 3
    own = rows["330000"]
    assert (own["status"], own["plugin"], own["plugin_version"], own["plugin_state"]) == ("opened", "own", "1.0.0",
                                                                                           "loaded")
    assert (own["breaker"], own["rejected"]) == ("open", 3)
    ningbo = rows["330200"]
    assert (ningbo["status"], ningbo["plugin_state"], ningbo["plugin_reason"]) == ("no_plugin", "quarantined",
                                                                                   "import failed")
    assert rows["700002"]["name"] == "坏市" and rows["700002"]["province"]["name"] == "其他"
    assert "plugin" not in rows["320100"] and "breaker" not in rows["320100"]


def test_operator_rows_of_the_real_registry(client, mock, runtime):
    post(client, body("330100", person(mock, "330100")))
    rows = {r["code"]: r for r in client.application.extensions["essc"].cities.operator_rows()}
    hangzhou = rows["330100"]
    assert (hangzhou["plugin"], hangzhou["plugin_state"], hangzhou["breaker"]) == ("zhejiang", "loaded", "closed")
    assert hangzhou["plugin_version"] and hangzhou["province"]["short"] == "浙江"


# -- a city without a plugin: city_not_opened, nothing called --------------------------------
def test_a_city_without_a_plugin_ends_not_opened_without_a_call(client, mock, runtime):
    response = post(client, body(NANJING, NOBODY))
    assert response.status_code == 200, response.get_json()
    view = response.get_json()
    conforms("ActivationView", view)
    assert view["status"] == states.CITY_NOT_OPENED and view["final"] and view["city"] == NANJING
    error = view["error"]
    assert error["code"] == "CITY_NOT_OPENED" and error["message_zh"] == "该城市暂未开通电子社保卡业务"
    assert "no plugin serves city 320100 (南京市)" in error["message"] and error["details"]["city"] == NANJING
    assert NOBODY["id_number"] not in str(view) and NOBODY["name"] not in str(view)
    assert mock.journal() == []  # no city system was called
    events = [e["event"] for e in client.get(f"/v1/activations/{view['id']}", headers=DEMO_CH).get_json()["audit"]]
    assert events[:2] == ["consent_given", "city_chosen"] and events[-1] == states.CITY_NOT_OPENED

    post(client, body("330100", person(mock, "330100")))
    assert mock.journal(), "the journal records calls: its emptiness above means something"


@pytest.mark.parametrize("code, rule, says", [
    ("999999", "unknown-city", "GB/T 2260 has no division 999999"),
    ("371200", "abolished-division", "abolished in 2019 and merged into 370100 (济南市)"),
    ("110100", "not-a-city", "choose 110000"),
    ("330106", "not-a-city", "district or county of 330100 (杭州市)"),
])
def test_a_code_that_is_no_city_is_refused_naming_the_field(client, mock, code, rule, says):
    response = post(client, body(code, NOBODY))
    assert response.status_code == 400
    error = response.get_json()["error"]
    conforms("ErrorResponse", response.get_json())
    assert error["details"]["field"] == "city" and error["details"]["rule"] == rule and says in error["message"]
    assert mock.journal() == []
