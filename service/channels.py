"""Channel credentials: who may call the activation API.

Callers are channels (Alipay, WeChat, bank and government apps). Their credentials live in
ONE TOML file (``ServiceConfig.channels_file`` / ``ESSC_CHANNELS_FILE``; the packaged
``channels.default.toml`` holds a demo channel only). Every request names its channel in
``X-Channel`` and proves it with either

* ``X-Api-Key: <key>``, or
* ``X-Timestamp: <unix seconds>`` + ``X-Signature: <hex HMAC-SHA256(secret, timestamp + "\\n" + raw body)>``,
  the timestamp within :data:`MAX_SKEW_S` seconds of the server clock.

Secrets are compared with :func:`hmac.compare_digest`; an unknown channel is checked
against a dummy secret so that timing does not tell which channel names exist.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from essc.core.masking import get_logger

__all__ = ["Channel", "Channels", "AuthFailure", "DEFAULT_FILE", "MAX_SKEW_S", "sign"]

log = get_logger("essc.service.channels")

DEFAULT_FILE = Path(__file__).resolve().parent / "channels.default.toml"
MAX_SKEW_S = 300
NAME = re.compile(r"^[a-z0-9_.-]{2,40}$")  # the contract's channel pattern (activation_request)
_DUMMY = "essc-no-such-channel"


class AuthFailure(Exception):
    """The request is not authenticated; ``reason`` is safe to show to the caller."""

    def __init__(self, reason: str, **details: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


@dataclass(frozen=True)
class Channel:
    name: str
    api_key: str | None = field(default=None, repr=False)
    hmac_secret: str | None = field(default=None, repr=False)
    description: str = ""
    demo: bool = False


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """The X-Signature of a request: hex HMAC-SHA256(secret, timestamp + "\\n" + body)."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"\n" + body, hashlib.sha256).hexdigest()


class Channels:
    def __init__(self, channels: Mapping[str, Channel], source: str = "<memory>",
                 max_skew_s: float = MAX_SKEW_S) -> None:
        self.channels = dict(channels)
        self.source = source
        self.max_skew_s = max_skew_s

    @classmethod
    def load(cls, path: str | Path | None = None, max_skew_s: float = MAX_SKEW_S) -> Channels:
        """Read the channels file (the packaged demo file when ``path`` is None)."""
        path = Path(path) if path else DEFAULT_FILE
        with path.open("rb") as fh:  # a missing or broken file fails loudly at start-up
            data = tomllib.load(fh)
        channels = {}
        for name, entry in (data.get("channels") or {}).items():
            if not NAME.match(name):
                raise ValueError(f"{path}: channel name {name!r} must match {NAME.pattern}")
            if not isinstance(entry, dict) or not (entry.get("api_key") or entry.get("hmac_secret")):
                raise ValueError(f"{path}: channel {name!r} needs an api_key or an hmac_secret")
            channels[name] = Channel(name, entry.get("api_key") or None, entry.get("hmac_secret") or None,
                                     str(entry.get("description", "")), bool(entry.get("demo", False)))
        if any(c.demo for c in channels.values()):
            log.warning("channels file %s holds DEMO-ONLY credentials; configure ESSC_CHANNELS_FILE", path)
        return cls(channels, str(path), max_skew_s)

    def authenticate(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Channel:
        """The calling channel, or :class:`AuthFailure`."""
        name = (headers.get("X-Channel") or "").strip()
        if not name:
            raise AuthFailure("missing X-Channel header")
        channel = self.channels.get(name)
        if headers.get("X-Signature") is not None or headers.get("X-Timestamp") is not None:
            self._check_signature(channel, headers, body, time.time() if now is None else now)
        elif headers.get("X-Api-Key") is not None:
            expected = channel.api_key if channel and channel.api_key else _DUMMY
            if not hmac.compare_digest(headers["X-Api-Key"].encode(), expected.encode()) or expected is _DUMMY:
                raise AuthFailure("invalid channel credentials")
        else:
            raise AuthFailure("missing credentials: send X-Api-Key, or X-Timestamp and X-Signature")
        return channel

    def _check_signature(self, channel: Channel | None, headers: Mapping[str, str], body: bytes,
                         now: float) -> None:
        stamp, signature = headers.get("X-Timestamp") or "", (headers.get("X-Signature") or "").strip().lower()
        if not stamp or not signature:
            raise AuthFailure("a signed request needs both X-Timestamp and X-Signature")
        if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
            raise AuthFailure("X-Timestamp must be Unix seconds")
        if abs(now - int(stamp)) > self.max_skew_s:
            raise AuthFailure(f"X-Timestamp is more than {self.max_skew_s:g} s away from the server clock",
                              rule="timestamp-window")
        secret = channel.hmac_secret if channel and channel.hmac_secret else _DUMMY
        expected = sign(secret, stamp, body)
        if not hmac.compare_digest(signature.encode(), expected.encode()) or secret is _DUMMY:
            raise AuthFailure("invalid channel credentials")
