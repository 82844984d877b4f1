"""Signing and national-crypto (国密) helpers shared by plugins and the mock.

* :func:`canonical_string` + :func:`hmac_sha256` - the "sorted key=value&" form signature
  that pinyin-field city APIs use;
* :func:`sm3_hex` - SM3 digest; :func:`sm4_encrypt` / :func:`sm4_decrypt` - SM4-ECB with
  PKCS#7 padding, base64 text (OpenSSL through `cryptography`: ~100x faster than pure-Python gmssl).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

__all__ = ["canonical_string", "hmac_sha256", "verify_hmac_sha256", "sm3_hex", "sm4_encrypt", "sm4_decrypt"]


def canonical_string(params: Mapping[str, Any], exclude: tuple[str, ...] = ("sign",)) -> str:
    """``k1=v1&k2=v2`` over the keys in sorted order, skipping empty values and ``exclude``."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in exclude and params[k] not in (None, ""))


def hmac_sha256(params: Mapping[str, Any], secret: str) -> str:
    """Lower-case hex HMAC-SHA256 of :func:`canonical_string` with ``secret``."""
    return hmac.new(secret.encode(), canonical_string(params).encode(), hashlib.sha256).hexdigest()


def verify_hmac_sha256(params: Mapping[str, Any], secret: str) -> bool:
    given = str(params.get("sign", ""))
    return hmac.compare_digest(given.lower(), hmac_sha256(params, secret))


def sm3_hex(data: bytes | str) -> str:
    """SM3 digest as lower-case hex."""
    from cryptography.hazmat.primitives import hashes

    if isinstance(data, str):
        data = data.encode()
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize().hex()


def _sm4(key: bytes) -> Cipher[modes.ECB]:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: F811 - lazy import

    if len(key) != 16:
        raise ValueError("an SM4 key is 16 bytes")
    return Cipher(algorithms.SM4(key), modes.ECB())  # noqa: S305 - ECB is what the city dialect specifies


def sm4_encrypt(key: bytes, plaintext: bytes) -> str:
    """SM4-ECB with PKCS#7 padding; returns base64 text."""
    from cryptography.hazmat.primitives import padding

    padder = padding.PKCS7(128).padder()
    enc = _sm4(key).encryptor()
    raw = enc.update(padder.update(plaintext) + padder.finalize()) + enc.finalize()
    return base64.b64encode(raw).decode()


def sm4_decrypt(key: bytes, b64text: str) -> bytes:
    """Inverse of :func:`sm4_encrypt`; raises ``ValueError`` on bad input."""
    from cryptography.hazmat.primitives import padding

    try:
        raw = base64.b64decode(b64text, validate=True)
    except Exception as err:  # binascii.Error
        raise ValueError("not base64") from err
    if not raw or len(raw) % 16:
        raise ValueError("SM4 ciphertext length is not a multiple of 16")
    dec = _sm4(key).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    padded = dec.update(raw) + dec.finalize()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as err:
        raise ValueError("bad SM4 padding") from err
