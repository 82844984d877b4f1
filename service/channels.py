"""Channel credentials: who may call the activation API.

Callers are channels (Alipay, WeChat, bank and government apps). Their credentials live in
ONE TOML file (``ServiceConfig.channels_file`` / ``ESSC_CHANNELS_FILE``; the packaged
``channels.default.toml`` holds a demo channel only). Every request names its channel in
``X-Channel`` and proves it with either

* ``X-Api-Key: <key>`` (development; a static key can be replayed by whoever sees it), or
* a signature that cannot be replayed (docs/signing.md is the reference)::

    X-Timestamp: <unix seconds, ASCII digits, within MAX_SKEW_S of the server clock>
    X-Nonce:     <16-64 characters of A-Z a-z 0-9 _ ->
    X-Signature: hex(HMAC-SHA256(secret, METHOD + "\\n" + PATH_WITH_QUERY + "\\n" + X-Timestamp
                                         + "\\n" + X-Nonce + "\\n" + hex(SHA256(body))))

  PATH_WITH_QUERY is the request target exactly as sent on the request line: the raw path
  (percent-encoding untouched), then ``?`` and the raw query string when the query string is
  not empty (``/v1/adapters?`` is signed as ``/v1/adapters``); never a scheme, host or fragment.
  A nonce is accepted once per channel while its timestamp is inside the window
  (essc.service.nonces); a replay is refused with ``rule: "replay"``.

Secrets are compared with :func:`hmac.compare_digest`; an unknown channel is checked
against a dummy secret so that timing does not tell which channel names exist.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from essc.core.masking import get_logger

__all__ = ["Caller", "Channel", "Channels", "AuthFailure", "DEFAULT_FILE", "MAX_SKEW_S", "NONCE", "sign",
           "string_to_sign", "request_target", "named_tables", "with_credentials"]

log = get_logger("essc.service.channels")

DEFAULT_FILE = Path(__file__).resolve().parent / "channels.default.toml"
MAX_SKEW_S = 300
NAME = re.compile(r"^[a-z0-9_.-]{2,40}$")  # the contract's channel pattern (activation_request)
NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")  # used with fullmatch
_DUMMY = "essc-no-such-channel"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class AuthFailure(Exception):
    """The request is not authenticated; ``reason`` is safe to show to the caller."""

    def __init__(self, reason: str, **details: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


@dataclass(frozen=True)
class Caller:
    """Who may call the API with these credentials: a channel, or a relying party
    (essc.service.relying.RelyingParty)."""

    name: str
    api_key: str | None = field(default=None, repr=False)
    hmac_secret: str | None = field(default=None, repr=False)
    description: str = ""
    demo: bool = False


@dataclass(frozen=True)
class Channel(Caller):
    #: prefixes the return URL of a page launch must start with (essc.service.pages.launch)
    return_urls: tuple[str, ...] = ()


def named_tables(path: Path, table: str, what: str) -> Iterator[tuple[str, Any]]:
    """``(name, entry)`` for every ``[<table>.<name>]`` of the TOML file ``path``; a missing or
    broken file, or a name that does not match :data:`NAME`, fails loudly (at start-up) naming
    the file and ``what`` the entry is. The entries are TOML values for the caller to check."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    for name, entry in (data.get(table) or {}).items():
        if not NAME.match(name):
            raise ValueError(f"{path}: {what} name {name!r} must match {NAME.pattern}")
        yield name, entry


def with_credentials(path: Path, what: str, name: str, entry: object) -> dict:
    """``entry`` when it is a table with an ``api_key`` or an ``hmac_secret``; else a ValueError."""
    if not isinstance(entry, dict) or not (entry.get("api_key") or entry.get("hmac_secret")):
        raise ValueError(f"{path}: {what} {name!r} needs an api_key or an hmac_secret")
    return entry


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def string_to_sign(method: str, path_with_query: str | bytes, timestamp: str | int, nonce: str,
                   body: bytes | str = b"") -> bytes:
    """METHOD \\n PATH_WITH_QUERY \\n X-Timestamp \\n X-Nonce \\n hex(SHA256(body)), as bytes.

    A ``str`` path is encoded as UTF-8 (send it percent-encoded, i.e. ASCII, and it does not
    matter); ``bytes`` are used as they are."""
    return b"\n".join([_bytes(method.upper()), _bytes(path_with_query), _bytes(str(timestamp)), _bytes(nonce),
                       hashlib.sha256(_bytes(body)).hexdigest().encode("ascii")])


def sign(secret: str, method: str, path_with_query: str | bytes, timestamp: str | int, nonce: str,
         body: bytes | str = b"") -> str:
    """The X-Signature of a request (lower-case hex; see the module doc and docs/signing.md).

    ``sign(secret, "GET", "/v1/activations/act_1?x=1", 1800000000, "n0nce-0123456789", b"")``"""
    return hmac.new(_bytes(secret), string_to_sign(method, path_with_query, timestamp, nonce, body),
                    hashlib.sha256).hexdigest()


