"""The mock's business model of contract 1.2 (docs/mock.md): card status, payment, password reset,
contribution histories and medical settlement, dialect-neutral (the dialects only translate)."""
from __future__ import annotations

import pytest

from essc.core.schemas import validator
from essc.mockserver import business, create_app, settlement
from essc.mockserver.business import MockBusinessError

REST = "rest-json"
CITY = "330100"


def kind_of(call, *args, **kwargs) -> MockBusinessError:
    with pytest.raises(MockBusinessError) as err:
        call(*args, **kwargs)
    return err.value


def activated(state, person, city=CITY, dialect=REST):
    ticket = business.verify_identity(state, dialect, city, person.id_number, "live-x", "sms", "123456")
    return business.activate(state, dialect, city, person.id_number, ticket, "alipay", 1)


def password_ticket(state, person, city=CITY, password="147258"):
    return business.verify_identity(state, REST, city, person.id_number, "live-x", "password", password)


def sms_ticket(state, person, city=CITY):
    return business.verify_identity(state, REST, city, person.id_number, "live-x", "sms", "123456")


def bill(person, cred, sid="S20260001", action="pre_settle", busi_type="02", items=None):
    return {"action": action, "settlement_id": sid, "aac002": person.id_number, "aab301": CITY,
            "sign_no": cred.sign_no, "busi_type": busi_type, "hospital": {"code": "H33010001", "name": "浙一医院"},
            "items": items if items is not None else [
                {"code": "XA01", "name": "阿莫西林胶囊", "category": "drug", "amount_cents": 150_000, "quantity": 2},
                {"code": "EX02", "name": "CT", "category": "exam", "amount_cents": 50_000, "quantity": 1},
                {"code": "OT03", "name": "陪护", "category": "other", "amount_cents": 10_000, "quantity": 1}]}


# -- card_status --------------------------------------------------------------------------------
def test_card_status_reports_every_status_without_refusing(state):
    for person in state.citizens(CITY)[:5]:
        answer = business.card_status(state, REST, CITY, person.id_number)
        assert (answer.status, answer.sign_level) == (person.card_status, None)


def test_card_status_follows_the_admin_and_checks_the_sign_number(state, client):
    person = state.citizens(CITY)[0]
    cred = activated(state, person)
    assert business.card_status(state, REST, CITY, person.id_number, cred.sign_no).sign_level == 1
    resp = client.put(f"/__admin/citizens/{CITY}/{person.id_number}", json={"card_status": "reported_lost"})
    assert resp.status_code == 200 and resp.get_json()["card_status"] == "reported_lost"
    assert business.card_status(state, REST, CITY, person.id_number).status == "reported_lost"
    assert kind_of(business.card_status, state, REST, CITY, person.id_number, "ES" + "0" * 22).kind == \
        "credential_unknown"


def test_admin_refuses_unknown_statuses_citizens_and_fields(client, state):
    person = state.citizens(CITY)[0]
    url = f"/__admin/citizens/{CITY}/{person.id_number}"
    assert client.put(url, json={"card_status": "stolen"}).status_code == 400
    assert client.put(url, json={"card_status": "sealed", "name": "x"}).status_code == 400
    assert client.put(f"/__admin/citizens/{CITY}/11010119900307803X", json={"card_status": "sealed"}).status_code \
        == 404
    assert client.put(f"/__admin/citizens/999999/{person.id_number}", json={"card_status": "sealed"}).status_code \
        == 404


# -- enable_payment -------------------------------------------------------------------------------
def test_enable_payment_needs_a_password_ticket_and_raises_the_level(state):
    person = state.citizens(CITY)[0]
    cred = activated(state, person)
    sms = sms_ticket(state, person)
    assert kind_of(business.enable_payment, state, REST, CITY, person.id_number, cred.sign_no, sms, "alipay").kind \
        == "ticket_invalid"
    binding = business.enable_payment(state, REST, CITY, person.id_number, cred.sign_no, password_ticket(state, person),
                                      "alipay")
    assert (binding.sign_no, binding.sign_level, binding.bank) == (cred.sign_no, 2, person.bank)
    assert len(binding.account_hint) == 12 and binding.account_hint[4:8] == "****"
    assert binding.account_hint.replace("*", "") not in business.bank_account(state.seed, person)[4:-4]
    assert state.find_credential(CITY, person.id_number).level == 2
    again = business.enable_payment(state, REST, CITY, person.id_number, cred.sign_no,
                                    password_ticket(state, person), "wechat")
    assert again == binding


