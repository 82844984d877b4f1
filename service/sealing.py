"""Personal data at rest: sealed with AES-256-GCM (from `cryptography`), and a keyed hash of the
ID number to find a citizen's activations without storing it.

A sealed value is ``a1.`` + base64url(nonce (12 random bytes) + ciphertext + tag (16 bytes)) of
the UTF-8 JSON. The key is SHA-256("seal-aead:" + the service secret). ``.`` is not a base64url
character, so the prefix tells these apart from the Fernet tokens (AES-128-CBC + HMAC-SHA256,
key from SHA-256("seal:" + secret)) that earlier versions wrote: those still open, nothing
needs rewriting. Each value has its own random nonce: with one key, 2^32 sealed values keep the
chance of two sharing a nonce below 2^-32 (NIST SP 800-38D, 8.3).

Why AES-GCM and not Fernet any more (issue 10, "slow cities"): an activation seals once and
opens twice between city calls, HTTP parsing and database writes, which push OpenSSL's code and
tables out of the CPU's caches. Measured in `bench/activation_cost.py` (thread CPU around each
call): Fernet 81-95 us per seal and 85-99 us per opening, AES-GCM 33-35 and 36-38 us - one
AEAD operation where Fernet does a cipher, a MAC, padding and a timestamp. ~170 us less per
activation. (In a tight loop both are cheap: 12-14 us against 2 us.)
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: what a value sealed with AES-GCM starts with
PREFIX = "a1."
NONCE_BYTES = 12


class Sealer:
    def __init__(self, secret: str) -> None:
        self._aead = AESGCM(hashlib.sha256(("seal-aead:" + secret).encode()).digest())
        key = hashlib.sha256(("seal:" + secret).encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))  # opens what earlier versions sealed
        self._hkey = hashlib.sha256(("key:" + secret).encode()).digest()

    def citizen_key(self, id_number: str) -> str:
        """HMAC-SHA256 of the ID number: stable, not reversible without the secret."""
        return hmac.new(self._hkey, id_number.upper().encode(), hashlib.sha256).hexdigest()

    def seal(self, data: dict) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, json.dumps(data, ensure_ascii=False).encode(), None)
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def unseal(self, token: str) -> dict:
        try:
            if token.startswith(PREFIX):
                raw = base64.urlsafe_b64decode(token[len(PREFIX):])
                if len(raw) <= NONCE_BYTES:
                    raise InvalidTag
                plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None)
            else:
                plain = self._fernet.decrypt(token.encode())
        except (InvalidTag, InvalidToken, binascii.Error, ValueError) as err:
            raise ValueError("sealed data cannot be opened with this secret key") from err
        return json.loads(plain)
