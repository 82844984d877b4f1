"""One naming style (contract 1.2, issue 8): the credential accepts its deprecated camelCase
names, and the registry hands every answer on in snake_case only."""
from __future__ import annotations

import pytest

from essc.core import naming
from essc.core.errors import ContractViolation
from essc.core.schemas import validator

from .conftest import GOOD_INIT

ID = "11010119900307803X"
OLD = {"aab301": "700001", "signNo": "ES0123456789", "signSeq": "7", "signLevel": 1, "validate": "20361124",
       "signDate": "20261125"}
NEW = {"aab301": "700001", "sign_no": "ES0123456789", "sign_seq": "7", "sign_level": 1, "valid_until": "20361124",
       "sign_date": "20261125"}
ACTIVATION = {"aac002": ID, "aab301": "700001", "verify_id": "abcd", "channel": "test"}


def answering(credential: dict) -> str:
    return GOOD_INIT.replace("adapter = SyntheticAdapter()", "adapter = Named()") + f'''

class Named(SyntheticAdapter):
    def activate(self, request):
        return {credential!r}
'''


def test_the_credential_schema_takes_either_set_of_names_but_not_half_of_one():
    check = validator("credential")
    assert check.is_valid(OLD) and check.is_valid(NEW) and check.is_valid({**OLD, **NEW})
    assert not check.is_valid({k: v for k, v in NEW.items() if k != "sign_date"})
    assert not check.is_valid({"aab301": "700001", "sign_no": "ES0123456789", "signSeq": "7", "sign_level": 1,
                               "validate": "20361124", "sign_date": "20261125"})


def test_normalise_renames_and_with_deprecated_adds_the_old_names_back():
    assert naming.normalise("credential", OLD) == NEW
    assert naming.normalise("credential", NEW) == NEW
    assert naming.normalise("card_record", {"aac002": ID}) == {"aac002": ID}
    both = naming.with_deprecated("credential", OLD)
    assert both == {**OLD, **NEW} and validator("credential").is_valid(both)
    assert naming.credential(None) == {} and naming.credential(OLD)["sign_no"] == "ES0123456789"


def test_two_names_of_one_field_must_agree():
    with pytest.raises(ContractViolation) as err:
        naming.normalise("credential", {**NEW, "signNo": "ES9999999999"})
    assert (err.value.details["path"], err.value.details["rule"]) == ("$.sign_no", "same-value-both-names")


@pytest.mark.parametrize("answer", [OLD, NEW, {**OLD, **NEW}], ids=["1.0 names", "1.2 names", "both"])
def test_the_registry_hands_on_the_names_of_1_2_only(plugin_folder, answer):
    plugin_folder.add("named", init=answering(answer))
    reg = plugin_folder.registry()
    assert reg.call("700001", "activate", ACTIVATION) == NEW


def test_a_credential_whose_two_names_differ_breaks_the_contract(plugin_folder):
    name = plugin_folder.add("differ", init=answering({**NEW, "signLevel": 2}))
    reg = plugin_folder.registry()
    with pytest.raises(ContractViolation) as err:
        reg.call("700001", "activate", ACTIVATION)
    details = err.value.details
    assert (details["rule"], details["city"], details["plugin"], details["hook"]) == \
        ("same-value-both-names", "700001", name, "activate")


@pytest.mark.parametrize(("answer", "path"), [
    ({k: v for k, v in NEW.items() if k != "sign_date"}, "$.sign_date"),
    ({k: v for k, v in OLD.items() if k != "signDate"}, "$.signDate"),
], ids=["1.2 names", "1.0 names"])
def test_a_missing_credential_field_is_named_in_the_set_the_plugin_uses(plugin_folder, answer, path):
    plugin_folder.add("half", init=answering(answer))
    reg = plugin_folder.registry()
    with pytest.raises(ContractViolation) as err:
        reg.call("700001", "activate", ACTIVATION)
    assert (err.value.details["path"], err.value.details["rule"]) == (path, "required")