def test_enable_payment_refuses_an_abnormal_card_and_a_foreign_sign_number(state):
    people = state.citizens(CITY)
    person, other = people[0], people[6]
    cred, other_cred = activated(state, person), activated(state, other)
    assert kind_of(business.enable_payment, state, REST, CITY, person.id_number, other_cred.sign_no,
                   password_ticket(state, person), "alipay").kind == "credential_unknown"
    state.set_card_status(CITY, person.id_number, "sealed")
    err = kind_of(business.enable_payment, state, REST, CITY, person.id_number, cred.sign_no,
                  password_ticket(state, person), "alipay")
    assert (err.kind, err.data) == ("card_status", {"status": "sealed"})


# -- reset_password -----------------------------------------------------------------------------
def test_reset_password_takes_an_sms_ticket_sets_the_password_and_unlocks(state):
    locked = state.citizens(CITY)[4]
    assert locked.card_status == "locked"
    assert kind_of(business.reset_password, state, REST, CITY, locked.id_number, password_ticket(state, locked),
                   "258369").kind == "ticket_invalid"
    day = business.reset_password(state, REST, CITY, locked.id_number, sms_ticket(state, locked), "258369")
    assert day == state.calendar().date()
    assert state.find_citizen(CITY, locked.id_number).card_status == "normal"
    assert kind_of(password_ticket, state, locked).kind == "identity_mismatch"  # the old password is gone
    password_ticket(state, locked, password="258369")


def test_reset_password_refuses_a_lost_sealed_or_cancelled_card(state):
    for person in state.citizens(CITY)[1:4]:
        err = kind_of(business.reset_password, state, REST, CITY, person.id_number, sms_ticket(state, person),
                      "258369")
        assert (err.kind, err.data["status"]) == ("card_status", person.card_status)


# -- query_contributions --------------------------------------------------------------------------
def test_contribution_histories_are_deterministic_and_fit_the_contract():
    answers = []
    for _ in range(2):
        state = create_app({"CLOCK_MODE": "frozen"}).extensions["essc_mock"]
        person = state.citizens(CITY)[0]
        answers.append(business.query_contributions(state, REST, CITY, person.id_number, "201501", "201912"))
    assert answers[0] == answers[1]
    assert validator("contribution_history").is_valid({"aab301": CITY, "months": answers[0]})


def test_contribution_entries_are_plausible(state):
    today = state.calendar().date()
    for person in state.citizens(CITY):
        months = business.query_contributions(state, REST, CITY, person.id_number, "199501", f"{today:%Y%m}")
        assert all(e["month"] < f"{today:%Y%m}" for e in months), "no entry for the current month or later"
        assert all(e["insurance"] != "510" or e["month"] <= "201912" for e in months)
        assert all((e["paid_cents"] == 0) == (e["status"] == "owed") for e in months)
        born = int(person.id_number[6:10])
        assert all(int(e["month"][:4]) >= born + 18 for e in months)
        assert [e["month"] for e in months] == sorted(e["month"] for e in months)


def test_a_period_inside_another_gives_the_same_entries(state):
    person = state.citizens(CITY)[3]
    wide = business.query_contributions(state, REST, CITY, person.id_number, "201001", "201412")
    narrow = business.query_contributions(state, REST, CITY, person.id_number, "201201", "201206")
    assert narrow == [e for e in wide if "201201" <= e["month"] <= "201206"]


# -- settle_medical -----------------------------------------------------------------------------
def test_the_fund_rules_split_a_bill():
    rules = settlement.FundRules(deductible_cents=80_000, ratio_bp=8000, cross_region_ratio_bp=7000,
                                 yearly_cap_cents=100_000)
    items = [{"category": "drug", "amount_cents": 100_000}, {"category": "material", "amount_cents": 50_000},
             {"category": "other", "amount_cents": 10_000}]
    # covered 100000 + 40000 = 140000; deductible 80000; fund 80 % of 60000 = 48000
    assert settlement.split(rules, "02", items, 0, 0) == (160_000, 48_000, 80_000)
    assert settlement.split(rules, "04", items, 0, 0) == (160_000, 42_000, 80_000)
    assert settlement.split(rules, "02", items, 80_000, 0) == (160_000, 100_000, 0)  # 80 % of 140000, capped
    assert settlement.split(rules, "02", items, 80_000, 100_000) == (160_000, 0, 0)


