"""Personal data at rest: sealed with Fernet (AES-128-CBC + HMAC, from `cryptography`),
and a keyed hash of the ID number to find a citizen's activations without storing it."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

from cryptography.fernet import Fernet, InvalidToken


class Sealer:
    def __init__(self, secret: str) -> None:
        key = hashlib.sha256(("seal:" + secret).encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self._hkey = hashlib.sha256(("key:" + secret).encode()).digest()

    def citizen_key(self, id_number: str) -> str:
        """HMAC-SHA256 of the ID number: stable, not reversible without the secret."""
        return hmac.new(self._hkey, id_number.upper().encode(), hashlib.sha256).hexdigest()

    def seal(self, data: dict) -> str:
        return self._fernet.encrypt(json.dumps(data, ensure_ascii=False).encode()).decode()

    def unseal(self, token: str) -> dict:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as err:
            raise ValueError("sealed data cannot be opened with this secret key") from err
