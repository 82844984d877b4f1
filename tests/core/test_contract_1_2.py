"""Contract 1.2 in the runtime: the new operations are optional and dispatched like the others,
1.0/1.1 plugins keep loading, a plugin that declares a 1.2 operation must target 1.2, the
registry refuses a contribution period the schema cannot judge, and the city's outcomes of the
new failure kinds become the new typed errors."""
from __future__ import annotations

import pytest

from essc.core import CONTRACT_VERSION, errors
from essc.core.adapter import OPERATIONS, CityAdapter, implemented_operations
from essc.core.outcomes import BUSINESS_KINDS, outcome_error
from essc.core.schemas import validator

from .conftest import GOOD_INIT, manifest

ID = "11010119900307803X"
NEW = ("card_status", "enable_payment", "reset_password", "query_contributions", "settle_medical")

CARD_USE_INIT = GOOD_INIT.replace("adapter = SyntheticAdapter()", "adapter = CardUse()") + '''

class CardUse(SyntheticAdapter):
    def card_status(self, request):
        return {"aab301": request["aab301"], "aaz502": "sealed", "checked_at": "20261125093000"}

    def query_contributions(self, request):
        return {"aab301": request["aab301"], "months": [
            {"month": request["from_month"], "insurance": "110", "base_cents": 800000, "paid_cents": 192000,
             "status": "paid"}]}
'''


def test_the_new_operations_are_optional_and_of_1_2():
    assert CONTRACT_VERSION == "1.2"
    for name in NEW:
        op = OPERATIONS[name]
        assert (op.required, op.since) == (False, "1.2")
        assert getattr(CityAdapter, name).__doc__
    assert [n for n, op in OPERATIONS.items() if op.required] == ["read_card", "verify_identity", "activate", "health"]
    assert not implemented_operations(CityAdapter())


def test_a_1_0_plugin_loads_and_offers_none_of_them(plugin_folder):
    plugin_folder.add("old")
    reg = plugin_folder.registry()
    assert reg.call("700001", "health", {"aab301": "700001"})["status"] == "up"
    with pytest.raises(errors.PluginUnavailable, match="does not offer card_status"):
        reg.call("700001", "card_status", {"aac002": ID, "aab301": "700001"})


def test_a_plugin_declaring_a_1_2_operation_must_target_1_2(plugin_folder):
    ops = ["read_card", "verify_identity", "activate", "health", "card_status"]
    name = plugin_folder.add("early", init=CARD_USE_INIT,
                             manifest_data=None, contract_version="1.1",
                             capabilities={"operations": ops, "identity_checks": ["sms"], "services": []})
    reg = plugin_folder.registry()
    record = reg.plugin(name)
    assert record.status == "quarantined"
    assert "declares card_status (1.2) but targets contract 1.1" in record.reason


def test_declared_1_2_operations_are_dispatched_and_checked(plugin_folder):
    ops = ["read_card", "verify_identity", "activate", "health", "card_status", "query_contributions"]
    plugin_folder.add("new", init=CARD_USE_INIT, contract_version="1.2",
                      capabilities={"operations": ops, "identity_checks": ["sms"], "services": []})
    reg = plugin_folder.registry()
    state = reg.call("700001", "card_status", {"aac002": ID, "aab301": "700001"})
    assert state["aaz502"] == "sealed"  # a query answers an abnormal status
    history = reg.call("700001", "query_contributions",
                       {"aac002": ID, "aab301": "700001", "from_month": "202401", "to_month": "202412"})
    assert history["months"][0]["month"] == "202401"


@pytest.mark.parametrize(("period", "rule"), [(("202412", "202401"), "period-order"),
                                               (("202001", "202501"), "period-length")])
def test_the_registry_refuses_a_period_before_the_city_sees_it(plugin_folder, period, rule):
    ops = ["read_card", "verify_identity", "activate", "health", "query_contributions"]
    plugin_folder.add("period", init=CARD_USE_INIT, contract_version="1.2",
                      capabilities={"operations": ops, "identity_checks": ["sms"], "services": []})
    reg = plugin_folder.registry()
    with pytest.raises(errors.InvalidInput) as err:
        reg.call("700001", "query_contributions",
                 {"aac002": ID, "aab301": "700001", "from_month": period[0], "to_month": period[1]})
    assert (err.value.details["field"], err.value.details["rule"]) == ("$.to_month", rule)
    assert err.value.details["operation"] == "query_contributions"


def test_sixty_months_is_the_longest_period(plugin_folder):
    ops = ["read_card", "verify_identity", "activate", "health", "query_contributions"]
    plugin_folder.add("sixty", init=CARD_USE_INIT, contract_version="1.2",
                      capabilities={"operations": ops, "identity_checks": ["sms"], "services": []})
    reg = plugin_folder.registry()
    reg.call("700001", "query_contributions",
             {"aac002": ID, "aab301": "700001", "from_month": "202001", "to_month": "202412"})


@pytest.mark.parametrize(("kind", "error"), [("credential_unknown", errors.CredentialNotFound),
                                             ("settlement_unknown", errors.SettlementNotFound),
                                             ("settlement_conflict", errors.SettlementConflict),
                                             ("ticket_invalid", errors.IdentityMismatch)])
def test_new_outcome_kinds_become_typed_errors(kind, error):
    assert kind in BUSINESS_KINDS
    err = outcome_error(kind, city="330100", operation="settle_medical", code="E1", state="reversed")
    assert type(err) is error
    assert validator("error").problems(err.to_dict()) == []


def test_a_settlement_conflict_names_only_a_known_state():
    err = outcome_error("settlement_conflict", city="330100", operation="settle_medical", state="weird")
    assert "state" not in err.details
    err = outcome_error("settlement_conflict", city="330100", operation="settle_medical", state="settled")
    assert err.details["state"] == "settled" and "settled" in err.message


@pytest.mark.parametrize("hint", ["6222****1234", "622202*********1234", "****1234"])
def test_account_hints_are_masked(hint):
    binding = {"aab301": "330100", "sign_no": "ES0123456789", "sign_level": 2, "aae008": "中国工商银行",
               "account_hint": hint}
    assert validator("payment_binding").is_valid(binding)


@pytest.mark.parametrize("hint", ["6222021234567891234", "6222**1234", "6222*****12345"])
def test_an_unmasked_account_breaks_the_contract(hint):
    binding = {"aab301": "330100", "sign_no": "ES0123456789", "sign_level": 2, "aae008": "中国工商银行",
               "account_hint": hint}
    assert not validator("payment_binding").is_valid(binding)


def test_a_pre_settlement_needs_items_confirm_does_not():
    base = {"settlement_id": "S20260001", "aac002": ID, "aab301": "330100", "sign_no": "ES0123456789",
            "busi_type": "02", "hospital": {"code": "H3301", "name": "医院"}}
    check = validator("settlement_request")
    assert not check.is_valid(dict(base, action="pre_settle"))
    assert check.is_valid(dict(base, action="confirm"))
    item = {"code": "X1", "name": "药", "category": "drug", "amount_cents": 100, "quantity": 1}
    assert check.is_valid(dict(base, action="pre_settle", items=[item]))
    assert not check.is_valid(dict(base, action="pre_settle", items=[dict(item, amount_cents=0)]))
    assert not check.is_valid(dict(base, action="pre_settle", items=[dict(item, amount_cents=1.5)]))


def test_manifest_accepts_the_new_operation_names():
    data = manifest("card_use", contract_version="1.2")
    data["capabilities"]["operations"] += list(NEW)
    assert validator("manifest").is_valid(data)