def test_settlement_is_idempotent_and_never_charges_twice(state):
    person = state.citizens(CITY)[0]
    cred = activated(state, person)
    first = business.settle_medical(state, REST, CITY, bill(person, cred))
    assert first["state"] == "pre_settled" and first["total_cents"] == 210_000
    assert first["fund_cents"] + first["self_pay_cents"] == first["total_cents"]
    assert business.settle_medical(state, REST, CITY, bill(person, cred)) == first
    assert validator("settlement_result").is_valid(first)
    confirmed = business.settle_medical(state, REST, CITY, bill(person, cred, action="confirm"))
    assert confirmed == dict(first, state="settled")
    assert business.settle_medical(state, REST, CITY, bill(person, cred, action="confirm")) == confirmed
    year = state.calendar().year
    assert state.fund_usage(CITY, person.id_number, year)[1] == first["fund_cents"]
    reversed_ = business.settle_medical(state, REST, CITY, bill(person, cred, action="reverse"))
    assert reversed_ == dict(first, state="reversed")
    assert business.settle_medical(state, REST, CITY, bill(person, cred, action="reverse")) == reversed_
    assert state.fund_usage(CITY, person.id_number, year) == (0, 0)
    err = kind_of(business.settle_medical, state, REST, CITY, bill(person, cred, action="confirm"))
    assert (err.kind, err.data) == ("settlement_conflict", {"state": "reversed"})


def test_a_second_bill_sees_the_deductible_used(state):
    person = state.citizens(CITY)[0]
    cred = activated(state, person)
    one = business.settle_medical(state, REST, CITY, bill(person, cred, "S-first-01"))
    two = business.settle_medical(state, REST, CITY, bill(person, cred, "S-second-1"))
    assert two["fund_cents"] > one["fund_cents"]
    business.settle_medical(state, REST, CITY, bill(person, cred, "S-first-01", action="reverse"))
    three = business.settle_medical(state, REST, CITY, bill(person, cred, "S-third-01"))
    assert three["fund_cents"] == one["fund_cents"]


def test_settlement_refusals(state):
    people = state.citizens(CITY)
    person, other = people[0], people[6]
    cred, other_cred = activated(state, person), activated(state, other)
    assert kind_of(business.settle_medical, state, REST, CITY, bill(person, cred, action="confirm")).kind == \
        "settlement_unknown"
    business.settle_medical(state, REST, CITY, bill(person, cred))
    changed = bill(person, cred, items=[{"code": "X", "name": "x", "category": "drug", "amount_cents": 1,
                                         "quantity": 1}])
    err = kind_of(business.settle_medical, state, REST, CITY, changed)
    assert (err.kind, err.data) == ("settlement_conflict", {"state": "pre_settled"})
    # another citizen cannot confirm, reverse or reuse the id, and learns nothing of it
    assert kind_of(business.settle_medical, state, REST, CITY, bill(other, other_cred, action="confirm")).kind == \
        "settlement_unknown"
    assert kind_of(business.settle_medical, state, REST, CITY, bill(other, other_cred, action="reverse")).kind == \
        "settlement_unknown"
    assert kind_of(business.settle_medical, state, REST, CITY, bill(other, other_cred)).data == {}
    assert kind_of(business.settle_medical, state, REST, CITY, bill(person, other_cred)).kind == "credential_unknown"


def test_reverse_of_an_unseen_id_burns_it(state):
    person = state.citizens(CITY)[0]
    cred = activated(state, person)
    answer = business.settle_medical(state, REST, CITY, bill(person, cred, "S-never-01", action="reverse"))
    assert (answer["state"], answer["total_cents"], answer["fund_cents"]) == ("reversed", 0, 0)
    err = kind_of(business.settle_medical, state, REST, CITY, bill(person, cred, "S-never-01"))
    assert (err.kind, err.data) == ("settlement_conflict", {"state": "reversed"})


def test_an_abnormal_card_cannot_pre_settle_or_confirm_but_can_reverse(state):
    person = state.citizens(CITY)[0]
    cred = activated(state, person)
    business.settle_medical(state, REST, CITY, bill(person, cred))
    state.set_card_status(CITY, person.id_number, "reported_lost")
    assert kind_of(business.settle_medical, state, REST, CITY, bill(person, cred, "S-other-01")).data == \
        {"status": "reported_lost"}
    assert kind_of(business.settle_medical, state, REST, CITY, bill(person, cred, action="confirm")).kind == \
        "card_status"
    assert business.settle_medical(state, REST, CITY, bill(person, cred, action="reverse"))["state"] == "reversed"


def test_admin_lists_settlements_without_personal_data(client, state):
    person = state.citizens(CITY)[0]
    cred = activated(state, person)
    business.settle_medical(state, REST, CITY, bill(person, cred))
    resp = client.get(f"/__admin/settlements?city={CITY}")
    assert resp.status_code == 200
    rows = resp.get_json()
    assert [(r["settlement_id"], r["state"]) for r in rows] == [("S20260001", "pre_settled")]
    assert person.id_number not in resp.get_data(as_text=True)
    assert rows[0]["citizen"] == person.id_number[:3] + "*" * 11 + person.id_number[-4:]
