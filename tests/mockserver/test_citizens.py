"""Synthetic citizens: deterministic from the seed, valid ID numbers, fixed scenarios."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys

import pytest

from essc.core.idnumber import validate_id_number
from essc.mockserver import create_app
from essc.mockserver.cities import load_cities
from essc.mockserver.citizens import LAIWU, SCENARIOS, generate_citizens

CITY_CODES = [c.code for c in load_cities()]


def all_citizens(app) -> dict[str, list[dict]]:
    client = app.test_client()
    return {code: client.get(f"/__admin/citizens?city={code}").get_json() for code in CITY_CODES}


def test_fourteen_cities():
    assert len(CITY_CODES) == 14 and len(set(CITY_CODES)) == 14 and "320400" in CITY_CODES


def test_same_seed_same_citizens_across_apps():
    first, second = all_citizens(create_app()), all_citizens(create_app())
    assert first == second
    other = all_citizens(create_app({"SEED": 7}))
    assert other["330100"] != first["330100"]


def test_same_citizens_in_another_process_with_another_hash_seed():
    code = ("import json; from essc.mockserver.citizens import generate_citizens; "
            "print(json.dumps([c.admin_view() for c in generate_citizens(20261125, '510100', 12)]))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [c.admin_view() for c in generate_citizens(20261125, "510100", 12)]


@pytest.mark.parametrize("city", CITY_CODES)
def test_citizens_are_valid(city):
    people = generate_citizens(20261125, city, 12)
    assert len(people) == 12 and len({p.id_number for p in people}) == 12
    assert [p.scenario for p in people] == list(SCENARIOS) + ["normal"] * 6
    for person in people:
        assert validate_id_number(person.id_number) == person.id_number
        assert dt.date(1950, 1, 1) <= dt.datetime.strptime(person.id_number[6:14], "%Y%m%d").date() <= dt.date(
            2005, 12, 31)
        assert int(person.id_number[16]) % 2 == (1 if person.gender == "M" else 0)
        assert re.fullmatch(r"[\u4e00-\u9fff]{2,4}", person.name), person.name
        assert re.fullmatch(r"[A-Z][0-9]{8}", person.card_no)
        assert re.fullmatch(r"[0-9A-F]{32}", person.card_id)
        assert re.fullmatch(r"1[3-9][0-9]{9}", person.mobile)
        assert person.generation in ("2", "3") and person.bank
        assert person.card_status == ("normal" if person.scenario == "face_mismatch" else person.scenario)
        assert person.face_match is (person.scenario != "face_mismatch")
    divisions = [p.id_number[:6] for p in people]
    assert divisions.count(city) == 10
    assert LAIWU in divisions and len(set(divisions)) == 3


def test_admin_view_fields_and_scenario_filter(client):
    people = client.get("/__admin/citizens?city=440300").get_json()
    assert set(people[0]) == {"id_number", "name", "city", "scenario", "card_status", "face_match", "card_no",
                              "mobile"}
    lost = client.get("/__admin/citizens?city=440300&scenario=reported_lost").get_json()
    assert len(lost) == 1 and lost[0] == people[1]


def test_citizens_per_city_config():
    app = create_app({"CITIZENS_PER_CITY": 3})
    assert len(app.test_client().get("/__admin/citizens?city=330100").get_json()) == 3
