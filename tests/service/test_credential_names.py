"""The service reads credentials in the names of contract 1.2 (core/naming.py), rows stored before
it included, and still shows channels the deprecated names beside the new ones."""
from __future__ import annotations

from essc.core.schemas import validator
from essc.service import states
from essc.service.relying import RelyingParty
from essc.service.usage import person_view

OLD_ROW = {"aab301": "330100", "signNo": "ES0123456789", "signSeq": "7", "signLevel": 2, "validate": "20361124",
           "signDate": "20261125"}
PII = {"id_number": "11010119900307803X", "name": "张三"}


def activation(credential: dict) -> dict:
    return {"id": "0" * 32, "status": states.ACTIVATED, "city": "330100", "channel": "alipay", "id_hint": "110***803X",
            "created_at": 1.0, "updated_at": 2.0, "next_attempt_at": None, "card_status": "normal", "error": None,
            "credential": credential}


def test_a_relying_party_sees_the_sign_number_of_a_row_stored_in_the_old_names():
    view = person_view(RelyingParty("pharmacy"), activation(OLD_ROW), PII, "E" + "A" * 32)
    assert (view["sign_no"], view["sign_level"]) == ("ES0123456789", 2)


def test_channels_get_both_names_from_old_and_new_rows(runtime):
    new_row = {"aab301": "330100", "sign_no": "ES0123456789", "sign_seq": "7", "sign_level": 2,
               "valid_until": "20361124", "sign_date": "20261125"}
    for row in (OLD_ROW, new_row):
        shown = runtime.service.view(activation(row), credential=True)["credential"]
        assert shown["sign_no"] == shown["signNo"] == "ES0123456789" and shown["valid_until"] == shown["validate"]
        assert validator("credential").is_valid(shown)
