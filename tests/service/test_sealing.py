"""Personal data at rest (essc.service.sealing): sealed with AES-256-GCM, values sealed by
earlier versions (Fernet) still open, and nothing opens with another key or after a change."""
import base64
import hashlib
import json

import pytest
from cryptography.fernet import Fernet

from essc.service.sealing import PREFIX, Sealer

PII = {"id_number": "11010119900307803X", "name": "张三"}


def test_a_sealed_value_opens_and_shows_nothing_of_what_it_holds():
    sealer = Sealer("s" * 32)
    token = sealer.seal(PII)
    assert token.startswith(PREFIX) and sealer.unseal(token) == PII
    assert "11010119900307803X" not in token and "张三" not in token
    assert sealer.seal(PII) != token  # a nonce of its own each time


def test_values_sealed_by_earlier_versions_still_open():
    secret = "s" * 32
    earlier = Fernet(base64.urlsafe_b64encode(hashlib.sha256(("seal:" + secret).encode()).digest()))
    token = earlier.encrypt(json.dumps(PII, ensure_ascii=False).encode()).decode()
    assert Sealer(secret).unseal(token) == PII


@pytest.mark.parametrize("spoil", [
    lambda t: t[:-6] + ("AAAAAA" if not t.endswith("AAAAAA") else "BBBBBB"),  # the tag changed
    lambda t: PREFIX + "AAAA",  # too short to hold a nonce and a tag
    lambda t: PREFIX + "not base64!",
    lambda t: "gAAAAABnot-a-fernet-token",
    lambda t: "",
])
def test_a_changed_or_foreign_value_is_refused_by_name(spoil):
    sealer = Sealer("s" * 32)
    with pytest.raises(ValueError, match="sealed data cannot be opened with this secret key"):
        sealer.unseal(spoil(sealer.seal(PII)))


def test_another_secret_opens_nothing():
    token = Sealer("s" * 32).seal(PII)
    with pytest.raises(ValueError, match="cannot be opened"):
        Sealer("t" * 32).unseal(token)