# RFC 3986 pchar minus "%" (PATH_INFO is already decoded: a "%" in it is a literal one)
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def request_target(environ: Mapping[str, str]) -> bytes:
    """PATH_WITH_QUERY of a WSGI request, as the bytes the client sent.

    The raw request target comes from ``RAW_URI`` (gunicorn, werkzeug) or ``REQUEST_URI``
    (waitress, werkzeug, mod_wsgi, uWSGI): the fragment is dropped, an absolute-form target
    (``http://host/path``) keeps only its path and query, and a ``?`` with an empty query is
    dropped. A server giving neither gets SCRIPT_NAME + PATH_INFO percent-encoded again (RFC
    3986, upper-case hex) plus ``?`` + QUERY_STRING: clients that encode differently must then
    sign that normal form. (Werkzeug's ``request.full_path`` is NOT used: it always adds ``?``
    and re-encodes the path.)"""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        target = raw.split("#", 1)[0]
        if not target.startswith("/"):  # absolute-form (or "*"): keep path + query only
            parts = urlsplit(target)
            target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        path, sep, query = target.partition("?")
        if not sep:  # werkzeug's test environ gives the path alone there: the query is in QUERY_STRING
            query = environ.get("QUERY_STRING", "")
    else:
        decoded = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
        path, query = quote(decoded, safe=_PATH_SAFE) or "/", environ.get("QUERY_STRING", "")
    # WSGI strings carry the request's bytes as latin-1 code points
    return (path + ("?" + query if query else "")).encode("latin-1")


class Channels:
    """The channels of one file, and how a request proves it comes from one of them.

    Subclasses authenticate other callers the same way (``header`` names the caller, ``kind``
    is what error messages call it; essc.service.relying: relying parties)."""

    header = "X-Channel"
    kind = "channel"

    def __init__(self, channels: Mapping[str, Channel], source: str = "<memory>",
                 max_skew_s: float = MAX_SKEW_S, nonces=None, clock=time.time) -> None:
        from .nonces import MemoryNonceStore

        self.channels = dict(channels)
        self.source = source
        self.max_skew_s = max_skew_s
        #: where used nonces are kept when ``authenticate`` is given no store (this process only)
        self.nonces = nonces if nonces is not None else MemoryNonceStore()
        self.clock = clock  #: the server clock of the timestamp window (injectable for tests)

    @classmethod
    def load(cls, path: str | Path | None = None, max_skew_s: float = MAX_SKEW_S) -> Channels:
        """Read the channels file (the packaged demo file when ``path`` is None)."""
        path = Path(path) if path else DEFAULT_FILE
        channels = {}
        for name, table in named_tables(path, "channels", "channel"):
            entry = with_credentials(path, "channel", name, table)
            returns = entry.get("return_urls", [])
            if not isinstance(returns, list) or not all(isinstance(u, str) and u.startswith(("https://", "http://"))
                                                        for u in returns):
                raise ValueError(f"{path}: channel {name!r}: return_urls must be a list of http(s) URL prefixes")
            channels[name] = Channel(name, entry.get("api_key") or None, entry.get("hmac_secret") or None,
                                     str(entry.get("description", "")), bool(entry.get("demo", False)),
                                     tuple(returns))
        if any(c.demo for c in channels.values()):
            log.warning("channels file %s holds DEMO-ONLY credentials; configure ESSC_CHANNELS_FILE", path)
        return cls(channels, str(path), max_skew_s)

    def authenticate(self, headers: Mapping[str, str], body: bytes, now: float | None = None, *,
                     method: str, target: str | bytes, nonces=None):
        """The calling channel (the entry named by ``self.header``), or :class:`AuthFailure`.

        ``method`` and ``target`` (PATH_WITH_QUERY, see :func:`request_target`) are what a
        signature covers besides the body; ``nonces`` (default ``self.nonces``) remembers the
        nonces of accepted signatures."""
        name = (headers.get(self.header) or "").strip()
        if not name:
            raise AuthFailure(f"missing {self.header} header")
        channel = self.channels.get(name)
        if any(headers.get(h) is not None for h in ("X-Signature", "X-Timestamp", "X-Nonce")):
            self._check_signature(channel, headers, method, target, body, self.clock() if now is None else now,
                                  self.nonces if nonces is None else nonces)
        elif headers.get("X-Api-Key") is not None:
            expected = channel.api_key if channel and channel.api_key else _DUMMY
            if not hmac.compare_digest(headers["X-Api-Key"].encode(), expected.encode()) or expected is _DUMMY:
                raise AuthFailure(f"invalid {self.kind} credentials")
        else:
            raise AuthFailure("missing credentials: send X-Api-Key, or X-Timestamp, X-Nonce and X-Signature")
        return channel

    def _check_signature(self, channel, headers: Mapping[str, str], method: str,
                         target: str | bytes, body: bytes, now: float, nonces) -> None:
        stamp, nonce = headers.get("X-Timestamp") or "", headers.get("X-Nonce") or ""
        signature = (headers.get("X-Signature") or "").strip().lower()
        if not stamp or not nonce or not signature:
            raise AuthFailure("a signed request needs X-Timestamp, X-Nonce and X-Signature", rule="signature-headers")
        if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
            raise AuthFailure("X-Timestamp must be Unix seconds (ASCII digits)", rule="timestamp-format")
        if abs(now - int(stamp)) > self.max_skew_s:
            raise AuthFailure(f"X-Timestamp is more than {self.max_skew_s:g} s away from the server clock",
                              rule="timestamp-window")
        if not NONCE.fullmatch(nonce):
            raise AuthFailure("X-Nonce must be 16-64 characters of A-Z a-z 0-9 _ -", rule="nonce-format")
        secret = channel.hmac_secret if channel and channel.hmac_secret else _DUMMY
        expected = sign(secret, method, target, stamp, nonce, body)
        valid = _HEX64.fullmatch(signature) is not None
        if not hmac.compare_digest(signature.encode("utf-8", "replace"), expected.encode()) or not valid \
                or secret is _DUMMY:
            raise AuthFailure(f"invalid {self.kind} credentials")
        # Only a valid signature spends its nonce. It must be remembered for as long as its
        # timestamp is inside the window: until stamp + max_skew_s (+1 s for fractions).
        if not nonces.claim(channel.name, nonce, expires_at=int(stamp) + self.max_skew_s + 1, now=now):
            raise AuthFailure(f"X-Nonce was already used by this {self.kind}: the request is a replay", rule="replay")
